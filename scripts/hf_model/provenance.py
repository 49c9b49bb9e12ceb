"""Provenance of a built model: raw-input digests, the config values that shaped it, the code
version and the versions of the key packages (written as ``hf_model/<name>/provenance.json``).

The git commit is read at run time (not a tracked param), so a new commit alone does not rebuild
models; it records which code built them.
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path

from scripts.shared.formats import read_done, read_raw_digest


PACKAGES = ("snakemake", "tensorflow", "tf-models-official", "tf-keras", "transformers", "torch",
            "tokenizers", "sentencepiece", "mecab-python3", "fugashi", "unidic-lite", "numpy")


# The files whose state decides what the workflow runs.
CODE_PATHS = ("Snakefile", "rules", "scripts", "schemas", "config.yaml", "requirements.lock")


def git_commit(cwd: str | None = None) -> dict:
    root = cwd or str(Path(__file__).resolve().parents[2])
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        # Untracked files count where they can change what runs (a new module in scripts/).
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=all", "--", *CODE_PATHS],
                                    cwd=root, capture_output=True, text=True, timeout=10).stdout.strip())
        return {"commit": commit, "dirty": dirty}
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}


def package_versions(names=PACKAGES) -> dict:
    out = {}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def build(raw_digests: list[str], card: dict, done: str | None = None) -> dict:
    prov = {
        "raw_inputs": [f for p in raw_digests for f in read_raw_digest(p)],
        "config": card,
        "code": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
    }
    if done:
        prov["training"] = read_done(done)
    return prov
