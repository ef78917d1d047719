# Miniature pretrained models (demo profile; README, "Miniature pretrained models"), trained on the synthetic
# world and written to the locations that `models` names, in the formats the paper profile loads. Off when
# pretrain.enabled is false.


if PRETRAIN:

    rule train_clip:
        input:
            manifests=expand(rules.manifest.output.manifest, dataset=DATASETS),
        output:
            model=directory(config["models"]["clip_eval"]),
        log:
            results("logs", "pretrain", "clip.log"),
        benchmark:
            results("benchmarks", "pretrain", "clip.tsv")
        priority: 10  # the SD pretraining needs its text tower
        conda:
            "../envs/pretrain.yaml"
        threads: 1
        resources:
            mem_mb=8000,
            runtime=60,
        params:
            config=CONFIG,
            steps=config["pretrain"].get("steps", {}).get("clip"),
            seed=config["seed"],
        shell:
            "sonic pretrain clip --config {params.config:q} --manifests {input.manifests:q} "
            "--out {output.model:q} --threads {threads} > {log:q} 2>&1"

    rule train_clap:
        input:
            manifests=expand(rules.manifest.output.manifest, dataset=DATASETS),
        output:
            model=directory(config["models"]["clap"]),
        log:
            results("logs", "pretrain", "clap.log"),
        benchmark:
            results("benchmarks", "pretrain", "clap.tsv")
        conda:
            "../envs/pretrain.yaml"
        threads: 1
        resources:
            mem_mb=8000,
            runtime=60,
        params:
            config=CONFIG,
            steps=config["pretrain"].get("steps", {}).get("clap"),
            seed=config["seed"],
        shell:
            "sonic pretrain clap --config {params.config:q} --manifests {input.manifests:q} "
            "--out {output.model:q} --threads {threads} > {log:q} 2>&1"

    rule train_wav2clip:
        input:
            manifests=expand(rules.manifest.output.manifest, dataset=DATASETS),
            clip=rules.train_clip.output.model,
        output:
            model=config["models"]["wav2clip"],
        log:
            results("logs", "pretrain", "wav2clip.log"),
        benchmark:
            results("benchmarks", "pretrain", "wav2clip.tsv")
        conda:
            "../envs/pretrain.yaml"
        threads: 1
        resources:
            mem_mb=8000,
            runtime=60,
        params:
            config=CONFIG,
            steps=config["pretrain"].get("steps", {}).get("wav2clip"),
            seed=config["seed"],
        shell:
            "sonic pretrain wav2clip --config {params.config:q} --manifests {input.manifests:q} "
            "--out {output.model:q} --threads {threads} > {log:q} 2>&1"

    rule train_blip2:
        input:
            manifests=expand(rules.manifest.output.manifest, dataset=DATASETS),
        output:
            model=directory(config["models"]["blip2"]),
        log:
            results("logs", "pretrain", "blip2.log"),
        benchmark:
            results("benchmarks", "pretrain", "blip2.tsv")
        conda:
            "../envs/pretrain.yaml"
        threads: 1
        resources:
            mem_mb=8000,
            runtime=60,
        params:
            config=CONFIG,
            steps=config["pretrain"].get("steps", {}).get("blip2"),
            seed=config["seed"],
        shell:
            "sonic pretrain blip2 --config {params.config:q} --manifests {input.manifests:q} "
            "--out {output.model:q} --threads {threads} > {log:q} 2>&1"

    rule train_sd:
        input:
            manifests=expand(rules.manifest.output.manifest, dataset=DATASETS),
            clip=rules.train_clip.output.model,
            architecture=config["models"]["unet_config"],
        output:
            model=directory(config["models"]["sd"]),
        log:
            results("logs", "pretrain", "sd.log"),
        benchmark:
            results("benchmarks", "pretrain", "sd.tsv")
        priority: 10  # start of the longest chain: SD -> stage 1 -> stage 2 -> generation -> scores
        conda:
            "../envs/pretrain.yaml"
        threads: THREADS
        resources:
            mem_mb=8000,
            runtime=60,
        params:
            config=CONFIG,
            steps=config["pretrain"].get("steps", {}).get("sd"),
            seed=config["seed"],
        shell:
            "sonic pretrain sd --config {params.config:q} --manifests {input.manifests:q} "
            "--out {output.model:q} --threads {threads} > {log:q} 2>&1"
