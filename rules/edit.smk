# Audio-guided editing (paper §3.5): Plug-and-Play edits of source images with every evaluation audio, per method;
# Table 2; the sound-control and gate-norm figures. One inversion per source image (invert_sources), read by
# every method.


rule invert_sources:  # one DDIM inversion per source image, read by every method's editing run
    input:
        manifest=rules.manifest.output.manifest,
        sd=model_input("sd"),
    output:
        inversions=directory(results("edited", "inversions", "{dataset}")),
    log:
        results("logs", "edited", "inversions_{dataset}.log"),
    benchmark:
        results("benchmarks", "edited", "inversions_{dataset}.tsv")
    conda:
        "../envs/evaluate.yaml"
    threads: TRAINING.threads
    resources:
        **TRAIN_RESOURCES,
    params:
        settings=settings(
            "models.sd",
            "generation.resolution",
            "generation.steps",
            "editing.sources",
            "editing.num_sources",
            "editing.steps",
        ),
    shell:
        "sonic evaluate invert --settings {params.settings:q} --manifest {input.manifest:q} "
        "--out {output.inversions:q} --threads {threads} > {log:q} 2>&1"


rule edit_run:
    input:
        manifest=rules.manifest.output.manifest,
        clap=method_clap,
        clap_index=method_clap_index,
        sd=model_input("sd"),
        weights=edit_weights,
        inversions=rules.invert_sources.output.inversions,
    output:
        images=directory(results("edited", "{edit_method}", "{dataset}")),
    log:
        results("logs", "edited", "{edit_method}_{dataset}.log"),
    benchmark:
        results("benchmarks", "edited", "{edit_method}_{dataset}.tsv")
    conda:
        "../envs/evaluate.yaml"
    threads: TRAINING.threads
    resources:
        **TRAIN_RESOURCES,
    params:
        settings=settings("models.sd", "models.clip_eval", "generation", *EDIT_RUN_KEYS),
        weights=lambda w, input: ["--weights", input.weights] if input.weights else [],
    shell:
        "sonic evaluate edit --settings {params.settings:q} --method {wildcards.edit_method:q} "
        "{params.weights:q} --manifest {input.manifest:q} --clap {input.clap:q} "
        "--clap-index {input.clap_index:q} --inversions {input.inversions:q} --out {output.images:q} "
        "--threads {threads} > {log:q} 2>&1"


# what scoring an editing run reads, and its command: score_edit (Table 2's methods of a dataset in one job) and
# score_edit_release (the released model's run) alike
EDIT_SCORE_SETTINGS = settings(
    "models.clip_ais",
    "models.clip_eval",
    "models.fid_features",
    "models.sd",  # the FID network must be none of these (ModelPaths.fid_network)
    "models.clap",
    "generation.resolution",
    "evaluation.bootstrap_samples",
    "evaluation.interval_level",
)
EDIT_SCORE_SHELL = (
    "sonic evaluate score --settings {params.settings:q} --method {params.methods:q} "
    "--dataset {wildcards.dataset:q} --manifest {input.manifest:q} --references {input.references:q} "
    "--references-index {input.index:q} --images {input.images:q} --seeds {params.sources} "
    "--out {output.scores:q} --per-image {output.per_image:q} --threads {threads} > {log:q} 2>&1"
)


rule score_edit:  # all methods of a dataset in one job (one process: imports and models loaded once)
    input:
        manifest=rules.manifest.output.manifest,
        references=rules.eval_references.output.references,
        index=rules.eval_references.output.index,
        images=lambda w: [
            rules.edit_run.output.images.format(edit_method=m, dataset=w.dataset)
            for m in EDIT_METHODS
        ],
    output:
        scores=expand(
            results("scores_edit", "{edit_method}", "{{dataset}}.json"),
            edit_method=EDIT_METHODS,
        ),
        per_image=expand(
            results("scores_edit", "{edit_method}", "{{dataset}}_images.csv"),
            edit_method=EDIT_METHODS,
        ),
    log:
        results("logs", "scores_edit", "{dataset}.log"),
    benchmark:
        results("benchmarks", "scores_edit", "{dataset}.tsv")
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        settings=EDIT_SCORE_SETTINGS,
        sources=EDITING.num_sources,
        methods=EDIT_METHODS,
    shell:
        EDIT_SCORE_SHELL


