# Shared helpers. The config is validated first, so every rule can trust its keys.
from pathlib import Path

from snakemake.utils import validate

validate(config, schema="../workflow/schemas/config.schema.yaml")

RESULTS = Path(config.get("results", "results"))


def results(*parts):
    """A path under the configured results folder."""
    return str(RESULTS.joinpath(*parts))


def config_file():
    """The config file(s) this run was started with, passed on to `sonic` commands."""
    files = workflow.overwrite_configfiles or workflow.configfiles
    return str(files[-1])
