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
        config=CONFIG,
        model=lambda w: [
            config["models"].get("unet_config"),
            config["projector"],
            config["adapters"],
        ],
    shell:
        "sonic params --config {params.config:q} --out {output.json:q} --threads {threads} > {log:q} 2>&1"
