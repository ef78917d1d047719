# Both training stages per dataset and variant (paper §3.3-3.4). Variants with equal stage-1 inputs share one
# stage-1 run (named after the first of them); `no_stage1` has none.


rule train_stage1:
    input:
        manifest=rules.manifest.output.manifest,
        clap=rules.clap_features.output.embeddings,
        clap_index=rules.clap_features.output.index,
        captions=rules.captions.output.captions,
        sd=model_input("sd"),
    output:
        projector=directory(
            results("train", "{dataset}", "stage1", "{run}", "projector")
        ),
        loss=report(
            results("train", "{dataset}", "stage1", "{run}", "loss.png"),
            caption="../workflow/report/loss.rst",
            category="Training",
            subcategory="{dataset}",
        ),
    log:
        results("logs", "train", "{dataset}_stage1_{run}.log"),
    benchmark:
        results("benchmarks", "train", "{dataset}_stage1_{run}.tsv")
    priority: 4  # longest chain first: stage 1 -> stage 2 -> generation -> scores
    conda:
        "../envs/train.yaml"
    threads: TRAINING.threads
    resources:
        **TRAIN_RESOURCES,
    params:
        settings=settings(
            "seed",
            "models.sd",
            "audio_encoder",
            "projector",
            "adapters",
            "training.stage1",
            "training.variants.{run}",
            *LOOP,
        ),
        budget=budget,
        processes=TRAIN_PROCESSES,
        out=lambda w: results("train", w.dataset, "stage1", w.run),
    shell:
        "sonic train stage1 --settings {params.settings:q} --variant {wildcards.run:q} "
        "--manifest {input.manifest:q} --clap {input.clap:q} --clap-index {input.clap_index:q} "
        "--captions {input.captions:q} --out {params.out:q} --budget {params.budget} "
        "--processes {params.processes} --threads {threads} > {log:q} 2>&1"


rule train_stage2:
    input:
        manifest=rules.manifest.output.manifest,
        clap=rules.clap_features.output.embeddings,
        clap_index=rules.clap_features.output.index,
        sd=model_input("sd"),
        projector=stage1_projector,
    output:
        weights=directory(results("train", "{dataset}", "{variant}", "weights")),
        loss=report(
            results("train", "{dataset}", "{variant}", "loss.png"),
            caption="../workflow/report/loss.rst",
            category="Training",
            subcategory="{dataset}",
        ),
    log:
        results("logs", "train", "{dataset}_stage2_{variant}.log"),
    benchmark:
        results("benchmarks", "train", "{dataset}_stage2_{variant}.tsv")
    priority: 4  # the longest training job of its dataset, then generation and scores
    conda:
        "../envs/train.yaml"
    threads: TRAINING.threads
    resources:
        **TRAIN_RESOURCES,
    params:
        settings=settings(
            "seed",
            "models.sd",
            "models.clip_eval",
            "audio_encoder",
            "projector",
            "adapters",
            "generation",
            "training.stage2",
            "training.quality_check",
            "training.variants.{variant}",
            *LOOP,
        ),
        projector=lambda w, input: (
            ["--projector", input.projector] if input.projector else []
        ),
        budget=budget,
        processes=TRAIN_PROCESSES,
        out=lambda w: results("train", w.dataset, w.variant),
    shell:
        "sonic train stage2 --settings {params.settings:q} --variant {wildcards.variant:q} "
        "--manifest {input.manifest:q} --clap {input.clap:q} --clap-index {input.clap_index:q} "
        "{params.projector:q} --out {params.out:q} --budget {params.budget} "
        "--processes {params.processes} --threads {threads} > {log:q} 2>&1"
