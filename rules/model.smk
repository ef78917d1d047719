# Model core: parameter counts of the configured architecture (no weights needed).


rule params:
    output:
        json=results("params.json"),
    log:
        results("logs", "params.log"),
    benchmark:
        results("benchmarks", "params.tsv")
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    params:
        settings=settings(
            "profile",
            "models.sd",
            "models.unet_config",
            "audio_encoder",
            "projector",
            "adapters",
        ),
    shell:
        "sonic params --settings {params.settings:q} --out {output.json:q} --threads {threads} > {log:q} 2>&1"


rule import_release:  # the authors' released projector + adapters in this project's weights format
    input:
        projector=lambda w: RELEASE_FILES[w.dataset]["projector"],
        adapters=lambda w: RELEASE_FILES[w.dataset]["adapters"],
    output:
        weights=directory(results("release", "{dataset}")),
    log:
        results("logs", "release", "{dataset}.log"),
    benchmark:
        results("benchmarks", "release", "{dataset}.tsv")
    wildcard_constraints:
        dataset=one_of(RELEASE_DATASETS),
    conda:
        "../envs/train.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=10,
    shell:
        "sonic import-release --projector {input.projector:q} --adapters {input.adapters:q} "
        "--out {output.weights:q} > {log:q} 2>&1"
