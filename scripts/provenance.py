"""Provenance of a built model: raw-input digests, the config values that shaped it, the code
version and the versions of the key packages (written as ``hf_model/<name>/provenance.json``).

The git commit is read at run time (not a tracked param), so a new commit alone does not rebuild
models; it records which code built them.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from scripts.common import run_cli

PACKAGES = ("snakemake", "tensorflow", "tf-models-official", "tf-keras", "transformers", "torch",
            "tokenizers", "sentencepiece", "mecab-python3", "fugashi", "unidic-lite", "numpy")


def git_commit(cwd: str | None = None) -> dict:
    root = cwd or str(Path(__file__).resolve().parent.parent)
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True, timeout=10).stdout.strip()
        dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                                    capture_output=True, text=True, timeout=10).stdout.strip())
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
        "raw_inputs": [json.loads(Path(p).read_text(encoding="utf-8")) for p in raw_digests],
        "config": card,
        "code": git_commit(),
        "packages": package_versions(),
        "python": platform.python_version(),
    }
    if done:
        prov["training"] = json.loads(Path(done).read_text(encoding="utf-8"))
    return prov


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--raw-digests", nargs="*", default=[])
    ap.add_argument("--card-json", required=True)
    ap.add_argument("--done")
    a = ap.parse_args(argv)
    print(json.dumps(build(a.raw_digests, json.loads(a.card_json), a.done), ensure_ascii=False, sort_keys=True))
    return 0


if __name__ == "__main__":
    run_cli(main)
