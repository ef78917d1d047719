# Shared helpers. The config is validated first, so every rule can trust its keys.
from pathlib import Path

import yaml
from snakemake.utils import validate

validate(config, schema="../workflow/schemas/config.schema.yaml")

RESULTS = Path(config.get("results", "results"))
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
