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
import re
import shutil
import signal
import subprocess
import sys
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


def warm_compiled_code(wd: Path) -> None:
    """Compile the numba kernels of this copy once, so that run timings (and the kill moments
    spread over them) are those of the stages, not of a one-off compilation."""
    subprocess.run([sys.executable, "-c", "from scripts.pretraining_data import kernels; kernels.warm_up()"], cwd=wd,
                   env=job_env(), check=True, timeout=600)


@pytest.fixture(scope="module")
def clean_data_run(tmp_path_factory) -> Path:
    wd = copy_workflow(tmp_path_factory.mktemp("clean"))
    warm_compiled_code(wd)
    t0 = time.monotonic()
    snakemake(wd, "--cores", "2", *data_targets(wd))
    (wd / "elapsed").write_text(f"{time.monotonic() - t0:.2f}")
    return wd


def test_two_clean_runs_are_byte_identical(clean_data_run, demo_run):
    a, b = artefact_hashes(clean_data_run), artefact_hashes(demo_run)
    assert len(a) >= 15
    assert {k: v for k, v in b.items() if k in a} == a
    kinds = {Path(k).suffix for k in a}
    assert {".txt", ".gz"} <= kinds


def _jobs_in_flight(log: str) -> set[str]:
    """Rules whose jobs had started but not finished, from Snakemake's own output."""
    started = dict(re.findall(r"^(?:local)?rule (\w+):\n(?:.*\n)*?    jobid: (\d+)", log, re.M))
    started = {jobid: rule for rule, jobid in started.items()}
    done = set(re.findall(r"Finished jobid: (\d+)", log))
    return {rule for jobid, rule in started.items() if jobid not in done}


def _run_killed_after(wd: Path, targets: list[str], delay: float) -> set[str]:
    """Start the data stages, SIGKILL Snakemake and its jobs after `delay` s; return what was running."""
    out = wd / "killed.out"
    with open(out, "w") as fh:
        proc = subprocess.Popen([SNAKEMAKE, "--cores", "2", "--rerun-incomplete", *targets], cwd=wd,
                                env=job_env(), stdout=fh, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=60)
    return _jobs_in_flight(out.read_text())


def test_sigkill_in_the_data_stages_then_rerun_gives_the_clean_result(clean_data_run, tmp_path):
    """Kill Snakemake and its jobs at evenly spread moments of a clean run; after each kill every
    artefact on disk is complete (identical to the clean run's), and `snakemake --unlock` plus a
    rerun gives the clean result."""
    ref = artefact_hashes(clean_data_run)
    seconds = float((clean_data_run / "elapsed").read_text())
    wd = copy_workflow(tmp_path / "wf")
    warm_compiled_code(wd)
    targets = data_targets(wd)
    hit: set[str] = set()
    n = 5
    for k in range(n):
        for d in (*DATA_DIRS, ".snakemake"):
            shutil.rmtree(wd / d, ignore_errors=True)
        hit |= _run_killed_after(wd, targets, seconds * (k + 0.5) / n)
        wrong = {p for p, h in artefact_hashes(wd).items() if ref.get(p) != h}
        assert not wrong, f"after SIGKILL at {k}: these look complete but differ from a clean run: {wrong}"
        snakemake(wd, "--unlock")
        snakemake(wd, "--cores", "2", "--rerun-incomplete", *targets)
        assert artefact_hashes(wd) == ref
    assert len(hit) >= 2, f"kills landed inside too few stages: {hit}"


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


# ---------------------------------------------------------------------------------------------
# Each data stage killed at several points of its own run (the exact command its rule runs)
# ---------------------------------------------------------------------------------------------


def _cli(*args) -> list[str]:
    import sys

    return [sys.executable, "-m", *map(str, args)]


@pytest.fixture(scope="module")
def scaled_inputs(tmp_path_factory) -> Path:
    """The sample dumps repeated to a few MB, so every stage runs long enough to be killed mid-way."""
    import gzip
    import lzma

    from conftest import ROOT

    d = tmp_path_factory.mktemp("scaled")
    wiki = (ROOT / "sample/wikipedia/jawiki-sample-cirrussearch-content.json.gz").read_bytes()
    (d / "wiki.json.gz").write_bytes(wiki * 30)  # concatenated gzip members: one valid stream
    text = lzma.decompress((ROOT / "sample/cc-100/ja.txt.xz").read_bytes())
    (d / "ja.txt.xz").write_bytes(lzma.compress(text * 40, preset=0))
    del gzip
    return d


