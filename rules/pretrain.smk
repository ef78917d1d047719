# Miniature pretrained models (demo profile; docs/pretrained-models.md), trained on the synthetic
# world (the datasets of the paper's formats, SYNTH_DATASETS: datasets of your own never change them) and written to
# the locations that `models` names, in the formats the paper profile loads. Off when pretrain.enabled is false.


if PRETRAIN:

    rule train_clip:
        input:
            manifests=expand(rules.manifest.output.manifest, dataset=SYNTH_DATASETS),
        output:
            model=directory(CFG.models.clip_eval),
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
            settings=settings("seed", "pretrain.steps", "pretrain.clip"),
        shell:
            "sonic pretrain clip --settings {params.settings:q} --manifests {input.manifests:q} "
            "--out {output.model:q} --threads {threads} > {log:q} 2>&1"

    rule train_clap:
        input:
            manifests=expand(rules.manifest.output.manifest, dataset=SYNTH_DATASETS),
        output:
            model=directory(CFG.models.clap),
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
            settings=settings("seed", "pretrain.steps", "pretrain.clap"),
        shell:
            "sonic pretrain clap --settings {params.settings:q} --manifests {input.manifests:q} "
            "--out {output.model:q} --threads {threads} > {log:q} 2>&1"

    rule train_wav2clip:
        input:
            manifests=expand(rules.manifest.output.manifest, dataset=SYNTH_DATASETS),
            clip=rules.train_clip.output.model,
        output:
            model=CFG.models.wav2clip,
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
            settings=settings(
                "seed", "pretrain.steps", "pretrain.wav2clip", "models.clip_ais"
            ),
        shell:
            "sonic pretrain wav2clip --settings {params.settings:q} --manifests {input.manifests:q} "
            "--out {output.model:q} --threads {threads} > {log:q} 2>&1"

    rule train_fid:
        input:
            manifests=expand(rules.manifest.output.manifest, dataset=SYNTH_DATASETS),
        output:
            model=directory(CFG.models.fid_features),
        log:
            results("logs", "pretrain", "fid.log"),
        benchmark:
            results("benchmarks", "pretrain", "fid.tsv")
        conda:
            "../envs/pretrain.yaml"
        threads: 1
        resources:
            mem_mb=4000,
            runtime=30,
        params:
            settings=settings("seed", "pretrain.steps", "pretrain.fid"),
        shell:
            "sonic pretrain fid --settings {params.settings:q} --manifests {input.manifests:q} "
            "--out {output.model:q} --threads {threads} > {log:q} 2>&1"

    rule train_blip2:
        input:
            manifests=expand(rules.manifest.output.manifest, dataset=SYNTH_DATASETS),
        output:
            model=directory(CFG.models.blip2),
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
            settings=settings("seed", "pretrain.steps", "pretrain.blip2"),
        shell:
            "sonic pretrain blip2 --settings {params.settings:q} --manifests {input.manifests:q} "
            "--out {output.model:q} --threads {threads} > {log:q} 2>&1"

    rule train_sd:
        input:
            manifests=expand(rules.manifest.output.manifest, dataset=SYNTH_DATASETS),
            clip=rules.train_clip.output.model,
            architecture=CFG.models.unet_config,
        output:
            model=directory(CFG.models.sd),
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
            settings=settings(
                "seed",
                "pretrain.steps",
                "pretrain.evaluate",
                "pretrain.sd",
                "models.clip_ais",
                "models.unet_config",
            ),
        shell:
            "sonic pretrain sd --settings {params.settings:q} --manifests {input.manifests:q} "
            "--out {output.model:q} --threads {threads} > {log:q} 2>&1"


# Rehearsal (workflow/configs/rehearsal.yaml; docs/rehearsal.md): paper-size models with random weights, in the
# real on-disk formats, at the locations `models` names.
if CFG.pretrain.random_weights:

    rule rehearsal_models:
        output:
            models=[directory(m) for m in RANDOM_MODEL_DIRS],
            files=RANDOM_MODEL_FILES,
        log:
            results("logs", "pretrain", "rehearsal_models.log"),
        benchmark:
            results("benchmarks", "pretrain", "rehearsal_models.tsv")
        priority: 10
        conda:
            "../envs/pretrain.yaml"
        threads: 1
        resources:
            mem_mb=12000,
            runtime=60,
        params:
            settings=settings("seed", "models"),
            cache=results("rehearsal", "wheels"),
        shell:
            "sonic rehearse models --settings {params.settings:q} --cache {params.cache:q} > {log:q} 2>&1"
