"""scripts.training.config and scripts.training.model_garden: override shape, accelerator plans, CPU training,
run directories (a changed config never continues an old checkpoint), resume after a kill,
stage-2 initialisation from stage 1.

Training runs are real ``python -m scripts.training.model_garden`` subprocesses on a tiny BERT (hidden 64,
2 layers) over random GZIP TFRecords; each takes ~15-25 s on 2 CPU cores.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import helpers_tf as h
from scripts.shared.common import InputError
from scripts.training.config import build_override, dump_override

BERT_BASE = {
    "hidden_size": 768, "num_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
    "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_activation": "gelu",
    "dropout_rate": 0.1, "attention_dropout_rate": 0.1, "initializer_range": 0.02,
}
RECIPE_CC100 = {
    "name": "cc-100", "corpus": "cc-100", "global_batch_size": 2048, "train_steps": 1000000,
    "learning_rate": 1.0e-4, "warmup_steps": 10000, "end_learning_rate": 0.0,
    "checkpoint_interval": 20000, "max_to_keep": 5, "steps_per_loop": 1000, "summary_interval": 1000,
    "validation_interval": 1000, "validation_steps": 64,
}


def recipe_spec(runtime=None) -> dict:
    return {"architecture": dict(BERT_BASE), "vocab_size": 32768, "stage": dict(RECIPE_CC100),
            "data": {"max_seq_length": 128, "max_predictions_per_seq": 19},
            "runtime": runtime or {"distribution_strategy": "tpu", "tpu": "local",
                                   "mixed_precision_dtype": "bfloat16", "num_gpus": 0}}


# ---------------------------------------------------------------------------------------------
# train_config (no TensorFlow)
# ---------------------------------------------------------------------------------------------


def test_build_override_recipe_shape():
    o = build_override(recipe_spec())
    assert set(o) == {"task", "trainer", "runtime"}
    data = {"drop_remainder": True, "file_type": "tfrecord_compressed", "global_batch_size": 2048,
            "max_predictions_per_seq": 19, "seq_length": 128, "use_next_sentence_label": True,
            "use_position_id": False, "use_v2_feature_names": True}
    assert o["task"]["train_data"] == {**data, "is_training": True}
    assert o["task"]["validation_data"] == {**data, "is_training": False}
    assert "input_path" not in o["task"]["train_data"] and "init_checkpoint" not in o["task"]
    assert o["task"]["model"]["cls_heads"] == [{"activation": "tanh", "cls_token_idx": 0, "dropout_rate": 0.1,
                                                "inner_dim": 768, "name": "next_sentence", "num_classes": 2}]
    assert o["task"]["model"]["encoder"] == {"type": "bert", "bert": {**BERT_BASE, "vocab_size": 32768}}
    t = o["trainer"]
    assert t["optimizer_config"] == {
        "learning_rate": {"type": "polynomial", "polynomial": {
            "cycle": False, "decay_steps": 1000000, "end_learning_rate": 0.0,
            "initial_learning_rate": 1e-4, "power": 1.0}},
        "optimizer": {"type": "adamw"},
        "warmup": {"type": "polynomial", "polynomial": {"power": 1, "warmup_steps": 10000}},
    }
    assert {k: t[k] for k in ("checkpoint_interval", "max_to_keep", "steps_per_loop", "summary_interval",
                              "train_steps", "validation_interval", "validation_steps")} == {
        "checkpoint_interval": 20000, "max_to_keep": 5, "steps_per_loop": 1000, "summary_interval": 1000,
        "train_steps": 1000000, "validation_interval": 1000, "validation_steps": 64}
    assert o["runtime"] == {"distribution_strategy": "tpu", "tpu": "local",
                            "mixed_precision_dtype": "bfloat16", "num_gpus": 0}


def test_build_override_rejects_bad_spec():
    spec = recipe_spec()
    del spec["stage"]["warmup_steps"]
    with pytest.raises(InputError, match="stage.warmup_steps"):
        build_override(spec)
    spec = recipe_spec()
    spec["data"]["max_seq_length"] = 1024
    with pytest.raises(InputError, match="max_position_embeddings"):
        build_override(spec)
    spec = recipe_spec()
    spec["stage"]["summary_interval"] = 1500
    with pytest.raises(InputError, match="multiple of stage.steps_per_loop"):
        build_override(spec)
    spec = recipe_spec()
    spec["runtime"]["distribution_strategy"] = "gpu"
    with pytest.raises(InputError, match="distribution_strategy"):
        build_override(spec)


def _lines_vocab(path: Path, n: int) -> Path:
    path.write_text("".join(f"t{i}\n" for i in range(n)), encoding="utf-8")
    return path


def test_train_config_cli_is_byte_stable(tmp_path):
    spec = recipe_spec()
    del spec["vocab_size"]
    vocab = _lines_vocab(tmp_path / "vocab.txt", 32768)
    outs = []
    for i in range(2):
        out = tmp_path / f"run{i}" / "cc-100.yaml"
        h.run_module("scripts.training.config", "--spec", json.dumps(spec), "--vocab-file", vocab, "--output", out)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0].decode() == dump_override(build_override(recipe_spec()))
    assert yaml.safe_load(outs[0]) == build_override(recipe_spec())
    assert not [p for p in (tmp_path / "run0").iterdir() if p.name.startswith(".")]  # no temp left


def test_train_config_vocab_size_is_the_vocab_files_line_count(tmp_path):
    """The WordPiece trainer may write more entries than requested (issue 10): the model's size is
    the file's, and a spec that still carries a vocab_size is refused."""
    spec = recipe_spec()
    del spec["vocab_size"]
    vocab = _lines_vocab(tmp_path / "vocab.txt", 8633)
    out = tmp_path / "cc-100.yaml"
    proc = h.run_module("scripts.training.config", "--spec", json.dumps(spec), "--vocab-file", vocab, "--output", out)
    assert yaml.safe_load(out.read_text())["task"]["model"]["encoder"]["bert"]["vocab_size"] == 8633
    assert "vocab 8633" in proc.stderr
    bad = h.run_module("scripts.training.config", "--spec", json.dumps(recipe_spec()), "--vocab-file", vocab,
                       "--output", tmp_path / "bad.yaml", check=False)
    assert bad.returncode == 2 and "the vocab size is counted from --vocab-file" in bad.stderr
    assert not (tmp_path / "bad.yaml").exists()


