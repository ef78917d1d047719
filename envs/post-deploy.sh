#!/usr/bin/env bash
# Snakemake runs this once inside the new environment (`--use-conda`): it installs the `sonic` package, whose
# command every rule calls. --no-deps: the environment file already pins what this rule group imports.
# The source is $SONIC_SOURCE, or the working directory when that is the repository (the usual case); set
# SONIC_SOURCE=/path/to/repository when running with `-d <elsewhere>`.
set -euo pipefail
src="${SONIC_SOURCE:-$PWD}"
if ! grep -q '^name = "sonic"' "$src/pyproject.toml" 2>/dev/null; then
    echo "post-deploy: $src is not the sonic repository; set SONIC_SOURCE to it" >&2
    exit 1
fi
python -m pip install --no-deps -e "$src"
