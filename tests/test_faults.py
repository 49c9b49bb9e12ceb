"""Faults and reproducibility of the data stages on the bundled sample.

* SIGKILL at several points of every data stage, then a rerun: every artefact that exists after a
  kill is byte-identical to a clean run's (outputs appear only by atomic rename), and the final
  result equals a clean run's.
* Two clean runs in separate directories give byte-identical corpora, vocabularies and TFRecords.
* Paths and config values with spaces, quotes and shell metacharacters neither break a rule nor
  run anything.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import pytest
import yaml

from conftest import SNAKEMAKE, copy_workflow, job_env, snakemake

pytestmark = pytest.mark.e2e

TOK = "sample_wordpiece_unidic_lite"
DATA_DIRS = ("corpus", "tokenizers", "pretraining_data")


def data_targets(wd: Path) -> list[str]:
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    out = []
    for corpus in ("sample-cc-100", "sample-wikipedia"):
        n = cfg["corpora"][corpus]["num_shards"]
        out += [f"pretraining_data/{TOK}/{corpus}/pretraining_data_{i:02d}.tfrecord.gz" for i in range(1, n + 1)]
    return out


def artefact_hashes(wd: Path) -> dict[str, str]:
    """sha256 of every data artefact (stats files carry timings and are left out; hidden
    temporaries of killed jobs are never read by any rule)."""
    out = {}
    for d in DATA_DIRS:
        for p in sorted((wd / d).rglob("*")):
            if p.is_file() and not p.name.startswith(".") and not p.name.endswith(".stats.json"):
                out[str(p.relative_to(wd))] = hashlib.sha256(p.read_bytes()).hexdigest()
    return out


@pytest.fixture(scope="module")
def clean_data_run(tmp_path_factory) -> Path:
    wd = copy_workflow(tmp_path_factory.mktemp("clean"))
    snakemake(wd, "--cores", "2", *data_targets(wd))
    return wd


def test_two_clean_runs_are_byte_identical(clean_data_run, demo_run):
    a, b = artefact_hashes(clean_data_run), artefact_hashes(demo_run)
    assert len(a) >= 15
    assert {k: v for k, v in b.items() if k in a} == a
    kinds = {Path(k).suffix for k in a}
    assert {".txt", ".gz"} <= kinds


# (log file whose appearance means the job started, seconds to wait before SIGKILL)
KILL_POINTS = [
    ("logs/corpus/raw_sha256/sample-wikipedia.log", 0.0),
    ("logs/corpus/corpus_wiki/sample-wikipedia.log", 0.3),
    ("logs/corpus/corpus_wiki/sample-wikipedia.log", 1.0),
    ("logs/corpus/corpus_shards/sample-cc-100.log", 0.5),
    ("logs/corpus/corpus_shards/sample-wikipedia.log", 0.8),
    ("logs/tokenizers/alphabet/unidic_lite.log", 1.5),
    ("logs/corpus/corpus_sample/sample-wikipedia.log", 0.4),
    ("logs/tokenizers/wordpiece_vocab/sample_wordpiece_unidic_lite.log", 0.8),
    ("logs/tokenizers/wordpiece_vocab/sample_wordpiece_unidic_lite.log", 1.6),
    (f"logs/pretraining_data/{TOK}/sample-cc-100/01.log", 0.5),
    (f"logs/pretraining_data/{TOK}/sample-wikipedia/02.log", 1.0),
]


def _run_and_kill(wd: Path, targets: list[str], started: Path, delay: float) -> str:
    proc = subprocess.Popen([SNAKEMAKE, "--cores", "2", "--rerun-incomplete", *targets], cwd=wd, env=job_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 300
    try:
        while not started.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        if proc.poll() is not None:
            return "finished"
        time.sleep(delay)
        return "killed" if proc.poll() is None else "finished"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)


def test_sigkill_in_every_data_stage_then_rerun_gives_the_clean_result(clean_data_run, tmp_path):
    ref = artefact_hashes(clean_data_run)
    wd = copy_workflow(tmp_path / "wf")
    targets = data_targets(wd)
    outcomes = []
    for log, delay in KILL_POINTS:
        started = wd / log
        if started.exists():  # a later kill point of a stage that already ran: make it run again
            for out in {"corpus_wiki": ["corpus/sample-wikipedia/corpus.txt.gz"],
                        "wordpiece_vocab": [f"tokenizers/{TOK}/vocab.txt"]}.get(Path(log).parent.name, []):
                (wd / out).unlink(missing_ok=True)
            started.unlink()
        outcomes.append(_run_and_kill(wd, targets, started, delay))
        now = artefact_hashes(wd)
        wrong = {k for k, v in now.items() if ref.get(k) != v}
        assert not wrong, f"after SIGKILL at {log}+{delay}s these look complete but differ: {wrong}"
    assert outcomes.count("killed") >= len(KILL_POINTS) // 2, outcomes
    snakemake(wd, "--cores", "2", "--rerun-incomplete", *targets)
    assert artefact_hashes(wd) == ref


def test_paths_and_values_with_shell_metacharacters(tmp_path):
    base = tmp_path / "work dir 'q' \"dq\" $(touch PWNED) ; `touch PWNED2` &"
    wd = copy_workflow(base)
    odd = "sample/cc 100 $(touch PWNED3) 'x'/ja;&.txt.xz"
    (wd / odd).parent.mkdir(parents=True)
    shutil.move(wd / "sample/cc-100/ja.txt.xz", wd / odd)
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    cfg["corpora"]["sample-cc-100"]["raw"]["path"] = odd
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False))
    snakemake(wd, "--cores", "2", *data_targets(wd)[:1], "corpus/sample-cc-100/raw.sha256.json")
    assert (wd / data_targets(wd)[0]).stat().st_size > 0
    assert not list(tmp_path.rglob("PWNED*")) and not list(Path.cwd().glob("PWNED*"))
