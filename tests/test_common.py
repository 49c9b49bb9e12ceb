"""scripts.shared.common's output helpers: stale temporary names, durability, model-dir hygiene."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from scripts.shared import common
from scripts.shared.common import AtomicFiles, atomic_dir, atomic_path, drop_snakemake_timestamp, remove_stale_tmp


def dead_pid() -> int:
    """The PID of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


# ---------------------------------------------------------------------------------------------
# Leftovers of a SIGKILLed writer
# ---------------------------------------------------------------------------------------------


def test_a_killed_writers_leftover_is_removed_when_the_output_is_written_again(tmp_path):
    """A SIGKILL leaves `.name.tmp-PID` (no `finally` runs); the next writer of `name` removes it."""
    out = tmp_path / "corpus_01.txt"
    code = ("import os, sys\nfrom scripts.shared.common import atomic_path\n"
            f"with atomic_path({str(out)!r}) as tmp:\n"
            "    open(tmp, 'w').write('x' * 100000)\n"
            "    os.kill(os.getpid(), 9)\n")
    proc = subprocess.Popen([sys.executable, "-c", code], cwd=common.Path(__file__).parent.parent)
    assert proc.wait(timeout=60) == -9
    left = [p.name for p in tmp_path.iterdir()]
    assert left == [f".corpus_01.txt.tmp-{proc.pid}"]
    with atomic_path(out) as tmp:
        tmp.write_text("done\n")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus_01.txt"]


def test_only_the_outputs_own_dead_temporaries_are_removed(tmp_path):
    dead = dead_pid()
    stale = tmp_path / f".vocab.txt.tmp-{dead}"
    stale.write_text("half")
    live = tmp_path / f".vocab.txt.tmp-{os.getppid()}"  # a live process: maybe a concurrent writer
    live.write_text("busy")
    other = tmp_path / f".vocab.txt.stats.tmp-{dead}"  # another output's
    other.write_text("x")
    not_ours = tmp_path / f".vocab.txt.tmp-{dead}x"
    not_ours.write_text("x")
    stale_dir = tmp_path / f".model.tmp-{dead}"  # a killed atomic_dir
    (stale_dir / "sub").mkdir(parents=True)
    (stale_dir / "sub" / "w.bin").write_bytes(b"0" * 1000)

    assert remove_stale_tmp(tmp_path / "vocab.txt") == [stale]
    assert not stale.exists() and live.exists() and other.exists() and not_ours.exists()
    with atomic_dir(tmp_path / "model") as tmp:
        (tmp / "config.json").write_text("{}")
    assert not stale_dir.exists() and (tmp_path / "model" / "config.json").exists()
    stale_shard = tmp_path / f".corpus_02.txt.tmp-{dead}"
    stale_shard.write_text("half")
    with AtomicFiles() as af:
        af.open(tmp_path / "corpus_02.txt").write("ok\n")
    assert not stale_shard.exists() and (tmp_path / "corpus_02.txt").read_text() == "ok\n"
    assert remove_stale_tmp(tmp_path / "missing-dir" / "x") == []


# ---------------------------------------------------------------------------------------------
# Durability: fsync the data before the rename, the directory after it
# ---------------------------------------------------------------------------------------------


@pytest.fixture
def io_log(monkeypatch):
    """Every fsync (as the path of its fd) and every rename, in order."""
    log: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        log.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        return real_fsync(fd)

    def replace(src, dst, *a, **kw):
        log.append(("replace", f"{os.fspath(src)} -> {os.fspath(dst)}"))
        return real_replace(src, dst, *a, **kw)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    return log


def test_atomic_path_fsyncs_file_then_renames_then_fsyncs_directory(tmp_path, io_log):
    out = tmp_path / "a.txt"
    with atomic_path(out) as tmp:
        tmp.write_text("data")
    assert io_log == [("fsync", str(tmp)), ("replace", f"{tmp} -> {out}"), ("fsync", str(tmp_path))]


def test_atomic_dir_fsyncs_every_file_and_directory_before_the_rename(tmp_path, io_log):
    out = tmp_path / "hf"
    with atomic_dir(out) as tmp:
        (tmp / "config.json").write_text("{}")
        (tmp / "sub").mkdir()
        (tmp / "sub" / "w.bin").write_bytes(b"1")
    i = io_log.index(("replace", f"{tmp} -> {out}"))
    before = {p for op, p in io_log[:i] if op == "fsync"}
    assert before == {str(tmp / "config.json"), str(tmp / "sub" / "w.bin"), str(tmp / "sub"), str(tmp)}
    assert io_log[i + 1:] == [("fsync", str(tmp_path))]


def test_atomic_files_fsyncs_all_before_renaming_any(tmp_path, io_log):
    with AtomicFiles() as af:
        af.open(tmp_path / "s1.txt").write("1")
        af.open(tmp_path / "s2.txt").write("2")
    ops = [op for op, _ in io_log]
    assert ops == ["fsync", "fsync", "replace", "replace", "fsync"]
    assert io_log[-1] == ("fsync", str(tmp_path))


# ---------------------------------------------------------------------------------------------
# Snakemake's .snakemake_timestamp in directory() outputs
# ---------------------------------------------------------------------------------------------


def test_drop_snakemake_timestamp_keeps_the_directorys_time(tmp_path):
    d = tmp_path / "hf_model" / "m"
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    ts = d / ".snakemake_timestamp"
    ts.write_text("")
    os.utime(ts, ns=(1_600_000_000_000_000_000, 1_600_000_000_123_456_789))
    assert drop_snakemake_timestamp(d)
    assert sorted(p.name for p in d.iterdir()) == ["config.json"]
    assert os.stat(d).st_mtime_ns == 1_600_000_000_123_456_789  # where Snakemake now looks
    assert not drop_snakemake_timestamp(d) and not drop_snakemake_timestamp(tmp_path / "absent")
