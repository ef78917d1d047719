# SonicDiffusion reproduction workflow. Stages live in rules/*.smk; helpers in rules/common.smk.
from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/data.smk"
include: "rules/pretrain.smk"
include: "rules/features.smk"
include: "rules/model.smk"
include: "rules/train.smk"
include: "rules/evaluate.smk"
include: "rules/edit.smk"
include: "rules/replicates.smk"


rule all:
    default_target: True
    input:
        rules.params.output.json,
        expand(rules.manifest.output.manifest, dataset=DATASETS),
        expand(rules.clap_features.output.embeddings, dataset=DATASETS),
        expand(rules.captions.output.captions, dataset=DATASETS),
        model_input("sd") if PRETRAIN else [],
        expand(
            rules.train_stage2.output.weights,
            dataset=DATASETS,
            variant=TRAINING.run_variants,
        ),
        rules.table1.output.csv,
        expand(rules.comparison_grid.output.png, dataset=DATASETS),
