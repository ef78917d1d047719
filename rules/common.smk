# Shared helpers. The package resolves the config (sonic.config: schema check, defaults, names) exactly as
# `sonic <command> --config FILE` does; each rule then passes its command only the settings it reads, as a JSON
# `params` value (`settings(...)` below): they are declared, trigger reruns when they change, and nothing is
# written at parse time.
import copy
import json
import re
import sys
from pathlib import Path

sys.path.insert(0, str(Path(workflow.basedir)))
from sonic import (
    config as sonic_config,
    variants,
)  # noqa: E402  (plain Python, no torch)
from sonic.data.datasets import (  # noqa: E402  (plain Python, no torch)
    PAPER_FORMATS,
    DatasetSpec,
    check_config,
    has_labels,
)
from sonic.methods import (  # noqa: E402
    ABLATION_VARIANTS,
    COMPETITORS,
    EDIT_METHODS,
    EDITORS,
    RELEASE,
    RELEASE_ENCODER,
    TABLE1_TRAINED,
    TABLE1_UNLABELLED,
    competitor_key,
    sonic_method,
)

# `sonic` from an activated environment (or a conda env) first, else the one beside this Snakemake's Python.
shell.prefix(f'set -euo pipefail; PATH="$PATH:{Path(sys.executable).parent}"; ')


def _shipped(path):
    """A relative path that names a file shipped with the workflow (e.g. workflow/configs/unet_demo.json) and is
    absent from the working directory, made absolute, so `snakemake -d <elsewhere>` still finds it.
    """
    if path and not Path(path).is_absolute() and not Path(path).exists():
        shipped = Path(workflow.basedir, path)
        if shipped.exists():
            return str(shipped)
    return path


def _resolve(data):
    data = copy.deepcopy(data)
    models, evaluation = data.get("models") or {}, data.get("evaluation") or {}
    if models.get("unet_config"):
        models["unet_config"] = _shipped(models["unet_config"])
    if evaluation.get("paper_tables"):
        evaluation["paper_tables"] = _shipped(evaluation["paper_tables"])
    source = ", ".join(map(str, workflow.configfiles)) or "--config"
    return sonic_config.from_dict(data, f"snakemake config ({source})")


CFG = _resolve(config)
RESOLVED = CFG.to_dict()  # plain data, for sonic.variants
RESULTS = Path(CFG.results)
DATA = CFG.data
DATASETS = sorted(DATA.datasets)
SHARDS = list(range(DATA.shards))

# Datasets without labels (a `folder` whose videos sit directly under its root; docs/own_videos.md): SonicDiffusion
# trains and AIS, IIS and FID are scored; the label-conditioned competitors, editing (Table 2), the guidance sweep and
# the replicates are left out. Read from the folders at parse time, as the jobs of a dataset depend on it.
SPECS = {d: DatasetSpec.from_config(d, DATA.datasets[d]) for d in DATASETS}
for _spec in SPECS.values():
    try:
        check_config(_spec)  # e.g. a vggsound dataset's `labels` against its CSV
    except sonic_config.ConfigError as err:
        raise sonic_config.ConfigError(f"{CFG.source}: {err}") from None
LABELLED = [d for d in DATASETS if has_labels(SPECS[d])]
UNLABELLED = [d for d in DATASETS if d not in LABELLED]
# the paper's formats, which the demo's synthetic world writes and its miniature models are pretrained on; datasets
# of your own (folder, vggsound) are read from their roots and never change the shared miniature models
SYNTH_DATASETS = [d for d in DATASETS if SPECS[d].format in PAPER_FORMATS]


def results(*parts):
    """A path under the configured results folder."""
    return str(RESULTS.joinpath(*parts))


def settings(*keys):
    """The `params` value of a rule: the settings under the dotted `keys` (`{wildcard}`s filled in per job) as
    the JSON its command takes with `--settings`. A key left out is an error in the command, never a default.
    """

    def value(wildcards):
        named = dict(wildcards.items())
        if "competitor" in named:  # competitors.<key> of the competitor's method id
            named["competitor_key"] = competitor_key(named["competitor"])
        return json.dumps(
            CFG.select(*(k.format(**named) for k in keys)), sort_keys=True
        )

    return value


LOOP = [
    f"training.{k}" for k in sonic_config.LOOP_KEYS
]  # every trained method's loop settings