def _stages(d: Path) -> list[tuple[str, list[str], list[Path]]]:
    """(name, command, outputs) in dependency order; each reads only earlier stages' outputs."""
    return [
        ("corpus_wiki", _cli("scripts.corpus.wiki", "--input", d / "wiki.json.gz", "--output", d / "w/corpus.txt.gz",
                             "--split-sentences", "--threads", 2), [d / "w/corpus.txt.gz"]),
        ("corpus_shard", _cli("scripts.corpus.shard", "--input", d / "ja.txt.xz", "--format", "cc100",
                              "--output-dir", d / "c", "--num-shards", 4, "--seed", 0, "--threads", 2),
         [d / f"c/corpus_0{i}.txt" for i in range(1, 5)]),
        ("corpus_sample", _cli("scripts.corpus.sample", "--input", *[d / f"c/corpus_0{i}.txt" for i in range(1, 5)],
                               "--output", d / "c/corpus_sampled.txt", "--num-lines", 50000, "--seed", 0),
         [d / "c/corpus_sampled.txt"]),
        ("make_alphabet", _cli("scripts.tokenizers.alphabet", "--output", d / "t/alphabet.txt"), [d / "t/alphabet.txt"]),
        ("train_tokenizer", _cli("scripts.tokenizers.train_wordpiece", "--input", d / "c/corpus_sampled.txt", "--output-dir",
                                 d / "t/wp", "--vocab-size", 8192, "--limit-alphabet", 7012,
                                 "--initial-alphabet-file", d / "t/alphabet.txt", "--threads", 2),
         [d / "t/wp/vocab.txt"]),
        ("create_pretraining_data", _cli("scripts.pretraining_data.create", "--input", d / "c/corpus_01.txt",
                                         "--output", d / "p/pretraining_data_01.tfrecord.gz", "--vocab-file",
                                         d / "t/wp/vocab.txt", "--subword-tokenizer", "wordpiece",
                                         "--max-seq-length", 128, "--max-predictions-per-seq", 19,
                                         "--dupe-factor", 5, "--seed", 7, "--threads", 2, "--compressor", "isal"),
         [d / "p/pretraining_data_01.tfrecord.gz"]),
    ]


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def _writing(outputs: list[Path]) -> bool:
    """A stage has begun writing: one of its hidden `.name.tmp-PID` files exists."""
    dirs = {p.parent for p in outputs}
    return any(q.name.startswith(".") and ".tmp-" in q.name for d in dirs if d.exists() for q in d.iterdir())


# ("start", fraction of the clean run's duration) kills mid-computation; ("writing", seconds after
# the output's temporary file appeared) kills while the output is being written.
KILL_AT = [("start", 0.3), ("start", 0.6), ("writing", 0.0), ("writing", 0.15), ("writing", 0.4)]


def test_every_data_stage_killed_at_several_points_leaves_nothing_complete(scaled_inputs):
    env = job_env()
    for name, cmd, outputs in _stages(scaled_inputs):
        t0 = time.monotonic()
        subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)  # the clean run
        clean_s = time.monotonic() - t0
        ref = {p: _sha(p) for p in outputs}
        killed_alive = 0
        for trigger, delay in KILL_AT:
            for p in outputs:
                p.unlink()
            proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                    start_new_session=True)
            deadline = time.monotonic() + 300
            while trigger == "writing" and proc.poll() is None and not _writing(outputs) \
                    and time.monotonic() < deadline:
                time.sleep(0.005)
            time.sleep(delay * clean_s if trigger == "start" else delay)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                killed_alive += 1
            proc.wait(timeout=60)
            for p in outputs:  # all or nothing: an output exists only if complete and correct
                assert not p.exists() or _sha(p) == ref[p], f"{name}: {p} looks complete but is not"
            subprocess.run(cmd, env=env, check=True, capture_output=True, timeout=600)  # the rerun
            assert {p: _sha(p) for p in outputs} == ref, f"{name}: rerun after a kill differs"
        assert killed_alive >= 2, f"{name}: (almost) every run finished before the kill"
