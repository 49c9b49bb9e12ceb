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

from scripts.shared import registry  # noqa: E402
from scripts.shared.formats import PATHS  # noqa: E402

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
    """The raw dump of a corpus. If missing, with `download_missing_dumps: true` and a
    `url`, the download_raw job fetches it; else the DAG fails, naming the file, the config key
    and where to get it (an 80 GB download never starts unasked)."""
    raw = CORPORA[corpus]["raw"]
    if os.path.exists(raw["path"]) or raw["path"] in RAW_DOWNLOADS:
        return raw["path"]
    if raw.get("url"):
        where = (
            f"Download it from {raw['url']} (or rerun with "
            f"--config download_missing_dumps=True to let the workflow fetch it)"
        )
    else:
        where = f"Set corpora.{corpus}.raw.url to have it downloaded"
    raise WorkflowError(
        f"Raw dump for corpus '{corpus}' is missing: {raw['path']} does not exist. {where}, "
        f"or point config key corpora.{corpus}.raw.path at your copy."
    )


def print_built_models(models):
    for m in models:
        path = os.path.abspath(PATHS.hf_model.format(model=m))
        if os.path.isdir(path):
            print(
                f"Built {path} — load it with transformers.AutoModelForMaskedLM.from_pretrained('{path}')"
            )


def input_mb(input):
    return sum(os.path.getsize(f) for f in input if os.path.exists(f)) / 1e6
