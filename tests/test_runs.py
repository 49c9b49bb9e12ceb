"""scripts.training.runs: run keys, run directories, digests of the training files (no TensorFlow)."""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path

import pytest

from scripts.shared.common import InputError
from scripts.shared.formats import write_done
from scripts.training import runs


def _files(tmp_path: Path) -> tuple[Path, list[Path], list[Path]]:
    cfg = tmp_path / "stage.yaml"
    cfg.write_text("trainer: {train_steps: 10}\n")
    recs, stats = [], []
    for i, payload in enumerate([b"records one", b"records two!"], 1):
        r = tmp_path / f"pretraining_data_{i:02d}.tfrecord.gz"
        r.write_bytes(payload)
        s = tmp_path / f"pretraining_data_{i:02d}.stats.json"
        s.write_text(json.dumps({"output": f"pretraining_data/x/{r.name}", "output_bytes": len(payload),
                                 "output_sha256": hashlib.sha256(payload).hexdigest()}))
        recs.append(r)
        stats.append(s)
    return cfg, recs, stats


def _parts(cfg, recs, stats=None, **kw):
    args = {"config": str(cfg), "data": runs.data_digests([str(r) for r in recs], stats and [str(s) for s in stats]),
            "init": None, "code": "c0de", "backend": "torch"}
    args.update(kw)
    return runs.run_parts(**args)


def test_every_part_changes_the_key_and_nothing_else_does(tmp_path):
    cfg, recs, stats = _files(tmp_path)
    base = runs.run_key(_parts(cfg, recs, stats))
    assert base == runs.run_key(_parts(cfg, recs))  # digests from stats == hashing the files
    assert len(base) == 64
    keys = {base}
    keys.add(runs.run_key(_parts(cfg, recs, stats, code="c0df")))
    keys.add(runs.run_key(_parts(cfg, recs, stats, backend="model_garden")))
    init = runs.InitCheckpoint(path="/a/run-1/ckpt-60", part={"run_key": "k1", "checkpoint": "ckpt-60", "final_step": 60})
    keys.add(runs.run_key(_parts(cfg, recs, stats, init=init)))
    keys.add(runs.run_key(_parts(cfg, recs[::-1], stats)))  # the order the trainer reads them in
    cfg.write_text("trainer: {train_steps: 11}\n")
    keys.add(runs.run_key(_parts(cfg, recs, stats)))
    assert len(keys) == 6
    # the init checkpoint's location is not part of the key (a copied workflow keeps its keys)
    moved = runs.InitCheckpoint(path="/b/run-1/ckpt-60", part=init.part)
    cfg.write_text("trainer: {train_steps: 10}\n")
    assert runs.run_key(_parts(cfg, recs, stats, init=init)) == runs.run_key(_parts(cfg, recs, stats, init=moved))


def test_stats_digest_is_used_only_when_it_describes_the_file(tmp_path, caplog):
    cfg, recs, stats = _files(tmp_path)
    caplog.set_level(logging.INFO)
    fake = json.loads(stats[0].read_text())
    fake["output_sha256"] = "0" * 64
    stats[0].write_text(json.dumps(fake))
    assert runs.file_digest(str(recs[0]), str(stats[0]))["sha256"] == "0" * 64  # trusted: no read
    assert "hashing" not in caplog.text
    recs[0].write_bytes(b"records one, longer")  # replaced: the size no longer matches
    d = runs.file_digest(str(recs[0]), str(stats[0]))
    assert d == {"sha256": hashlib.sha256(b"records one, longer").hexdigest(), "size": 19}
    assert "records 11 bytes, the file has 19" in caplog.text
    assert runs.file_digest(str(recs[1]), str(stats[0]))["sha256"] == hashlib.sha256(b"records two!").hexdigest()
    assert "describes" in caplog.text
    with pytest.raises(InputError, match="training file not found"):
        runs.file_digest(str(tmp_path / "nope.tfrecord.gz"))


def test_open_run_creates_checks_and_lists_stale_runs(tmp_path, caplog):
    cfg, recs, stats = _files(tmp_path)
    stage = tmp_path / "model" / "stage"
    caplog.set_level(logging.INFO)
    first = runs.open_run(str(stage), _parts(cfg, recs, stats))
    assert Path(first.dir) == stage / f"run-{first.key16}" and first.stale == []
    meta = json.loads((Path(first.dir) / "run.json").read_text())
    assert meta["run_key"] == first.key and meta["parts"] == first.parts and meta["created"].endswith("Z")
    again = runs.open_run(str(stage), _parts(cfg, recs, stats))
    assert again.dir == first.dir and again.stale == []

    second = runs.open_run(str(stage), _parts(cfg, recs, stats, code="other"))
    assert second.dir != first.dir
    assert [d for d, _ in second.stale] == [first.dir]
    assert second.stale[0][1].startswith("differs in code; created ")
    assert f"stale run directory {first.dir} (differs in code" in caplog.text
    assert "not deleted; remove by hand" in caplog.text
    assert Path(first.dir, "run.json").exists()  # never deleted

    (stage / "ckpt-60.index").write_text("")  # the old layout: checkpoints in the stage dir itself
    runs.open_run(str(stage), _parts(cfg, recs, stats))
    assert "holds checkpoints of the old layout (ckpt-60.index" in caplog.text

    meta["run_key"] = "f" * 64
    (Path(first.dir) / "run.json").write_text(json.dumps(meta))
    with pytest.raises(InputError, match="key16 collision, or an edited run.json"):
        runs.open_run(str(stage), _parts(cfg, recs, stats))


def test_log_start_and_done_info(tmp_path, caplog):
    cfg, recs, stats = _files(tmp_path)
    run = runs.open_run(str(tmp_path / "s"), _parts(cfg, recs, stats))
    caplog.set_level(logging.INFO)
    init = runs.InitCheckpoint(path="p/run-x/ckpt-5", part={"run_key": "k" * 64, "checkpoint": "ckpt-5", "final_step": 5})
    assert runs.log_start(run, latest=None, step=0, train_steps=10, init=init) == "fresh"
    assert f"run {run.key16}: starting fresh (init from p/run-x/ckpt-5)" in caplog.text
    assert runs.log_start(run, latest=f"{run.dir}/ckpt-4", step=4, train_steps=10, init=None) == "resume"
    assert f"run {run.key16}: resuming from {run.dir}/ckpt-4 at step 4 (of 10)" in caplog.text
    assert runs.log_start(run, latest=f"{run.dir}/ckpt-10", step=10, train_steps=10, init=None) == "done"
    with pytest.raises(InputError, match="beyond train_steps 10"):
        runs.log_start(run, latest=f"{run.dir}/ckpt-12", step=12, train_steps=10, init=None)

    info = runs.done_info(run, checkpoint=f"{run.dir}/ckpt-10", final_step=10, init=init)
    assert info["run_key"] == run.key and info["model_dir"] == info["run_dir"] == run.dir
    assert info["init_run_key"] == "k" * 64
    done = tmp_path / "s" / "done.json"
    write_done(done, info)
    nxt = runs.init_from_done(str(done))
    assert nxt.path == f"{run.dir}/ckpt-10"
    assert nxt.part == {"run_key": run.key, "checkpoint": "ckpt-10", "final_step": 10}
    with pytest.raises(ValueError, match="run_key"):
        write_done(tmp_path / "bad.json", {k: v for k, v in info.items() if k != "run_key"})
