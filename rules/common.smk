# Shared helpers. The config is validated first, so every rule can trust its keys.
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

validate(config, schema="../workflow/schemas/config.schema.yaml")
# The package's modules used at parse time are plain Python (no torch); sonic.config also checks the names that
# refer to datasets and variants (a misspelt one is an error, not a silent skip).
sys.path.insert(0, str(Path(workflow.basedir)))
from sonic.config import check_names  # noqa: E402

check_names(config, "config")

RESULTS = Path(config.get("results", "results"))


def _shipped(path):
    """A relative path that names a file shipped with the workflow (e.g. workflow/configs/unet_demo.json) and is
    absent from the working directory, made absolute, so `snakemake -d <elsewhere>` still finds it.
    """
    if path and not Path(path).is_absolute() and not Path(path).exists():
        shipped = Path(workflow.basedir, path)
        if shipped.exists():
            return str(shipped)
    return path


config["models"]["unet_config"] = _shipped(config["models"].get("unet_config"))
DATA = config["data"]
DATASETS = sorted(DATA["datasets"])
SHARDS = list(range(DATA.get("shards", 2)))


def results(*parts):
    """A path under the configured results folder."""
    return str(RESULTS.joinpath(*parts))


def _effective_config():
    """The merged config of this run (config files + --config overrides), for `sonic` commands.

    Rules pass only the config slices they depend on as `params`, so a change reruns exactly the rules it
    affects; the file itself is not an input.
    """
    path = Path(".snakemake", "sonic", "config.yaml")
    text = yaml.safe_dump(config, sort_keys=True)
    if not path.is_file() or path.read_text() != text:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return str(path)


CONFIG = _effective_config()


def synth_enabled():
    return bool((DATA.get("synth") or {}).get("size"))


def raw_input(wildcards):
    """Demo profile: the synthetic copy of the dataset; paper profile: nothing (the native copy exists)."""
    if synth_enabled():
        return rules.synth.output.root.format(dataset=wildcards.dataset)
    return []


def model_input(key):
    """A configured model location as an input of a job. Local paths (files or folders, possibly built by a
    pretrain rule) are tracked; hub ids (`hub:<org>/<name>`) are not files and are left out.
    """
    location = config["models"].get(key)
    if not location or location.startswith("hub:"):
        return []
    return location


PRETRAIN = (config.get("pretrain") or {}).get("enabled", False)


# Training variants (sonic/variants.py is plain Python, importable without torch).
from sonic import variants  # noqa: E402

TRAINING = config.get("training") or {}
# per job of synthesis, CLAP features and SD pretraining (training jobs: training.threads)
THREADS = config.get("threads", 2)
VARIANTS = variants.variant_names(config)
STAGE1_RUN = variants.stage1_runs(config)
TRAIN_RESOURCES = {
    k: v for k, v in (TRAINING.get("resources") or {}).items() if v
}  # gpu: 0 is left out


def budget(wildcards):
    """The dataset's factor on every training run's steps (training.budget; 1 where unnamed)."""
    return float((TRAINING.get("budget") or {}).get(wildcards.dataset, 1.0))


wildcard_constraints:
    dataset="[^/]+",
    variant="|".join(VARIANTS),
    run="|".join(sorted({r for r in STAGE1_RUN.values() if r})),


def stage1_projector(wildcards):
    """The stage-1 projector a variant starts stage 2 from (nothing for a variant without stage 1)."""
    run = STAGE1_RUN[wildcards.variant]
    if run is None:
        return []
    return rules.train_stage1.output.projector.format(
        dataset=wildcards.dataset, run=run
    )


# Evaluation (README, Evaluation). Method ids: "SonicDiffusion" (variant full), "SonicDiffusion-<variant>", the trained
# competitors, and external systems scored from a folder (evaluation.external).
from sonic.evaluation.tables import ABLATION_VARIANTS  # noqa: E402

EVALUATION = config.get("evaluation") or {}
COMPETITORS = ["AudioToken", "GlueGen"]
EXTERNAL = EVALUATION.get("external") or {}
EXTERNAL_METHODS = list(EXTERNAL.get("methods") or [])
TABLE1_TRAINED = ["SonicDiffusion"] + COMPETITORS  # generated here, one job per dataset
TABLE1_METHODS = TABLE1_TRAINED + EXTERNAL_METHODS
ABLATION_TABLES = list(ABLATION_VARIANTS)
ABLATION_DATASETS = EVALUATION.get("ablation_datasets", DATASETS)
PAPER_TABLES = (  # arguments of the table commands: `--paper <folder>` or none
    ["--paper", _shipped(EVALUATION["paper_tables"])]
    if EVALUATION.get("paper_tables")
    else []
)


def sonic_method(variant):
    return "SonicDiffusion" if variant == "full" else f"SonicDiffusion-{variant}"


OWN_METHODS = {sonic_method(v): v for v in VARIANTS}


wildcard_constraints:
    competitor="|".join(COMPETITORS),
    method="|".join(list(OWN_METHODS) + COMPETITORS + EXTERNAL_METHODS),


def weights_of(method, dataset):
    """The trained weights a generation run of one of our methods starts from."""
    if method in OWN_METHODS:
        return rules.train_stage2.output.weights.format(
            dataset=dataset, variant=OWN_METHODS[method]
        )
    if method in COMPETITORS:
        return rules.train_competitor.output.weights.format(
            dataset=dataset, competitor=method
        )
    raise ValueError(f"{method} is scored from evaluation.external, not generated here")


def method_weights(wildcards):
    return weights_of(wildcards.method, wildcards.dataset)


def images_of(method, dataset):
    """Our methods: the generation run; external systems: <external.root>/<method>/<dataset>/ (README)."""
    if method in EXTERNAL_METHODS:
        return str(Path(EXTERNAL["root"], method, dataset))
    return rules.generate_eval.output.images.format(method=method, dataset=dataset)


def method_images(wildcards):
    return images_of(wildcards.method, wildcards.dataset)


def ablation_scores(wildcards):
    return expand(
        rules.score.output.scores,
        method=[sonic_method(v) for v in ABLATION_VARIANTS[wildcards.table]],
        dataset=ABLATION_DATASETS,
    )


# Editing (paper §3.5): Table 2 methods; PnP (text label) runs on the same frozen SD through the full model's
# pipeline with its adapters off.
EDITING = config.get("editing") or {}
EDIT_METHODS = ["SonicDiffusion", "PnP", "AudioToken", "GlueGen"]
EDIT_DATASETS = EDITING.get("datasets", DATASETS)


wildcard_constraints:
    edit_method="|".join(EDIT_METHODS),


def edit_weights(wildcards):
    if wildcards.edit_method in COMPETITORS:
        return rules.train_competitor.output.weights.format(
            dataset=wildcards.dataset, competitor=wildcards.edit_method
        )
    return rules.train_stage2.output.weights.format(
        dataset=wildcards.dataset, variant="full"
    )