def raw_input(wildcards):
    """Demo profile: the synthetic copy of the dataset; paper profile and datasets of your own: nothing (the native
    copy exists)."""
    if DATA.synth.size and wildcards.dataset in SYNTH_DATASETS:
        return rules.synth.output.root.format(dataset=wildcards.dataset)
    return []


def split_lists(wildcards):
    """The `file` split's lists of the dataset (data.split: file), read by its manifest and its check."""
    if DATA.split != "file":
        return []
    return list((DATA.split_files(wildcards.dataset) or {}).values())


def model_input(key):
    """A configured model location as an input of a job. Local paths (files or folders, possibly built by a
    pretrain rule) are tracked; hub ids (`hub:<org>/<name>`) are not files and are left out.
    """
    location = getattr(CFG.models, key)
    if not location or location.startswith("hub:"):
        return []
    return location


PRETRAIN = CFG.pretrain.enabled
if PRETRAIN and not SYNTH_DATASETS:
    raise sonic_config.ConfigError(
        f"{CFG.source}: pretrain.enabled trains the miniature models on the synthetic world, but data.datasets has "
        f"none of its formats ({', '.join(PAPER_FORMATS)}); keep the demo's datasets beside your own"
    )
# Rehearsal: what `sonic rehearse models` writes (folders, then files), each location `models` names once
RANDOM_MODEL_DIRS = sorted(
    {
        getattr(CFG.models, k)
        for k in ("sd", "clap", "blip2", "clip_ais", "clip_eval")
        if getattr(CFG.models, k)
    }
)
RANDOM_MODEL_FILES = [
    getattr(CFG.models, k)
    for k in ("wav2clip", "fid_features", "msclap_2022")
    if getattr(CFG.models, k)
] + [f for files in (CFG.models.release or {}).values() for f in files.values()]

# Training variants (sonic.variants). Variants with equal stage-1 inputs share one stage-1 run.
TRAINING = CFG.training
THREADS = (
    CFG.threads
)  # per job of synthesis, CLAP features and SD pretraining (training jobs: training.threads)
VARIANTS = variants.variant_names(RESOLVED)
STAGE1_RUN = variants.stage1_runs(RESOLVED)
TRAIN_RESOURCES = {
    k: v for k, v in TRAINING.resources.items() if v
}  # gpu: 0 is left out
TRAIN_PROCESSES = max(
    1, int(TRAINING.resources.get("gpu") or 1)
)  # one per GPU: `sonic train --processes` runs accelerate launch


def budget(wildcards):
    """The dataset's factor on every training run's steps (training.budget; 1 where unnamed)."""
    return TRAINING.budget_of(wildcards.dataset)


def one_of(names):
    """A wildcard constraint matching exactly `names` (none: a pattern that matches nothing)."""
    return "|".join(re.escape(n) for n in names) or "(?!)"


wildcard_constraints:
    dataset="[^/]+",
    variant=one_of(VARIANTS),
    run=one_of(sorted({r for r in STAGE1_RUN.values() if r})),


def replicate_of(wildcards):
    """The training seed of a replicate's job (wildcard `replicate`, rules/replicates.smk); None in the single run."""
    return getattr(wildcards, "replicate", None)


def stage1_projector(wildcards):
    """The stage-1 projector a variant starts stage 2 from (nothing for a variant without stage 1), of the same
    replicate."""
    run = STAGE1_RUN[wildcards.variant]
    if run is None:
        return []
    replicate = replicate_of(wildcards)
    if replicate is not None:
        return rules.replicate_stage1.output.projector.format(
            replicate=replicate, dataset=wildcards.dataset, run=run
        )
    return rules.train_stage1.output.projector.format(
        dataset=wildcards.dataset, run=run
    )


# Evaluation (docs/evaluation.md). Method ids (sonic.methods): "SonicDiffusion" (variant full),
# "SonicDiffusion-<variant>", the trained competitors, and external systems scored from a folder
# (evaluation.external).
EVALUATION = CFG.evaluation
EXTERNAL = EVALUATION.external or {}
EXTERNAL_METHODS = list(EXTERNAL.get("methods") or [])
TABLE1_METHODS = list(TABLE1_TRAINED) + EXTERNAL_METHODS
# a dataset without labels: no label-conditioned competitor
TABLE1_UNLABELLED_METHODS = list(TABLE1_UNLABELLED) + EXTERNAL_METHODS
ABLATION_TABLES = list(ABLATION_VARIANTS)
ABLATION_DATASETS = list(EVALUATION.ablation_datasets or DATASETS)
PAPER_TABLES = ["--paper", EVALUATION.paper_tables] if EVALUATION.paper_tables else []
# the table commands' paired comparisons use the scores' bootstrap settings
INTERVALS = [
    "--bootstrap-samples",
    EVALUATION.bootstrap_samples,
    "--interval-level",
    EVALUATION.interval_level,
]
OWN_METHODS = {sonic_method(v): v for v in VARIANTS}
# the variants' methods generated and scored one job each (Table 1's methods share one job per dataset)
ABLATION_METHODS = [m for m in OWN_METHODS if m not in TABLE1_TRAINED]


