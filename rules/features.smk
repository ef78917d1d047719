# Feature caches computed once per dataset (SPEC §1): CLAP embeddings of every manifest clip.


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
    conda:
        "../envs/sonic.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        config=CONFIG,
        encoder=[config["models"].get("clap"), config["audio_encoder"]],
    shell:
        "sonic features clap --config {params.config:q} --manifest {input.manifest:q} "
        "--out {output.embeddings:q} --index {output.index:q} --threads {threads} > {log:q} 2>&1"
