# Evaluation (docs/evaluation.md): competitor training, generation runs of the evaluation subset, the cached
# references of each dataset, scores per method and dataset, and the tables.


rule train_competitor:
    input:
        manifest=rules.manifest.output.manifest,
        clap=rules.clap_features.output.embeddings,
        clap_index=rules.clap_features.output.index,
        sd=model_input("sd"),
    output:
        weights=directory(results("train", "{dataset}", "{competitor}", "weights")),
        loss=report(
            results("train", "{dataset}", "{competitor}", "loss.png"),
            caption="../workflow/report/loss.rst",
            category="Training",
            subcategory="{dataset}",
        ),
    log:
        results("logs", "train", "{dataset}_{competitor}.log"),
    benchmark:
        results("benchmarks", "train", "{dataset}_{competitor}.tsv")
    priority: 2  # before generation and scores, which are short and fill the end
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
            "generation.resolution",
            "competitors.{competitor_key}",
            *LOOP,
        ),
        method=lambda w: competitor_key(w.competitor),
        budget=budget,
        processes=TRAIN_PROCESSES,
        out=lambda w: results("train", w.dataset, w.competitor),
    shell:
        "sonic train {params.method:q} --settings {params.settings:q} "
        "--manifest {input.manifest:q} --clap {input.clap:q} --clap-index {input.clap_index:q} "
        "--out {params.out:q} --budget {params.budget} "
        "--processes {params.processes} --threads {threads} > {log:q} 2>&1"


rule eval_references:
    input:
        manifest=rules.manifest.output.manifest,
        wav2clip=model_input("wav2clip"),
        clip_ais=model_input("clip_ais"),
        clip_eval=model_input("clip_eval"),
        fid=model_input("fid_features"),
    output:
        references=results("eval", "{dataset}", "references.safetensors"),
        index=results("eval", "{dataset}", "references.csv"),
    log:
        results("logs", "eval", "{dataset}_references.log"),
    benchmark:
        results("benchmarks", "eval", "{dataset}_references.tsv")
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        settings=settings(
            "models.wav2clip",
            "models.clip_ais",
            "models.clip_eval",
            "models.fid_features",
            "models.sd",  # the FID network must be none of these (ModelPaths.fid_network)
            "models.clap",
            "generation.resolution",
        ),
    shell:
        "sonic evaluate references --settings {params.settings:q} --manifest {input.manifest:q} "
        "--out {output.references:q} --index {output.index:q} --threads {threads} > {log:q} 2>&1"


rule generate_eval:
    input:
        manifest=rules.manifest.output.manifest,
        clap=method_clap,
        clap_index=method_clap_index,
        sd=model_input("sd"),
        weights=method_weights,
    output:
        images=directory(results("generated", "{method}", "{dataset}")),
    log:
        results("logs", "generated", "{method}_{dataset}.log"),
    benchmark:
        results("benchmarks", "generated", "{method}_{dataset}.tsv")
    wildcard_constraints:
        method=one_of(list(TABLE1_TRAINED) + ABLATION_METHODS + [RELEASE]),
    conda:
        "../envs/evaluate.yaml"
    threads: TRAINING.threads
    resources:
        **TRAIN_RESOURCES,
    params:
        settings=settings(
            "models.sd",
            "generation",
            "evaluation.seeds",
            "evaluation.steps",
            "evaluation.guidance_scale",
            "evaluation.batch_size",
        ),
    shell:
        "sonic evaluate generate --settings {params.settings:q} --method {wildcards.method:q} "
        "--weights {input.weights:q} --manifest {input.manifest:q} --clap {input.clap:q} "
        "--clap-index {input.clap_index:q} --out {output.images:q} --threads {threads} > {log:q} 2>&1"


# Table 1's methods of one dataset are scored in one job (score_table1: each process spends seconds on imports and
# model loading); generation runs one job per method and dataset (generate_eval), which packs the 2-core demo
# better than one long job per dataset. The ablation variants are scored one job each (the rule below, constrained
# to those methods).
rule score:
    input:
        manifest=rules.manifest.output.manifest,
        references=rules.eval_references.output.references,
        index=rules.eval_references.output.index,
        images=method_images,
    output:
        scores=results("scores", "{method}", "{dataset}.json"),
        per_image=results("scores", "{method}", "{dataset}_images.csv"),
    log:
        results("logs", "scores", "{method}_{dataset}.log"),
    benchmark:
        results("benchmarks", "scores", "{method}_{dataset}.tsv")
    wildcard_constraints:
        method=one_of(ABLATION_METHODS + [RELEASE]),
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        settings=settings(
            "models.clip_ais",
            "models.clip_eval",
            "models.fid_features",
            "models.sd",  # the FID network must be none of these (ModelPaths.fid_network)
            "models.clap",
            "generation.resolution",
            "evaluation.seeds",
            "evaluation.bootstrap_samples",
            "evaluation.interval_level",
        ),
    shell:
        "sonic evaluate score --settings {params.settings:q} --method {wildcards.method:q} "
        "--dataset {wildcards.dataset:q} --manifest {input.manifest:q} --references {input.references:q} "
        "--references-index {input.index:q} --images {input.images:q} --out {output.scores:q} "
        "--per-image {output.per_image:q} --threads {threads} > {log:q} 2>&1"


