"""Shared fixtures: a private copy of the workflow per test module, and a snakemake runner.

Each end-to-end test runs the real workflow (CLI in a subprocess, as a user would) in its own
temporary copy, so every copy has its own .snakemake/ metadata and outputs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW_FILES = ["Snakefile", "config.yaml", "rules", "scripts", "schemas", "envs", "sample", "profiles", "report"]
SNAKEMAKE = str(Path(sys.executable).with_name("snakemake"))


def copy_workflow(dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for name in WORKFLOW_FILES:
        src = ROOT / name
        if src.is_dir():
            shutil.copytree(src, dest / name, ignore=shutil.ignore_patterns("__pycache__", ".*"))
        elif src.exists():
            shutil.copy2(src, dest / name)
    return dest


RECIPE_DUMPS = [
    "data/cc-100/ja.txt.xz",
    "data/wikipedia/cirrussearch/20230102/jawiki-20230102-cirrussearch-content.json.gz",
]


def with_placeholder_dumps(wd: Path) -> Path:
    """Empty files at the recipe's raw dump paths: enough to plan the full recipe."""
    for p in RECIPE_DUMPS:
        (wd / p).parent.mkdir(parents=True, exist_ok=True)
        (wd / p).touch()
    return wd


def job_env() -> dict:
    env = dict(os.environ)
    # Jobs call `python -m scripts.X`: the interpreter running the tests must come first on PATH.
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def snakemake(wd: Path, *args, check: bool = True, timeout: int = 1500) -> subprocess.CompletedProcess:
    proc = subprocess.run([SNAKEMAKE, *map(str, args)], cwd=wd, env=job_env(), text=True,
                          capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"snakemake {' '.join(map(str, args))} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-4000:]}\n{proc.stderr[-8000:]}")
    return proc


def plan(wd: Path, *args) -> dict[str, tuple[str, str]]:
    """``snakemake --summary`` as {output: (status, plan)}."""
    out = snakemake(wd, "--summary", *args).stdout
    rows = (line.split("\t") for line in out.splitlines() if line.count("\t") >= 5)
    return {r[0]: (r[4], r[5]) for r in rows if r[0] != "output_file"}


def pending(wd: Path, *args) -> set[str]:
    return {out for out, (_, p) in plan(wd, *args).items() if p != "no update"}


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> Path:
    """One full run of the demo (`snakemake --cores 2`) in a private copy, shared by e2e tests.

    Tests that modify the copy must make their own copy of this directory (see ``fresh_copy``).
    """
    wd = copy_workflow(tmp_path_factory.mktemp("demo"))
    proc = snakemake(wd, "--cores", "2")
    (wd / "snakemake.out").write_text(proc.stdout + proc.stderr)
    return wd


def clone_run(src: Path, dest: Path) -> Path:
    """A copy of a finished run (outputs and .snakemake metadata), with mtimes preserved."""
    shutil.copytree(src, dest, symlinks=True)
    return dest