# The authors' released weights (models.release; docs/paper-profile.md#released-weights): the method
# SonicDiffusion_release in Tables 1 and 2 of the datasets named there, generated from its own CLAP 2022 features.
RELEASE_FILES = CFG.models.release or {}
RELEASE_DATASETS = [d for d in DATASETS if d in RELEASE_FILES]
# the release's encoder: the features command's settings with audio_encoder and models.clap replaced
RELEASE_FEATURES = {
    "models": {"clap": CFG.models.msclap_2022},
    "audio_encoder": RELEASE_ENCODER,
}


def table1_methods(dataset):
    """Table 1's methods of one dataset: the trained ones (without labels: not the label-conditioned competitors)
    and external systems, and the release where named."""
    methods = TABLE1_METHODS if dataset in LABELLED else TABLE1_UNLABELLED_METHODS
    return methods + ([RELEASE] if dataset in RELEASE_FILES else [])


def edit_methods(dataset):
    """Table 2's methods of one dataset (the release where named)."""
    return list(EDIT_METHODS) + ([RELEASE] if dataset in RELEASE_FILES else [])


def clap_cache(method, dataset, output="embeddings"):
    """The CLAP features a method's generation or editing run reads: the release reads its own encoder's."""
    features = rules.release_features if method == RELEASE else rules.clap_features
    return getattr(features.output, output).format(dataset=dataset)


def run_method(wildcards):
    """The method of a generation job (`method`) or an editing job (`edit_method`)."""
    return getattr(wildcards, "method", None) or wildcards.edit_method


def method_clap(wildcards):
    return clap_cache(run_method(wildcards), wildcards.dataset)


def method_clap_index(wildcards):
    return clap_cache(run_method(wildcards), wildcards.dataset, "index")


wildcard_constraints:
    competitor=one_of(COMPETITORS),
    method=one_of(list(OWN_METHODS) + list(COMPETITORS) + EXTERNAL_METHODS + [RELEASE]),


def weights_of(method, dataset, replicate=None):
    """The trained weights a generation run of one of our methods starts from (of a replicate's training seed)."""
    if method in OWN_METHODS:
        trainer = rules.train_stage2 if replicate is None else rules.replicate_stage2
        return trainer.output.weights.format(
            dataset=dataset, variant=OWN_METHODS[method], replicate=replicate
        )
    if method in COMPETITORS:
        trainer = (
            rules.train_competitor if replicate is None else rules.replicate_competitor
        )
        return trainer.output.weights.format(
            dataset=dataset, competitor=method, replicate=replicate
        )
    if method == RELEASE:
        return rules.import_release.output.weights.format(dataset=dataset)
    raise ValueError(f"{method} is scored from evaluation.external, not generated here")


def method_weights(wildcards):
    return weights_of(wildcards.method, wildcards.dataset, replicate_of(wildcards))


def images_of(method, dataset, replicate=None):
    """Our methods: the generation run (of a replicate's training seed); external systems:
    <external.root>/<method>/<dataset>/ (docs/evaluation.md)."""
    if method in EXTERNAL_METHODS:
        return str(Path(EXTERNAL["root"], method, dataset))
    generator = rules.generate_eval if replicate is None else rules.replicate_generate
    return generator.output.images.format(
        method=method, dataset=dataset, replicate=replicate
    )


def method_images(wildcards):
    return images_of(wildcards.method, wildcards.dataset, replicate_of(wildcards))


# Guidance, measured (docs/evaluation.md#guidance; rules/evaluate.smk: guidance_sweep, guidance_choice, the `guidance`
# target).
GUIDANCE_SWEEP = EVALUATION.guidance_sweep
GUIDANCE_DATASETS = LABELLED  # its rule chooses by SAC, which needs labels