rule score_table1:
    input:
        manifest=rules.manifest.output.manifest,
        references=rules.eval_references.output.references,
        index=rules.eval_references.output.index,
        images=lambda w: [images_of(m, w.dataset) for m in TABLE1_METHODS],
    output:
        scores=expand(
            results("scores", "{method}", "{{dataset}}.json"), method=TABLE1_METHODS
        ),
        per_image=expand(
            results("scores", "{method}", "{{dataset}}_images.csv"),
            method=TABLE1_METHODS,
        ),
    log:
        results("logs", "scores", "table1_{dataset}.log"),
    benchmark:
        results("benchmarks", "scores", "table1_{dataset}.tsv")
    wildcard_constraints:
        dataset=one_of(LABELLED),
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        settings=settings(
            "models.clip_ais",
            "models.clip_eval",
            "models.fid_features",
            "models.sd",  # the FID network must be none of these (ModelPaths.fid_network)
            "models.clap",
            "generation.resolution",
            "evaluation.seeds",
            "evaluation.bootstrap_samples",
            "evaluation.interval_level",
        ),
        methods=TABLE1_METHODS,
    shell:
        "sonic evaluate score --settings {params.settings:q} --method {params.methods:q} "
        "--dataset {wildcards.dataset:q} --manifest {input.manifest:q} --references {input.references:q} "
        "--references-index {input.index:q} --images {input.images:q} --out {output.scores:q} "
        "--per-image {output.per_image:q} --threads {threads} > {log:q} 2>&1"


# a dataset without labels: Table 1 without the label-conditioned competitors (rules/common.smk, UNLABELLED)
use rule score_table1 as score_table1_unlabelled with:
    input:
        manifest=rules.manifest.output.manifest,
        references=rules.eval_references.output.references,
        index=rules.eval_references.output.index,
        images=lambda w: [images_of(m, w.dataset) for m in TABLE1_UNLABELLED_METHODS],
    output:
        scores=expand(
            results("scores", "{method}", "{{dataset}}.json"),
            method=TABLE1_UNLABELLED_METHODS,
        ),
        per_image=expand(
            results("scores", "{method}", "{{dataset}}_images.csv"),
            method=TABLE1_UNLABELLED_METHODS,
        ),
    wildcard_constraints:
        dataset=one_of(UNLABELLED),
    params:
        methods=TABLE1_UNLABELLED_METHODS,


rule table1:
    input:
        scores=[
            rules.score.output.scores.format(method=m, dataset=d)
            for d in DATASETS
            for m in table1_methods(d)
        ],
        per_image=[
            rules.score.output.per_image.format(method=m, dataset=d)
            for d in DATASETS
            for m in table1_methods(d)
        ],
    output:
        csv=report(
            results("table1.csv"),
            caption="../workflow/report/table1.rst",
            category="Tables",
        ),
        md=results("table1.md"),
    log:
        results("logs", "table1.log"),
    benchmark:
        results("benchmarks", "table1.tsv")
    conda:
        "../envs/evaluate.yaml"
    params:
        paper=PAPER_TABLES,
        intervals=INTERVALS,
    shell:
        "sonic evaluate table table1 --scores {input.scores:q} --per-image {input.per_image:q} "
        "{params.intervals:q} --out {output.csv:q} --markdown {output.md:q} {params.paper:q} "
        "--title 'Table 1: generation' > {log:q} 2>&1"


rule ablation_table:
    input:
        scores=ablation_scores,
        per_image=ablation_per_image,
    output:
        csv=report(
            results("{table}.csv"),
            caption="../workflow/report/ablations.rst",
            category="Tables",
        ),
        md=results("{table}.md"),
    log:
        results("logs", "{table}.log"),
    benchmark:
        results("benchmarks", "{table}.tsv")
    wildcard_constraints:
        table="table3|table4|tableS1",
    conda:
        "../envs/evaluate.yaml"
    params:
        paper=PAPER_TABLES,
        intervals=INTERVALS,
    shell:
        "sonic evaluate table {wildcards.table:q} --scores {input.scores:q} --per-image {input.per_image:q} "
        "{params.intervals:q} --out {output.csv:q} --markdown {output.md:q} {params.paper:q} "
        "--title {wildcards.table:q} > {log:q} 2>&1"


