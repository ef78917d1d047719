# Model core: parameter counts of the configured architecture (no weights needed).


rule params:
    output:
        json=results("params.json"),
    log:
        results("logs", "params.log"),
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
