# Replicates (docs/evaluation.md#replicates): Table 1's trained methods and the variants of
# evaluation.replicates.ablation_tables, retrained with each training seed (`seed` + 1, ...) under
# results/replicates/seed<seed>/ (Table 1's on the datasets with labels), generated and scored by the single run's rules (`use rule`: the same commands,
# threads and resources; only `seed` differs in the training settings), then the tables across seeds. The config's
# own seed is the single run (results/train, results/scores), reused. Targets `replicates` and
# `ablations_replicates`, outside `all`.


use rule train_stage1 as replicate_stage1 with:
    output:
        projector=directory(
            replicate_results("train", "{dataset}", "stage1", "{run}", "projector")
        ),
        loss=replicate_results("train", "{dataset}", "stage1", "{run}", "loss.png"),
    log:
        replicate_results("logs", "train", "{dataset}_stage1_{run}.log"),
    benchmark:
        replicate_results("benchmarks", "train", "{dataset}_stage1_{run}.tsv")
    params:
        settings=reseeded(rules.train_stage1.params.settings),
        out=lambda w, output: str(Path(output.projector).parent),


use rule train_stage2 as replicate_stage2 with:
    output:
        weights=directory(
            replicate_results("train", "{dataset}", "{variant}", "weights")
        ),
        loss=replicate_results("train", "{dataset}", "{variant}", "loss.png"),
    log:
        replicate_results("logs", "train", "{dataset}_stage2_{variant}.log"),
    benchmark:
        replicate_results("benchmarks", "train", "{dataset}_stage2_{variant}.tsv")
    params:
        settings=reseeded(rules.train_stage2.params.settings),
        out=lambda w, output: str(Path(output.weights).parent),


use rule train_competitor as replicate_competitor with:
    output:
        weights=directory(
            replicate_results("train", "{dataset}", "{competitor}", "weights")
        ),
        loss=replicate_results("train", "{dataset}", "{competitor}", "loss.png"),
    log:
        replicate_results("logs", "train", "{dataset}_{competitor}.log"),
    benchmark:
        replicate_results("benchmarks", "train", "{dataset}_{competitor}.tsv")
    params:
        settings=reseeded(rules.train_competitor.params.settings),
        out=lambda w, output: str(Path(output.weights).parent),


# generation: the same clips, seeds and noise as the single run; only the trained weights differ
use rule generate_eval as replicate_generate with:
    output:
        images=directory(replicate_results("generated", "{method}", "{dataset}")),
    log:
        replicate_results("logs", "generated", "{method}_{dataset}.log"),
    benchmark:
        replicate_results("benchmarks", "generated", "{method}_{dataset}.tsv")


use rule score as replicate_score with:
    output:
        scores=replicate_results("scores", "{method}", "{dataset}.json"),
        per_image=replicate_results("scores", "{method}", "{dataset}_images.csv"),
    log:
        replicate_results("logs", "scores", "{method}_{dataset}.log"),
    benchmark:
        replicate_results("benchmarks", "scores", "{method}_{dataset}.tsv")


use rule score_table1 as replicate_score_table1 with:
    input:
        manifest=rules.manifest.output.manifest,
        references=rules.eval_references.output.references,
        index=rules.eval_references.output.index,
        images=lambda w: [images_of(m, w.dataset, w.replicate) for m in TABLE1_TRAINED],
    output:
        scores=[
            replicate_results("scores", m, "{dataset}.json") for m in TABLE1_TRAINED
        ],
        per_image=[
            replicate_results("scores", m, "{dataset}_images.csv")
            for m in TABLE1_TRAINED
        ],
    log:
        replicate_results("logs", "scores", "table1_{dataset}.log"),
    benchmark:
        replicate_results("benchmarks", "scores", "table1_{dataset}.tsv")
    params:
        methods=list(TABLE1_TRAINED),


rule table1_replicates:
    input:
        scores=replicate_runs(TABLE1_TRAINED, LABELLED)[0],
        per_image=replicate_runs(TABLE1_TRAINED, LABELLED, "per_image")[0],
    output:
        csv=report(
            results("table1_replicates.csv"),
            caption="../workflow/report/replicates.rst",
            category="Tables",
        ),
        summary=results("table1_replicates_summary.csv"),
        md=results("table1_replicates.md"),
    log:
        results("logs", "table1_replicates.log"),
    benchmark:
        results("benchmarks", "table1_replicates.tsv")
    conda:
        "../envs/evaluate.yaml"
    params:
        seeds=replicate_runs(TABLE1_TRAINED, LABELLED)[1],
        intervals=INTERVALS,
    shell:
        "sonic evaluate replicates table1 --scores {input.scores:q} --per-image {input.per_image:q} "
        "--training-seeds {params.seeds} {params.intervals:q} --out {output.csv:q} "
        "--summary {output.summary:q} --markdown {output.md:q} "
        "--title 'Table 1 across training seeds' > {log:q} 2>&1"


rule ablation_table_replicates:
    input:
        scores=lambda w: ablation_replicate_runs(w)[0],
        per_image=lambda w: ablation_replicate_runs(w, "per_image")[0],
    output:
        csv=report(
            results("{table}_replicates.csv"),
            caption="../workflow/report/replicates.rst",
            category="Tables",
        ),
        summary=results("{table}_replicates_summary.csv"),
        md=results("{table}_replicates.md"),
    log:
        results("logs", "{table}_replicates.log"),
    benchmark:
        results("benchmarks", "{table}_replicates.tsv")
    wildcard_constraints:
        table="table3|table4|tableS1",
    conda:
        "../envs/evaluate.yaml"
    params:
        seeds=lambda w: ablation_replicate_runs(w)[1],
        intervals=INTERVALS,
    shell:
        "sonic evaluate replicates {wildcards.table:q} --scores {input.scores:q} "
        "--per-image {input.per_image:q} --training-seeds {params.seeds} {params.intervals:q} "
        "--out {output.csv:q} --summary {output.summary:q} --markdown {output.md:q} "
        "--title '{wildcards.table} across training seeds' > {log:q} 2>&1"


rule replicates:
    input:
        rules.table1_replicates.output.md,


rule ablations_replicates:
    input:
        expand(rules.ablation_table_replicates.output.md, table=REPLICATE_TABLES),
