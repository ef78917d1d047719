# Data preparation (docs/data.md): synthetic world (demo) -> index -> per-shard extraction -> manifest.


rule synth:
    output:
        root=directory(str(Path(DATA.raw) / "{dataset}")),
    log:
        results("logs", "synth", "{dataset}.log"),
    benchmark:
        results("benchmarks", "synth", "{dataset}.tsv")
    conda:
        "../envs/data.yaml"
    threads: THREADS
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        settings=settings("seed", "data.synth", "data.datasets.{dataset}"),
    shell:
        "sonic synth --settings {params.settings:q} --dataset {wildcards.dataset:q} --out {output.root:q} "
        "--threads {threads} > {log:q} 2>&1"


rule index_dataset:
    input:
        raw_input,
    output:
        videos=results("data", "{dataset}", "videos.csv"),
        rejects=results("data", "{dataset}", "index_rejects.csv"),
    log:
        results("logs", "data", "{dataset}_index.log"),
    benchmark:
        results("benchmarks", "data", "{dataset}_index.tsv")
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        settings=settings("data.datasets.{dataset}"),
    shell:
        "sonic data index --settings {params.settings:q} --dataset {wildcards.dataset:q} "
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
        settings=settings(
            "audio_encoder.sample_rate",
            "data.datasets.{dataset}",
            "data.segment_seconds",
            "data.min_clip_seconds",
            "data.min_hits",
            "data.silence_dbfs",
            "data.frame_size",
        ),
        shards=len(SHARDS),
    shell:
        "sonic data extract --settings {params.settings:q} --dataset {wildcards.dataset:q} --videos {input.videos:q} "
        "--shard {wildcards.shard:q} --shards {params.shards} --out {output.shard:q} > {log:q} 2>&1"


rule manifest:
    input:
        shards=lambda w: expand(
            rules.extract_shard.output.shard, dataset=w.dataset, shard=SHARDS
        ),
        index_rejects=rules.index_dataset.output.rejects,
        split_lists=split_lists,
    output:
        manifest=results("data", "{dataset}", "manifest.csv"),
        rejects=results("data", "{dataset}", "rejects.csv"),
    log:
        results("logs", "data", "{dataset}_manifest.log"),
    benchmark:
        results("benchmarks", "data", "{dataset}_manifest.tsv")
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,
    params:
        settings=settings(
            "seed",
            "data.datasets.{dataset}",
            "data.split",
            "data.val_fraction",
            "data.eval_audios_per_class",
        ),
    shell:
        "sonic data manifest --settings {params.settings:q} --dataset {wildcards.dataset:q} --shard-dirs {input.shards:q} "
        "--index-rejects {input.index_rejects:q} --out {output.manifest:q} --rejects {output.rejects:q} "
        "> {log:q} 2>&1"


# `sonic data check` (docs/own_videos.md): what each dataset would give, without extracting: per label the videos,
# duration and clips, every unusable file with its reason, the split's sizes. Fails when nothing usable is there.
# Target `check` (all datasets), outside `all`.
rule data_check:
    input:
        raw=raw_input,
        split_lists=split_lists,
    output:
        report=results("data", "{dataset}", "check.txt"),
    log:
        results("logs", "data", "{dataset}_check.log"),
    benchmark:
        results("benchmarks", "data", "{dataset}_check.tsv")
    conda:
        "../envs/data.yaml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    params:
        settings=settings(
            "seed",
            "audio_encoder.sample_rate",
            "data.datasets.{dataset}",
            "data.segment_seconds",
            "data.min_clip_seconds",
            "data.min_hits",
            "data.silence_dbfs",
            "data.frame_size",
            "data.split",
            "data.val_fraction",
            "data.eval_audios_per_class",
        ),
    shell:
        "sonic data check --settings {params.settings:q} --dataset {wildcards.dataset:q} "
        "--out {output.report:q} --threads {threads} > {log:q} 2>&1"


rule check:
    input:
        expand(rules.data_check.output.report, dataset=DATASETS),
