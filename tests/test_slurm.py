"""The sample pipeline's data stages through a real SLURM cluster, compared with a local run.

A session fixture installs SLURM and munge if they are missing (apt-get; the test is skipped,
saying why, only when they cannot be installed), starts a single-node cluster on localhost
(tests/slurm_cluster.py: its own munge socket, ports, state; slurm.conf where the jobs find it)
and stops it by PID at the end. The test runs the data targets with
``snakemake --workflow-profile tests/slurm/profile`` (executor slurm, squeue status checks) under
``timeout -k``, checks that every job was a SLURM job that slurmctld saw complete, and compares
the outputs byte for byte with ``snakemake --cores N`` on the same targets.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from conftest import ROOT, SNAKEMAKE, copy_workflow, job_env
from slurm_cluster import LocalSlurm, SlurmUnavailable, install_packages

pytestmark = pytest.mark.e2e

PROFILE = ROOT / "tests" / "slurm" / "profile"
TOK = "sample_wordpiece_unidic_lite"
DATA_TARGETS = [
    "corpus/sample-cc-100/raw.sha256.json",
    "corpus/sample-wikipedia/raw.sha256.json",
    *[f"corpus/sample-cc-100/corpus_{s:02d}.txt" for s in range(1, 5)],
    "corpus/sample-wikipedia/corpus_sampled.txt",
    f"tokenizers/{TOK}/vocab.txt",
    *[f"pretraining_data/{TOK}/sample-cc-100/pretraining_data_{s:02d}.tfrecord.gz" for s in range(1, 5)],
    *[f"pretraining_data/{TOK}/sample-wikipedia/pretraining_data_{s:02d}.tfrecord.gz" for s in range(1, 3)],
]
OUTPUT_DIRS = ["corpus", "tokenizers", "pretraining_data"]
SNAKEMAKE_LIMIT_S = 900  # the run takes ~2-3 min on 2 cores; a hung Snakemake is killed
# stats keys that measure the run rather than describe the data
VOLATILE = re.compile(r"second|per_s|_s$|rss|elapsed|duration|time|host|pid", re.I)


@pytest.fixture(scope="session")
def slurm_cluster():
    """A running single-node SLURM cluster for the session; stopped (by PID) afterwards."""
    if not sys.platform.startswith("linux"):
        pytest.skip("local SLURM cluster: Linux only")
    if os.geteuid() != 0:
        pytest.skip("local SLURM cluster: the daemons need root")
    t0 = time.monotonic()
    # Not under pytest's basetemp: concurrent pytest sessions prune old basetemps, and this
    # directory holds the daemons' state and sockets (whose paths must stay short).
    root = Path(tempfile.mkdtemp(prefix="bertja-slurm-"))
    try:
        install_packages(root / "apt.log")
    except SlurmUnavailable as e:
        shutil.rmtree(root, ignore_errors=True)
        pytest.skip(f"SLURM packages (slurmctld slurmd slurm-client munge) not installable: {e}")
    t_installed = time.monotonic()
    cluster = LocalSlurm(root)
    try:
        cluster.start()
    except BaseException:
        cluster.stop()
        raise
    cluster.timings = {"install_s": t_installed - t0, "start_s": time.monotonic() - t_installed}
    yield cluster
    t_stop = time.monotonic()
    cluster.stop()
    cluster.timings["stop_s"] = time.monotonic() - t_stop
    cluster.timings["cold_start_to_stop_s"] = time.monotonic() - t0
    line = ", ".join(f"{k} {v:.1f}" for k, v in cluster.timings.items())
    print(f"\nlocal SLURM cluster timings (s): {line}", file=sys.stderr)
    if os.environ.get("BERTJA_KEEP_SLURM_LOGS"):
        print(f"local SLURM cluster logs kept in {root / 'log'}", file=sys.stderr)
    else:
        shutil.rmtree(root, ignore_errors=True)


def test_cluster_runs_a_batch_job_with_the_config_at_the_default_path(slurm_cluster, tmp_path):
    """sbatch works, and inside a job a bare srun (no SLURM_CONF, as the jobstep plugin runs it)
    reaches this cluster: the nested-srun trap of snakemake-executor-plugin-slurm-jobstep."""
    out = tmp_path / "hello.out"
    env = slurm_cluster.env(job_env())  # PATH starts with this venv's bin/, as for Snakemake
    jid = subprocess.run(["sbatch", "--parsable", "-o", str(out), "--wrap",
                          "unset SLURM_CONF; srun echo step-ok; command -v python"],
                         env=env, capture_output=True, text=True, timeout=30, check=True).stdout.strip()
    assert jid.isdigit()
    deadline = time.monotonic() + 60
    while slurm_cluster.run("squeue", "-h", "-j", jid, check=False).stdout.strip():
        assert time.monotonic() < deadline, "sbatch job did not finish in 60 s"
        time.sleep(0.3)
    lines = out.read_text().splitlines()
    assert "step-ok" in lines, lines
    # sbatch exports the submitting environment (--export=ALL is the default and what the
    # executor plugin passes): the job's `python` is this venv's
    assert lines[-1].startswith(str(Path(sys.executable).parent)), lines


def _snakemake(wd: Path, args: list[str], env: dict, limit: int) -> subprocess.CompletedProcess:
    # `timeout -k`: a Snakemake waiting on cluster jobs ignores a lone SIGTERM
    cmd = ["timeout", "-k", "15", str(limit), SNAKEMAKE, *args]
    return subprocess.run(cmd, cwd=wd, env=env, capture_output=True, text=True, timeout=limit + 60)


def _normalized_stats(path: Path):
    def clean(obj):
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items() if not VOLATILE.search(k)}
        if isinstance(obj, list):
            return [clean(v) for v in obj]
        return obj

    return clean(json.loads(path.read_text(encoding="utf-8")))


def _outputs(wd: Path) -> dict[str, Path]:
    return {str(p.relative_to(wd)): p for d in OUTPUT_DIRS for p in sorted((wd / d).rglob("*"))
            if p.is_file() and not p.name.startswith(".")}


def test_data_stages_run_as_slurm_jobs_and_match_a_local_run(slurm_cluster, tmp_path):
    threads = min(2, slurm_cluster.node_hardware()["CPUs"])
    env = slurm_cluster.env(job_env())

    # both copies first: the two runs must see the same code
    slurm_wd, local_wd = copy_workflow(tmp_path / "slurm"), copy_workflow(tmp_path / "local")
    t0 = time.monotonic()
    proc = _snakemake(slurm_wd, ["--workflow-profile", str(PROFILE), "--max-threads", str(threads),
                                 *DATA_TARGETS], env, SNAKEMAKE_LIMIT_S)
    slurm_s = time.monotonic() - t0
    log = proc.stdout + proc.stderr
    (tmp_path / "snakemake-slurm.log").write_text(log)
    ctld_log = slurm_cluster.slurmctld_log.read_text(errors="replace")
    assert proc.returncode == 0, (f"snakemake via SLURM failed ({proc.returncode}, {slurm_s:.0f} s):\n"
                                  f"{log[-6000:]}\n--- slurmctld.log\n{ctld_log[-3000:]}")

    # Every job of the plan was submitted with sbatch ...
    stats = log.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    planned = dict(re.findall(r"^(\w+)\s+(\d+)$", stats, re.M))
    assert {"corpus_wiki", "corpus_sample", "wordpiece_vocab", "pretraining_data"} <= set(planned), stats
    planned_total = int(planned.pop("total"))
    submitted = re.findall(r"Job (\d+) has been submitted with SLURM jobid (\d+) \(log: (\S+?)\)\.", log)
    slurm_ids = {int(sid) for _, sid, _ in submitted}
    assert len(submitted) == planned_total == len(slurm_ids), log[-4000:]
    # ... slurmctld started and completed each one with exit status 0 ...
    seen = slurm_cluster.job_ids_in_log()
    assert slurm_ids <= seen["submitted"] and slurm_ids <= seen["completed_ok"], (slurm_ids, seen)
    # ... and each left its SLURM log, written by the project's Snakemake inside the job.
    for _, sid, path in submitted:
        job_log = Path(path)
        assert job_log.is_file() and job_log.name == f"{sid}.log", path
        assert job_log.is_relative_to(slurm_wd / ".snakemake" / "slurm_logs")
        assert sys.prefix in job_log.read_text(errors="replace"), f"{path}: not this venv's snakemake"
    # The profile's resources reached slurmctld: the last TFRecord job (the last stage, so its
    # record is still within MinJobAge=300 s) asked for the profile's 1000 MB and, as the rule
    # wants 4 threads, for --max-threads CPUs.
    last_tfrecord = max(int(sid) for _, sid, path in submitted if "/rule_pretraining_data/" in path)
    job = slurm_cluster.run("scontrol", "show", "job", str(last_tfrecord)).stdout
    assert "JobState=COMPLETED" in job and "Partition=debug" in job, job
    assert "MinMemoryNode=1000M" in job and f"NumCPUs={threads}" in job, job
    assert "Falling back to 'sacct'" not in log
    assert not slurm_cluster.run("squeue", "-h", "-t", "PENDING,RUNNING", check=False).stdout.strip()

    # The same targets locally, with the same thread counts: identical outputs.
    proc = _snakemake(local_wd, ["--cores", str(threads), *DATA_TARGETS], job_env(), SNAKEMAKE_LIMIT_S)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-6000:]
    via_slurm, local = _outputs(slurm_wd), _outputs(local_wd)
    assert set(via_slurm) == set(local)
    for t in DATA_TARGETS:
        assert t in local, t
    for rel, path in local.items():
        if rel.endswith(".stats.json"):
            assert _normalized_stats(via_slurm[rel]) == _normalized_stats(path), rel
        else:
            assert via_slurm[rel].read_bytes() == path.read_bytes(), f"{rel} differs between SLURM and local run"
    print(f"\nsnakemake via SLURM: {len(submitted)} jobs in {slurm_s:.0f} s", file=sys.stderr)
