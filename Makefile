# Set-up and entry points. `make demo` and `make test` each create the virtual environment from
# requirements.lock first (once; again when the lock changes).

VENV    ?= .venv
PYTHON  ?= python3
CORES   ?= all
STAMP   := $(VENV)/.installed-$(shell sha256sum requirements.lock | cut -c1-12)
export PATH := $(abspath $(VENV))/bin:$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2

.PHONY: setup demo test lint dag lock bench clean-demo slurm-deps report-deps

setup: $(STAMP)

$(STAMP): requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	rm -f $(VENV)/.installed-*
	touch $@

## The main job: the demo model on the bundled sample, end to end.
demo: setup
	snakemake --cores $(CORES)
	snakemake --report report.html
	@echo "Model:         $(abspath hf_model)/"
	@echo "JGLUE results: $(abspath eval/jglue/results.md) (per task: eval/jglue/<model>/<task>/metrics.json)"
	@echo "Report:        $(abspath report.html) (figures in $(abspath plots)/)"

## The test suite (unit tests per script + end-to-end runs of the sample pipeline).
test: setup slurm-deps report-deps
	python -m pytest tests

SLURM_PKGS := slurmctld slurmd slurm-client munge

## SLURM + munge for tests/test_slurm.py (Debian, as root); where impossible that test is skipped.
slurm-deps:
	@if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
	    && command -v munged >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q --no-install-recommends $(SLURM_PKGS) >/dev/null \
	    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends $(SLURM_PKGS) >/dev/null; } \
	    || echo "slurm-deps: apt-get install $(SLURM_PKGS) failed; tests/test_slurm.py will be skipped"; \
	else echo "slurm-deps: no SLURM and no root/apt-get to install it; tests/test_slurm.py will be skipped"; fi

## Headless Chromium for tests/test_report.py (opens report.html as a person would; Debian, as
## root); where impossible that test is skipped.
report-deps:
	@if command -v chromium >/dev/null || command -v chromium-browser >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    export DEBIAN_FRONTEND=noninteractive; \
	    apt-get install -y -q --no-install-recommends chromium >/dev/null \
	    || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; } \
	    || echo "report-deps: apt-get install chromium failed; tests/test_report.py's browser check will be skipped"; \
	else echo "report-deps: no chromium and no root/apt-get to install it; tests/test_report.py's browser check will be skipped"; fi

lint: setup
	snakemake --lint
	snakefmt --check --diff Snakefile rules/

## Stage graph and job graph as SVG (needs graphviz's `dot`).
dag: setup
	mkdir -p docs
	snakemake --rulegraph dot | dot -Tsvg > docs/rulegraph.svg
	snakemake --dag dot | dot -Tsvg > docs/dag.svg

## Re-resolve requirements.in into the pinned lock.
lock:
	rm -rf .venv-lock && $(PYTHON) -m venv .venv-lock
	.venv-lock/bin/pip install --quiet -r requirements.in
	# Public versions only: drop local labels (`+cpu`), which only a vendor index serves.
	.venv-lock/bin/pip freeze --all --exclude pip | sed -E 's/\+[A-Za-z0-9._]+$$//' > requirements.lock
	rm -rf .venv-lock

bench: setup
	python benchmarks/bench_stages.py

clean-demo:
	rm -rf corpus tokenizers pretraining_data model build hf_model eval plots report.html logs .snakemake
