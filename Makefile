# Two entry points for a fresh machine: `make demo` and `make test`. Both create .venv on first use.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
CORES  ?= all

.PHONY: demo guidance replicates ablations_replicates test docs docs-serve rehearsal rehearsal-cost lint format bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	# The CPU wheel of torch lies on the build machines; install it first so nothing pulls a CUDA build.
	$(BIN)/python -m pip install --quiet torch==2.13.0
	$(BIN)/python -m pip install --quiet -e '.[test,app]'
	touch $@

demo: $(STAMP)
	$(BIN)/snakemake --cores $(CORES)

# The guidance sweep of every Table 1 method on every dataset, and the scale the stated rule chooses
# (docs/evaluation.md#guidance); not part of `demo`.
guidance: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) guidance

# Table 1's methods (`replicates`) or the variants of evaluation.replicates.ablation_tables (`ablations_replicates`)
# retrained with each training seed of evaluation.replicates, and the tables across seeds
# (docs/evaluation.md#replicates); not part of `demo`, whose single run they reuse as the first seed.
replicates: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) replicates

ablations_replicates: $(STAMP)
	$(BIN)/snakemake --cores $(CORES) ablations_replicates

test: $(STAMP)
	$(BIN)/python -m pytest -q

# The documentation site (mkdocs.yml, docs/): built strictly (a broken link, a missing anchor or a page outside the
# nav fails) into site/; docs-serve serves it at http://127.0.0.1:8000 and rebuilds on changes.
DOCS_STAMP := $(VENV)/.docs-installed

$(DOCS_STAMP): $(STAMP)
	$(BIN)/python -m pip install --quiet -e '.[docs]'
	touch $@

docs: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict

docs-serve: $(DOCS_STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs serve

# The paper DAG at paper sizes on this machine (docs/rehearsal.md); then its cost table.
rehearsal: $(STAMP)
	$(BIN)/snakemake results/table1.csv ablations results/table2.csv --cores $(CORES) --resources mem_mb=22000 \
		--configfile workflow/configs/rehearsal.yaml

rehearsal-cost: $(STAMP)
	$(BIN)/python benchmarks/rehearsal_cost.py --markdown

lint: $(STAMP)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile rules

format: $(STAMP)
	$(BIN)/snakefmt Snakefile rules

bench: $(STAMP)
	$(BIN)/python benchmarks/adapter_overhead.py

clean-venv:
	rm -rf $(VENV)