rule score_edit_release:  # the released model's edits of a dataset (models.release), scored as score_edit does
    input:
        manifest=rules.manifest.output.manifest,
        references=rules.eval_references.output.references,
        index=rules.eval_references.output.index,
        images=rules.edit_run.output.images.replace("{edit_method}", RELEASE),
    output:
        scores=results("scores_edit", RELEASE, "{dataset}.json"),
        per_image=results("scores_edit", RELEASE, "{dataset}_images.csv"),
    log:
        results("logs", "scores_edit", f"{RELEASE}_{{dataset}}.log"),
    benchmark:
        results("benchmarks", "scores_edit", f"{RELEASE}_{{dataset}}.tsv")
    wildcard_constraints:
        dataset=one_of(RELEASE_DATASETS),
    conda:
        "../envs/evaluate.yaml"
    threads: 1
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        settings=EDIT_SCORE_SETTINGS,
        sources=EDITING.num_sources,
        methods=RELEASE,
    shell:
        EDIT_SCORE_SHELL


rule table2:
    input:
        scores=[
            results("scores_edit", m, f"{d}.json")
            for d in EDIT_DATASETS
            for m in edit_methods(d)
        ],
        per_image=[
            results("scores_edit", m, f"{d}_images.csv")
            for d in EDIT_DATASETS
            for m in edit_methods(d)
        ],
        figures=expand(results("figures", "fig10_{dataset}.png"), dataset=EDIT_DATASETS),
        grids=expand(results("figures", "{dataset}_edits.png"), dataset=EDIT_DATASETS),
    output:
        csv=report(
            results("table2.csv"),
            caption="../workflow/report/table2.rst",
            category="Tables",
        ),
        md=results("table2.md"),
    log:
        results("logs", "table2.log"),
    benchmark:
        results("benchmarks", "table2.tsv")
    conda:
        "../envs/evaluate.yaml"
    params:
        paper=PAPER_TABLES,
        intervals=INTERVALS,
    shell:
        "sonic evaluate table table2 --scores {input.scores:q} --per-image {input.per_image:q} "
        "{params.intervals:q} --out {output.csv:q} --markdown {output.md:q} {params.paper:q} "
        "--title 'Table 2: editing' > {log:q} 2>&1"


rule edit_figures:
    input:
        manifest=rules.manifest.output.manifest,
        sd=model_input("sd"),
        clap=model_input("clap"),
        weights=lambda w: rules.train_stage2.output.weights.format(
            dataset=w.dataset, variant="full"
        ),
        generated=lambda w: images_of("SonicDiffusion", w.dataset),
        clip_eval=model_input("clip_eval"),
    output:
        fig10=report(
            results("figures", "fig10_{dataset}.png"),
            caption="../workflow/report/fig10.rst",
            category="Figures",
        ),
        fig10_json=results("figures", "fig10_{dataset}.json"),
        norms_csv=results("figures", "gate_norms_{dataset}.csv"),
        norms_png=report(
            results("figures", "gate_norms_{dataset}.png"),
            caption="../workflow/report/gate_norms.rst",
            category="Figures",
        ),
    log:
        results("logs", "figures", "edit_{dataset}.log"),
    benchmark:
        results("benchmarks", "figures", "edit_{dataset}.tsv")
    conda:
        "../envs/evaluate.yaml"
    threads: TRAINING.threads
    resources:
        **TRAIN_RESOURCES,
    params:
        settings=settings(
            "models.sd",
            "models.clap",
            "models.clip_eval",
            "audio_encoder",
            "generation",
            "editing.sources",
            "editing.steps",
            "editing.guidance_scale",
            "editing.control_pair",
        ),
    shell:
        "sonic evaluate figures --settings {params.settings:q} --weights {input.weights:q} "
        "--manifest {input.manifest:q} --generated {input.generated:q} --fig10 {output.fig10:q} "
        "--fig10-json {output.fig10_json:q} --norms-csv {output.norms_csv:q} "
        "--norms-png {output.norms_png:q} --threads {threads} > {log:q} 2>&1"


rule edit_grid:
    input:
        manifest=rules.manifest.output.manifest,
        runs=lambda w: [
            rules.edit_run.output.images.format(edit_method=m, dataset=w.dataset)
            for m in edit_methods(w.dataset)
        ],
    output:
        png=report(
            results("figures", "{dataset}_edits.png"),
            caption="../workflow/report/edit_grid.rst",
            category="Edited images",
            subcategory="{dataset}",
        ),
    log:
        results("logs", "figures", "{dataset}_edits.log"),
    benchmark:
        results("benchmarks", "figures", "{dataset}_edits.tsv")
    conda:
        "../envs/evaluate.yaml"
    params:
        runs=lambda w, input: [
            f"{m}={p}" for m, p in zip(edit_methods(w.dataset), input.runs)
        ],
    shell:
        "sonic evaluate grid --edits --manifest {input.manifest:q} --runs {params.runs:q} "
        "--out {output.png:q} > {log:q} 2>&1"
