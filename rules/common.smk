# What every stage shares: validation, registry access, wildcard helpers, code digests.
# The logic lives in scripts/shared/registry.py (plain Python, unit tested); every path pattern in
# scripts/shared/formats.py (PATHS). Each stage's own input and resource functions sit at the top
# of its rules/<stage>.smk.

import json
import os
import re
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# Jobs run `python -m scripts.<stage>`: make the package importable from any working directory.
os.environ.update(PYTHONPATH=workflow.basedir)
sys.path.insert(0, workflow.basedir)

from scripts.corpus import pins as raw_pins  # noqa: E402
from scripts.shared import registry  # noqa: E402
from scripts.shared.common import drop_snakemake_timestamp  # noqa: E402
from scripts.shared.formats import PATHS  # noqa: E402

# ... and run it with the interpreter Snakemake runs under: `.venv/bin/snakemake` without an
# activated venv would otherwise give jobs whatever `python` is first on PATH (jobs inherit
# this process's environment).
registry.put_interpreter_first_on_path()

# Config checks, before any job: repeated keys in the config files (YAML keeps the last one
# silently), the schema with strict integers (4.0 is rejected, naming the key), then
# snakemake's own validation (which also fills schema defaults) and the cross-field checks.
try:
    registry.check_config_files(str(f) for f in workflow.configfiles)
    registry.check_schema(config)
except registry.ConfigError as e:
    raise WorkflowError(f"Invalid configuration: {e}")
validate(config, schema="../schemas/config.schema.yaml")
try:
    registry.check(config)
except registry.ConfigError as e:
    raise WorkflowError(f"Invalid configuration: {e}")

CORPORA = config["corpora"]
TOKENIZERS = config["tokenizers"]
MODELS = config["models"]
TRAINING = config["training"]


def _alt(names):
    return (
        "|".join(sorted((n.replace(".", r"\.") for n in names), key=len, reverse=True))
        or "^$"
    )


WORDPIECE = [t for t, v in TOKENIZERS.items() if v["type"] == "wordpiece"]
CHARACTER = [t for t, v in TOKENIZERS.items() if v["type"] == "character"]
CIRRUS = [c for c, v in CORPORA.items() if v["raw"]["format"] == "cirrussearch"]
STAGES = sorted({st["name"] for m in MODELS.values() for st in m["stages"]})


def code(*modules):
    """Digest of the scripts that a job runs, tracked as a param (an edit reruns the stage)."""
    return registry.code_digest(*modules)


def raw_dump(wildcards):
    return checked_raw_path(wildcards.corpus)


def checked_raw_path(corpus):
    """The raw dump file(s) of a corpus, in read order (`raw.path`: one path or a list). If one
    is missing, with `download_missing_dumps: true` and a `url`, the download_raw job fetches
    it; else the DAG fails, naming every missing file, the config key and where to get it (an
    80 GB download never starts unasked)."""
    raw = CORPORA[corpus]["raw"]
    files = registry.raw_files(raw)
    missing = [f for f in files if not os.path.exists(f) and f not in RAW_DOWNLOADS]
    if not missing:
        return files
    if raw.get("url"):
        where = (
            f"Download it from {raw['url']} (or rerun with "
            f"--config download_missing_dumps=True to let the workflow fetch it)"
        )
    elif len(files) == 1:
        where = f"Set corpora.{corpus}.raw.url to have it downloaded"
    else:
        where = "Download the missing parts"
    what = (
        f"{missing[0]} does not exist"
        if len(files) == 1
        else f"{len(missing)} of its {len(files)} files do not exist: {', '.join(missing)}"
    )
    raise WorkflowError(
        f"Raw dump for corpus '{corpus}' is missing: {what}. {where}, "
        f"or point config key corpora.{corpus}.raw.path at your copy."
    )


# Raw-dump pins (raw.sha256/raw.size) verify, they never change data, so they are not tracked
# params: the raw_sha256 job reads them from the environment (set here, at every parse, also in
# cluster jobs), and a pin added for a dump whose digest is already recorded and current is
# checked right here, before any job (scripts/corpus/pins.py).
os.environ[raw_pins.ENV] = raw_pins.pins_env(CORPORA)


def check_recorded_pins():
    problems = []
    for c, v in CORPORA.items():
        pinned = raw_pins.pins_of(v["raw"])
        found = raw_pins.recorded_mismatches(
            PATHS.raw_digest.format(corpus=c), registry.raw_files(v["raw"]), pinned
        )
        problems += [f"corpora.{c}.raw: {m}" for m in found or []]
    if problems:
        raise WorkflowError(
            "Raw dump verification failed (a wrong or damaged dump, or an outdated "
            "raw.sha256/raw.size in the config):\n  " + "\n  ".join(problems)
        )


check_recorded_pins()


def clean_model_dirs():
    """Take the `.snakemake_timestamp` that Snakemake puts into every directory() output out of
    the model directories, build/hf_model/<name>/ and hf_model/<name>/ (its mtime moves onto the
    directory, where Snakemake looks when it is absent), so a model directory holds only the
    model. Run at every start (a run killed after a conversion left one) and at the end of every
    run (onsuccess/onerror).
    """
    for m in MODELS:
        drop_snakemake_timestamp(PATHS.hf_build.format(model=m))
        drop_snakemake_timestamp(PATHS.hf_model.format(model=m))


clean_model_dirs()


def print_built_models(models):
    for m in models:
        path = os.path.abspath(PATHS.hf_model.format(model=m))
        if os.path.isdir(path):
            print(
                f"Built {path} — load it with transformers.AutoModelForMaskedLM.from_pretrained('{path}')"
            )


def input_mb(input):
    return sum(os.path.getsize(f) for f in input if os.path.exists(f)) / 1e6
