# Shared helpers. The config is validated first, so every rule can trust its keys.
import sys
from pathlib import Path

import yaml
from snakemake.utils import validate

validate(config, schema="../workflow/schemas/config.schema.yaml")

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
sys.path.insert(0, str(Path(workflow.basedir)))
from sonic import variants  # noqa: E402

TRAINING = config.get("training") or {}
VARIANTS = variants.variant_names(config)
STAGE1_RUN = variants.stage1_runs(config)
TRAIN_RESOURCES = {
    k: v for k, v in (TRAINING.get("resources") or {}).items() if v
}  # gpu: 0 is left out


wildcard_constraints:
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
