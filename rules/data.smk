# Data preparation (README, Data preparation, §8): synthetic world (demo) -> index -> per-shard extraction -> manifest.


rule synth:
    output:
        root=directory(str(Path(DATA.get("raw", "results/raw")) / "{dataset}")),
    log:
        results("logs", "synth", "{dataset}.log"),
    conda:
        "../envs/data.yaml"
    threads: THREADS
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=CONFIG,
        synth=lambda w: DATA.get("synth"),
        spec=lambda w: DATA["datasets"][w.dataset],
        seed=config["seed"],
    shell:
        "sonic synth --config {params.config:q} --dataset {wildcards.dataset:q} --out {output.root:q} "
        "--threads {threads} > {log:q} 2>&1"


rule index_dataset:
    input:
        raw_input,
    output:
        videos=results("data", "{dataset}", "videos.csv"),
        rejects=results("data", "{dataset}", "index_rejects.csv"),
    log:
        results("logs", "data", "{dataset}_index.log"),
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        config=CONFIG,
        spec=lambda w: DATA["datasets"][w.dataset],
    shell:
        "sonic data index --config {params.config:q} --dataset {wildcards.dataset:q} "
        "--videos {output.videos:q} --rejects {output.rejects:q} > {log:q} 2>&1"


rule extract_shard:
    input:
        videos=rules.index_dataset.output.videos,
    output:
        shard=directory(results("data", "{dataset}", "shards", "{shard}")),
    log:
        results("logs", "data", "{dataset}_extract_{shard}.log"),
    benchmark:
        results("benchmarks", "data", "{dataset}_extract_{shard}.tsv")
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=240,
    params:
        config=CONFIG,
        shards=len(SHARDS),
        settings=lambda w: {
            k: v
            for k, v in DATA.items()
            if k
            not in (
                "datasets",
                "synth",
                "raw",
                "shards",
                "split",
                "val_fraction",
                "eval_audios_per_class",
            )
        },
        sample_rate=config["audio_encoder"]["sample_rate"],
    shell:
        "sonic data extract --config {params.config:q} --dataset {wildcards.dataset:q} --videos {input.videos:q} "
        "--shard {wildcards.shard:q} --shards {params.shards} --out {output.shard:q} > {log:q} 2>&1"


rule manifest:
    input:
        shards=lambda w: expand(
            rules.extract_shard.output.shard, dataset=w.dataset, shard=SHARDS
        ),
        index_rejects=rules.index_dataset.output.rejects,
        split_lists=lambda w: (
            list((DATA["datasets"][w.dataset].get("split_files") or {}).values())
            if DATA.get("split") == "file"
            else []
        ),
    output:
        manifest=results("data", "{dataset}", "manifest.csv"),
        rejects=results("data", "{dataset}", "rejects.csv"),
    log:
        results("logs", "data", "{dataset}_manifest.log"),
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        config=CONFIG,
        split=lambda w: [
            DATA.get("val_fraction"),
            DATA.get("eval_audios_per_class"),
            config["seed"],
            DATA.get("split"),
            DATA["datasets"][w.dataset].get("split_files"),
        ],
    shell:
        "sonic data manifest --config {params.config:q} --dataset {wildcards.dataset:q} --shard-dirs {input.shards:q} "
        "--index-rejects {input.index_rejects:q} --out {output.manifest:q} --rejects {output.rejects:q} "
        "> {log:q} 2>&1"
