# Feature caches computed once per dataset (docs/development.md#what-is-here): CLAP embeddings of every manifest clip.


rule clap_features:
    input:
        manifest=rules.manifest.output.manifest,
        model=model_input("clap"),
    output:
        embeddings=results("features", "{dataset}", "clap.safetensors"),
        index=results("features", "{dataset}", "clap_index.csv"),
    log:
        results("logs", "features", "{dataset}_clap.log"),
    benchmark:
        results("benchmarks", "features", "{dataset}_clap.tsv")
    priority: 5  # every training run of its dataset waits for it
    conda:
        "../envs/features.yaml"
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        settings=settings("models.clap", "audio_encoder"),
    shell:
        "sonic features clap --settings {params.settings:q} --manifest {input.manifest:q} "
        "--out {output.embeddings:q} --index {output.index:q} --threads {threads} > {log:q} 2>&1"


rule release_features:  # the authors' released model reads Microsoft CLAP 2022 embeddings (models.release)
    input:
        manifest=rules.manifest.output.manifest,
        model=model_input("msclap_2022"),
    output:
        embeddings=results("features", "{dataset}", "clap_msclap_2022.safetensors"),
        index=results("features", "{dataset}", "clap_msclap_2022_index.csv"),
    log:
        results("logs", "features", "{dataset}_clap_msclap_2022.log"),
    benchmark:
        results("benchmarks", "features", "{dataset}_clap_msclap_2022.tsv")
    wildcard_constraints:
        dataset=one_of(RELEASE_DATASETS),
    conda:
        "../envs/features.yaml"
    threads: THREADS
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        settings=json.dumps(RELEASE_FEATURES, sort_keys=True),
    shell:
        "sonic features clap --settings {params.settings:q} --manifest {input.manifest:q} "
        "--out {output.embeddings:q} --index {output.index:q} --threads {threads} > {log:q} 2>&1"


rule captions:
    input:
        manifest=rules.manifest.output.manifest,
        model=model_input("blip2"),
    output:
        captions=results("features", "{dataset}", "captions.csv"),
    log:
        results("logs", "features", "{dataset}_captions.log"),
    benchmark:
        results("benchmarks", "features", "{dataset}_captions.tsv")
    priority: 5  # stage 1 and both competitors of its dataset wait for it
    conda:
        "../envs/features.yaml"
    threads: 1
    resources:
        mem_mb=16000,
        runtime=240,
    params:
        settings=settings("models.blip2", "data.caption_dtype"),
    shell:
        "sonic features captions --settings {params.settings:q} --manifest {input.manifest:q} "
        "--out {output.captions:q} --threads {threads} > {log:q} 2>&1"