# ---------------------------------------------------------------------------------------------
# Accelerator plans (built, not run)
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stage1(tmp_path_factory):
    """Stage 1: 20 steps of the tiny model (shared with test_convert in one session)."""
    return h.tiny_stage1(tmp_path_factory)


@pytest.fixture(scope="module")
def data(stage1):
    return {"files": stage1["files"], "pattern": stage1["pattern"]}


def test_tpu_and_gpu_plans(tmp_path, data, capsys, caplog):
    from scripts.training import model_garden as train

    tpu_cfg = h.write_stage_config(tmp_path / "tpu.yaml", recipe_spec())
    # The CLI's --dry-run prints what a TPU run would get, without touching a device.
    assert train.main(["--config", str(tpu_cfg), "--train-files", data["pattern"], "--stage-dir",
                       "gs://bucket/model/wp/bert_base/training/cc-100_wikipedia", "--init-checkpoint",
                       "gs://bucket/model/wp/bert_base/training/cc-100", "--dry-run"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["experiment"] == "bert/pretraining" and p["mode"] == "train_and_eval"
    assert p["run_dir"] == "gs://bucket/model/wp/bert_base/training/cc-100_wikipedia/run-<key16>"
    assert p["strategy"] == {"distribution_strategy": "tpu", "tpu_address": "local", "num_gpus": 0,
                             "all_reduce_alg": None, "num_packs": 1}
    assert p["precision_policy"] == "mixed_bfloat16"
    task, trainer = p["params"]["task"], p["params"]["trainer"]
    files = [str(f) for f in data["files"]]
    for section in ("train_data", "validation_data"):
        assert task[section]["input_path"] == files  # train and validation: the same files
        assert task[section]["file_type"] == "tfrecord_compressed"
        assert task[section]["global_batch_size"] == 2048 and task[section]["seq_length"] == 128
    assert task["train_data"]["is_training"] and not task["validation_data"]["is_training"]
    assert task["init_checkpoint"] == "gs://bucket/model/wp/bert_base/training/cc-100"
    assert task["model"]["encoder"]["bert"]["hidden_size"] == 768
    assert trainer["optimizer_config"]["optimizer"]["adamw"]["weight_decay_rate"] == 0.01
    assert trainer["optimizer_config"]["learning_rate"]["polynomial"]["decay_steps"] == 1000000
    assert p["params"]["runtime"]["mixed_precision_dtype"] == "bfloat16"

    gpu_cfg = h.write_stage_config(tmp_path / "gpu.yaml", recipe_spec(
        {"distribution_strategy": "mirrored", "tpu": "", "mixed_precision_dtype": "float16", "num_gpus": 8}))
    params = train.load_params(str(gpu_cfg), train_files=files)
    g = train.plan(params, stage_dir="model/x", threads=16, mode="train_and_eval")
    assert g["strategy"]["distribution_strategy"] == "mirrored" and g["strategy"]["num_gpus"] == 8
    assert g["precision_policy"] == "mixed_float16" and g["threads"] == 16
    assert params.runtime.enable_xla  # Model Garden's bert/pretraining default, used with GPUs

    # Asking for GPUs where none is visible fails at once, with a clear message.
    # (explicit --train-file list, as the Snakemake rule passes the shards)
    rc = train.main(["--config", str(gpu_cfg), "--train-file", files[1], "--train-file", files[0],
                     "--stage-dir", str(tmp_path / "m"), "--done", str(tmp_path / "m" / "done.json")])
    assert rc == 3
    assert train.resolve_train_files([], [files[1], files[0]]) == files
    assert "runtime.num_gpus is 8 but 0 GPU(s) are visible" in caplog.text
    assert not (tmp_path / "m").exists()  # devices are checked before a run directory is made


def test_mixed_compression_and_bad_layout_rejected(tmp_path, data):
    from scripts.training import model_garden as train

    plain = h.write_pretraining_data(tmp_path / "plain", vocab_size=1000, num_files=1, per_file=4, gzip=False)
    with pytest.raises(InputError, match="mix of GZIP"):
        train.detect_file_type([str(data["files"][0]), str(plain[0])])
    with pytest.raises(InputError, match="cannot read as GZIP"):
        train.check_first_record(str(plain[0]), "tfrecord_compressed", 64, 10)
    with pytest.raises(InputError, match="'input_word_ids' has 64 values, the config expects 128"):
        train.check_first_record(str(data["files"][0]), "tfrecord_compressed", 128, 10)
    train.check_first_record(str(data["files"][0]), "tfrecord_compressed", 64, 10)


# ---------------------------------------------------------------------------------------------
# Training on CPU
# ---------------------------------------------------------------------------------------------


def train_cli(cfg: Path, stage_dir: Path, pattern: str, *extra, check=True, timeout=300):
    return h.run_module("scripts.training.model_garden", "--config", cfg, "--train-files", pattern, "--stage-dir",
                        stage_dir, "--threads", "2", "--done", stage_dir / "done.json", *extra, check=check,
                        timeout=timeout)


def test_train_tiny_cpu(stage1):
    d = h.read_json(stage1["done"])
    run_dir = stage1["model_dir"]
    assert run_dir.parent == stage1["stage_dir"] and run_dir.name == f"run-{d['run_key'][:16]}"
    assert d["final_step"] == 20 and d["train_steps"] == 20 and d["start_step"] == 0
    assert d["checkpoint"] == str(run_dir / "ckpt-20")
    assert Path(d["checkpoint"] + ".index").exists()
    assert d["model_dir"] == d["run_dir"] == str(run_dir) and d["stage_dir"] == str(stage1["stage_dir"])
    assert d["backend"] == "model_garden" and d["init_checkpoint"] is None
    run = h.read_json(run_dir / "run.json")
    assert run["run_key"] == d["run_key"] and set(run["parts"]) == {"backend", "code", "config", "data", "init"}
    assert len(run["parts"]["data"]) == 2 and run["parts"]["init"] is None
    assert d["file_type"] == "tfrecord_compressed" and d["train_files"] == 2
    assert d["seconds"] > 0 and np.isfinite(d["train_metrics"]["training_loss"])
    assert {"lm_example_loss", "next_sentence_loss", "masked_lm_accuracy"} <= set(d["train_metrics"])
    assert "validation_loss" in d["validation_metrics"]
    err = stage1["proc"].stderr
    assert f"run {d['run_key'][:16]}: starting fresh (init from random initialization)" in err
    assert "examples/s" in err and "steps/sec" in err
    assert "physical devices: CPU" in err
    assert err.strip().splitlines()[-1].endswith(f"built {run_dir}: step 20, checkpoint {run_dir}/ckpt-20")
    assert (run_dir / "params.yaml").exists()


def test_missing_marker_and_changed_config(stage1, data, tmp_path, caplog):
    """Same inputs and a lost done.json: the run is recognised as finished. A changed config
    (here train_steps) never continues the old checkpoint: a new run directory starts fresh and
    the old one is listed as stale and left in place."""
    from scripts.training import model_garden as train

    stage_dir = tmp_path / "cc-100"
    shutil.copytree(stage1["stage_dir"], stage_dir)
    (stage_dir / "done.json").unlink()
    old_run = stage_dir / stage1["model_dir"].name
    files = [str(f) for f in data["files"]]
    # In-process: no training happens, so no TF thread settings are needed.
    caplog.set_level(logging.INFO)
    train.train(config=str(stage1["cfg"]), train_files=files, stage_dir=str(stage_dir), done=str(stage_dir / "done.json"))
    assert "already at train_steps, nothing to train" in caplog.text
    d = h.read_json(stage_dir / "done.json")
    assert d["final_step"] == 20 and d["trained_steps"] == 0 and d["train_metrics"] is None
    assert d["run_dir"] == str(old_run) and d["run_key"] == h.read_json(stage1["done"])["run_key"]

    short = h.write_stage_config(tmp_path / "short.yaml", h.stage_spec(1000, train_steps=10, checkpoint_interval=10))
    proc = train_cli(short, stage_dir, data["pattern"], "--mode", "train")
    d2 = h.read_json(stage_dir / "done.json")
    new_run = Path(d2["run_dir"])
    assert new_run != old_run and new_run.parent == stage_dir
    assert f"run {d2['run_key'][:16]}: starting fresh (init from random initialization)" in proc.stderr
    assert re.search(rf"stale run directory {re.escape(str(old_run))} \(differs in [^;)]*config", proc.stderr)
    assert "not used, not deleted; remove by hand" in proc.stderr
    assert (d2["start_step"], d2["final_step"]) == (0, 10) and d2["checkpoint"] == f"{new_run}/ckpt-10"
    assert sorted(p.name for p in old_run.glob("ckpt-*.index")) == sorted(
        p.name for p in stage1["model_dir"].glob("ckpt-*.index"))  # the old run is untouched


def test_killed_run_continues_from_latest_checkpoint(data, tmp_path):
    """Killed after its first checkpoint, a rerun with the same inputs resumes in the same run dir."""
    stage_dir = tmp_path / "cc-100"
    cfg = h.write_stage_config(tmp_path / "cc-100.yaml", h.stage_spec(
        1000, train_steps=40, checkpoint_interval=5, steps_per_loop=5, summary_interval=5, global_batch_size=8))
    cmd = [sys.executable, "-m", "scripts.training.model_garden", "--config", str(cfg), "--train-files", data["pattern"],
           "--stage-dir", str(stage_dir), "--threads", "2", "--mode", "train", "--done", str(stage_dir / "done.json")]
    proc = subprocess.Popen(cmd, cwd=h.ROOT, env=h.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            states = list(stage_dir.glob("run-*/checkpoint"))
            if states and "ckpt-" in states[0].read_text():
                break
            time.sleep(0.02)
        assert proc.poll() is None, "training exited before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not (stage_dir / "done.json").exists()
    import tensorflow as tf

    (run_dir,) = stage_dir.glob("run-*")
    latest = tf.train.latest_checkpoint(str(run_dir))
    k = int(latest.rsplit("-", 1)[1])
    assert 0 < k < 40
    rerun = train_cli(cfg, stage_dir, data["pattern"], "--mode", "train")
    assert f"run {run_dir.name[4:]}: resuming from {run_dir}/ckpt-{k} at step {k}" in rerun.stderr
    d = h.read_json(stage_dir / "done.json")
    assert (d["start_step"], d["final_step"]) == (k, 40) and d["run_dir"] == str(run_dir)
    assert d["resumed_from"] == f"{run_dir}/ckpt-{k}"


def test_stage2_starts_from_stage1_weights(stage1, data, tmp_path):
    from scripts.hf_model.convert import load_pretrainer, tf_variables
    from scripts.training.model_garden import load_params

    # Learning rate 0: the stage-2 checkpoint holds exactly the weights stage 2 started from.
    cfg = h.write_stage_config(tmp_path / "cc-100_wikipedia.yaml", h.stage_spec(
        1000, name="cc-100_wikipedia", train_steps=2, learning_rate=0.0, warmup_steps=1,
        steps_per_loop=2, summary_interval=2, global_batch_size=16))
    stage_dir = tmp_path / "cc-100_wikipedia"
    proc = train_cli(cfg, stage_dir, data["pattern"], "--mode", "train", "--init-done", stage1["done"])
    init = f"{stage1['model_dir']}/ckpt-20"
    assert f"starting fresh (init from {init})" in proc.stderr
    d = h.read_json(stage_dir / "done.json")
    assert d["init_checkpoint"] == init and d["final_step"] == 2
    assert d["init_run_key"] == h.read_json(stage1["done"])["run_key"]
    assert h.read_json(Path(d["run_dir"]) / "run.json")["parts"]["init"] == {
        "run_key": d["init_run_key"], "checkpoint": "ckpt-20", "final_step": 20}

    params = load_params(str(cfg))
    v1 = tf_variables(load_pretrainer(params, init))
    v2 = tf_variables(load_pretrainer(params, d["checkpoint"]))
    assert v1.keys() == v2.keys()
    fresh = {"bert/next_sentence/logits/kernel", "bert/next_sentence/logits/bias"}
    for name in v1.keys() - fresh:
        np.testing.assert_array_equal(v1[name], v2[name], err_msg=name)
    # Model Garden's init restores the pretrainer's checkpoint_items (encoder, MLM head, NSP
    # pooler_dense); the NSP output layer starts fresh in stage 2, as in the recipe.
    assert not np.array_equal(v1["bert/next_sentence/logits/kernel"], v2["bert/next_sentence/logits/kernel"])


def test_missing_init_checkpoint_is_an_error(stage1, data, tmp_path):
    from scripts.training import model_garden as train

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="init checkpoint directory holds no checkpoint"):
        train.main(["--config", str(stage1["cfg"]), "--train-files", data["pattern"], "--stage-dir",
                    str(tmp_path / "m"), "--init-checkpoint", str(empty), "--done", str(tmp_path / "m" / "d.json")])
    gone = tmp_path / "gone.json"
    gone.write_text(json.dumps({**h.read_json(stage1["done"]), "checkpoint": str(stage1["model_dir"] / "ckpt-999")}))
    with pytest.raises(InputError, match="init checkpoint not found"):
        train.main(["--config", str(stage1["cfg"]), "--train-files", data["pattern"], "--stage-dir",
                    str(tmp_path / "m"), "--init-done", str(gone), "--done", str(tmp_path / "m" / "d.json")])
    with pytest.raises(InputError, match="init checkpoint not found"):
        train.resolve_init_checkpoint(str(stage1["model_dir"] / "ckpt-999"))
    prefix = str(stage1["model_dir"] / "ckpt-20")
    assert train.resolve_init_checkpoint(prefix) == prefix
    assert not (tmp_path / "m").exists()