rule ablations:
    input:
        expand(rules.ablation_table.output.csv, table=ABLATION_TABLES),


rule comparison_grid:
    input:
        manifest=rules.manifest.output.manifest,
        runs=lambda w: [images_of(m, w.dataset) for m in table1_methods(w.dataset)],
    output:
        png=report(
            results("figures", "{dataset}_methods.png"),
            caption="../workflow/report/grid.rst",
            category="Generated images",
            subcategory="{dataset}",
        ),
    log:
        results("logs", "figures", "{dataset}_methods.log"),
    benchmark:
        results("benchmarks", "figures", "{dataset}_methods.tsv")
    conda:
        "../envs/evaluate.yaml"
    params:
        runs=lambda w, input: [
            f"{m}={p}" for m, p in zip(table1_methods(w.dataset), input.runs)
        ],
    shell:
        "sonic evaluate grid --manifest {input.manifest:q} --runs {params.runs:q} "
        "--out {output.png:q} > {log:q} 2>&1"


# Guidance, measured (docs/evaluation.md#guidance; sonic.evaluation.guidance): every Table 1 method trained here at
# every scale of evaluation.guidance_sweep on training clips, per dataset, and the scale the stated rule chooses from
# all of them. Named target `guidance`, outside `all`.
rule guidance_sweep:
    input:
        manifest=rules.manifest.output.manifest,
        clap=rules.clap_features.output.embeddings,
        clap_index=rules.clap_features.output.index,
        references=rules.eval_references.output.references,
        index=rules.eval_references.output.index,
        sd=model_input("sd"),
        clip_eval=model_input("clip_eval"),
        fid=model_input("fid_features"),
        weights=guidance_weights,
    output:
        csv=results("figures", "guidance_{dataset}.csv"),
        png=report(
            results("figures", "guidance_{dataset}.png"),
            caption="../workflow/report/guidance.rst",
            category="Guidance",
            subcategory="{dataset}",
        ),
        grid=report(
            results("figures", "guidance_{dataset}_grid.png"),
            caption="../workflow/report/guidance_grid.rst",
            category="Guidance",
            subcategory="{dataset}",
        ),
        images=directory(results("guidance", "{dataset}")),
    log:
        results("logs", "guidance", "{dataset}.log"),
    benchmark:
        results("benchmarks", "guidance", "{dataset}.tsv")
    wildcard_constraints:
        dataset=one_of(GUIDANCE_DATASETS),
    conda:
        "../envs/evaluate.yaml"
    threads: TRAINING.threads
    resources:
        **TRAIN_RESOURCES,
    params:
        settings=settings(
            "models.sd",
            "models.clip_ais",
            "models.clip_eval",
            "models.fid_features",
            "models.clap",  # the FID network must be none of these (ModelPaths.fid_network)
            "generation.steps",
            "generation.resolution",
            "generation.batch_size",  # not the guidance scale: the sweep chooses it
            "evaluation.steps",
            "evaluation.batch_size",
            "evaluation.guidance_sweep",
        ),
        methods=list(TABLE1_TRAINED),
    shell:
        "sonic evaluate guidance --settings {params.settings:q} --dataset {wildcards.dataset:q} "
        "--method {params.methods:q} --weights {input.weights:q} --manifest {input.manifest:q} "
        "--clap {input.clap:q} --clap-index {input.clap_index:q} --references {input.references:q} "
        "--references-index {input.index:q} --images {output.images:q} --out {output.csv:q} "
        "--figure {output.png:q} --grid {output.grid:q} --threads {threads} > {log:q} 2>&1"


rule guidance_choice:
    input:
        sweeps=expand(rules.guidance_sweep.output.csv, dataset=GUIDANCE_DATASETS),
    output:
        json=results("figures", "guidance_choice.json"),
        md=results("figures", "guidance.md"),
    log:
        results("logs", "guidance", "choice.log"),
    benchmark:
        results("benchmarks", "guidance", "choice.tsv")
    conda:
        "../envs/evaluate.yaml"
    params:
        max_clipped=GUIDANCE_SWEEP.max_clipped if GUIDANCE_SWEEP else None,
    shell:
        "sonic evaluate guidance-choice --sweeps {input.sweeps:q} --max-clipped {params.max_clipped} "
        "--out {output.json:q} --markdown {output.md:q} > {log:q} 2>&1"


rule guidance:
    input:
        rules.guidance_choice.output.json,