def guidance_weights(wildcards):
    """The sweep's generators: Table 1's trained methods on the dataset, the weights generate_eval reads."""
    if GUIDANCE_SWEEP is None:
        raise ValueError(
            "evaluation.guidance_sweep is null: no guidance sweep is configured (config.yaml, evaluation)"
        )
    return [weights_of(m, wildcards.dataset) for m in TABLE1_TRAINED]


def ablation_scores(wildcards, output="scores"):
    return expand(
        getattr(rules.score.output, output),
        method=[sonic_method(v) for v in ABLATION_VARIANTS[wildcards.table]],
        dataset=ABLATION_DATASETS,
    )


def ablation_per_image(wildcards):
    return ablation_scores(wildcards, "per_image")


# Editing (paper §3.5): Table 2's methods (sonic.methods.EDIT_METHODS); PnP edits with the class label on the
# same frozen SD.
EDITING = CFG.editing
# what an editing run reads of `editing` (not `datasets`, which only picks the targets)
EDIT_RUN_KEYS = [
    f"editing.{k}"
    for k in (
        "sources",
        "num_sources",
        "steps",
        "guidance_scale",
        "f_t",
        "attn_t",
        "resnets",
        "source_branch",
    )
]
EDIT_DATASETS = list(EDITING.datasets or LABELLED)
if set(EDIT_DATASETS) & set(UNLABELLED):
    raise sonic_config.ConfigError(
        f"{CFG.source}: editing.datasets names {sorted(set(EDIT_DATASETS) & set(UNLABELLED))}, which have no labels "
        "(videos directly under the root); Table 2 needs them (the PnP baseline's prompt, the edits' AIC and SAC)"
    )


wildcard_constraints:
    edit_method=one_of(EDITORS),


def edit_weights(wildcards):
    """The weights an editing method edits with (PnP: none, the frozen SD alone)."""
    if wildcards.edit_method == "PnP":
        return []
    if wildcards.edit_method in COMPETITORS + (RELEASE,):
        return weights_of(wildcards.edit_method, wildcards.dataset)
    return rules.train_stage2.output.weights.format(
        dataset=wildcards.dataset, variant="full"
    )


# Replicates (docs/evaluation.md#replicates; rules/replicates.smk): every Table 1 method trained here, and
# the variants of evaluation.replicates.ablation_tables, retrained with each training seed under
# results/replicates/seed<seed>/ by the single run's commands, `seed` being the one setting that differs. The first
# training seed is the config's `seed`: the single run, reused.
REPLICATES = EVALUATION.replicates
TRAINING_SEEDS = REPLICATES.training_seeds(CFG.seed)
RETRAINED_SEEDS = [s for s in TRAINING_SEEDS if s != CFG.seed]
REPLICATE_TABLES = list(REPLICATES.ablation_tables)


wildcard_constraints:
    replicate=one_of([str(s) for s in RETRAINED_SEEDS]),


def replicate_results(*parts):
    """A path under a replicate's folder, results/replicates/seed{replicate}/..."""
    return results("replicates", "seed{replicate}", *parts)


def reseeded(settings_of):
    """A rule's `settings` param (`settings(...)` above, with `seed` among its keys) with `seed` replaced by the
    replicate's training seed: the training command reads nothing else of it differently.
    """

    def value(wildcards):
        data = json.loads(settings_of(wildcards))
        if "seed" not in data:
            raise ValueError(f"these settings have no seed to replace: {sorted(data)}")
        data["seed"] = int(wildcards.replicate)
        return json.dumps(data, sort_keys=True)

    return value


def replicate_runs(methods, datasets, output="scores"):
    """Score files (or per-image CSVs: output="per_image") of `methods` on `datasets` for every training seed, seed
    by seed, and the seed of each: the single run's where the seed is the config's."""
    files, seeds = [], []
    for seed in TRAINING_SEEDS:
        for dataset in datasets:
            for method in methods:
                pattern = getattr(rules.score.output, output)
                if seed != CFG.seed:
                    pattern = getattr(rules.replicate_score.output, output)
                files.append(
                    pattern.format(method=method, dataset=dataset, replicate=seed)
                )
                seeds.append(seed)
    return files, seeds


def ablation_replicate_runs(wildcards, output="scores"):
    """`replicate_runs` of an ablation table's variants on evaluation.ablation_datasets."""
    methods = [sonic_method(v) for v in ABLATION_VARIANTS[wildcards.table]]
    return replicate_runs(methods, ABLATION_DATASETS, output)
