"""scripts.training.config and scripts.training.model_garden: override shape, accelerator plans, CPU training,
resume after a kill, stage-2 initialisation from stage 1.

Training runs are real ``python -m scripts.training.model_garden`` subprocesses on a tiny BERT (hidden 64,
2 layers) over random GZIP TFRecords; each takes ~15-25 s on 2 CPU cores.
"""

from __future__ import annotations

import json
import logging
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


def test_train_config_cli_is_byte_stable(tmp_path):
    spec = json.dumps(recipe_spec())
    outs = []
    for i in range(2):
        out = tmp_path / f"run{i}" / "cc-100.yaml"
        h.run_module("scripts.training.config", "--spec", spec, "--output", out)
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0].decode() == dump_override(build_override(recipe_spec()))
    assert yaml.safe_load(outs[0]) == build_override(recipe_spec())
    assert not [p for p in (tmp_path / "run0").iterdir() if p.name.startswith(".")]  # no temp left


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
    assert train.main(["--config", str(tpu_cfg), "--train-files", data["pattern"], "--model-dir",
                       "gs://bucket/model/wp/bert_base/training/cc-100_wikipedia", "--init-checkpoint",
                       "gs://bucket/model/wp/bert_base/training/cc-100", "--dry-run"]) == 0
    p = json.loads(capsys.readouterr().out)
    assert p["experiment"] == "bert/pretraining" and p["mode"] == "train_and_eval"
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
    g = train.plan(params, model_dir="model/x", threads=16, mode="train_and_eval")
    assert g["strategy"]["distribution_strategy"] == "mirrored" and g["strategy"]["num_gpus"] == 8
    assert g["precision_policy"] == "mixed_float16" and g["threads"] == 16
    assert params.runtime.enable_xla  # Model Garden's bert/pretraining default, used with GPUs

    # Asking for GPUs where none is visible fails at once, with a clear message.
    # (explicit --train-file list, as the Snakemake rule passes the shards)
    rc = train.main(["--config", str(gpu_cfg), "--train-file", files[1], "--train-file", files[0],
                     "--model-dir", str(tmp_path / "m"), "--done", str(tmp_path / "m" / "done.json")])
    assert rc == 3
    assert train.resolve_train_files([], [files[1], files[0]]) == files
    assert "runtime.num_gpus is 8 but 0 GPU(s) are visible" in caplog.text
    assert not (tmp_path / "m" / "done.json").exists()


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


def train_cli(cfg: Path, model_dir: Path, pattern: str, *extra, check=True, timeout=300):
    return h.run_module("scripts.training.model_garden", "--config", cfg, "--train-files", pattern, "--model-dir", model_dir,
                        "--threads", "2", "--done", model_dir / "done.json", *extra, check=check,
                        timeout=timeout)


def test_train_tiny_cpu(stage1):
    d = h.read_json(stage1["model_dir"] / "done.json")
    assert d["final_step"] == 20 and d["train_steps"] == 20 and d["start_step"] == 0
    assert d["checkpoint"] == str(stage1["model_dir"] / "ckpt-20")
    assert Path(d["checkpoint"] + ".index").exists()
    assert d["model_dir"] == str(stage1["model_dir"])
    assert d["file_type"] == "tfrecord_compressed" and d["train_files"] == 2
    assert d["seconds"] > 0 and np.isfinite(d["train_metrics"]["training_loss"])
    assert {"lm_example_loss", "next_sentence_loss", "masked_lm_accuracy"} <= set(d["train_metrics"])
    assert "validation_loss" in d["validation_metrics"]
    err = stage1["proc"].stderr
    assert "starting fresh (init from random initialization)" in err
    assert "examples/s" in err and "steps/sec" in err
    assert "physical devices: CPU" in err
    assert err.strip().splitlines()[-1].endswith(
        f"built {stage1['model_dir']}: step 20, checkpoint {stage1['model_dir']}/ckpt-20")
    assert (stage1["model_dir"] / "params.yaml").exists()


def test_resume_with_more_steps_and_nothing_to_do(stage1, data, tmp_path, caplog):
    model_dir = tmp_path / "cc-100"
    shutil.copytree(stage1["model_dir"], model_dir)
    (model_dir / "done.json").unlink()
    cfg = h.write_stage_config(tmp_path / "cc-100.yaml", h.stage_spec(1000, train_steps=30))
    proc = train_cli(cfg, model_dir, data["pattern"], "--mode", "train")
    assert f"resuming from {model_dir}/ckpt-20 at step 20" in proc.stderr
    assert "train | step:     20 | training until step 30" in proc.stdout + proc.stderr
    d = h.read_json(model_dir / "done.json")
    assert (d["start_step"], d["final_step"], d["trained_steps"]) == (20, 30, 10)
    assert d["resumed_from"] == f"{model_dir}/ckpt-20" and d["checkpoint"] == f"{model_dir}/ckpt-30"

    # Rerun (in-process: no training happens, so no TF thread settings are needed).
    from scripts.training import model_garden as train

    caplog.set_level(logging.INFO)
    train.train(config=str(cfg), train_files=[str(f) for f in data["files"]], model_dir=str(model_dir),
                done=str(model_dir / "done.json"))
    assert "already at train_steps, nothing to train" in caplog.text
    d2 = h.read_json(model_dir / "done.json")
    assert d2["final_step"] == 30 and d2["trained_steps"] == 0 and d2["train_metrics"] is None

    # A directory trained beyond the config's train_steps belongs to another config.
    short = h.write_stage_config(tmp_path / "short.yaml", h.stage_spec(1000, train_steps=10))
    with pytest.raises(InputError, match="beyond train_steps 10"):
        train.train(config=str(short), train_files=[str(f) for f in data["files"]], model_dir=str(model_dir),
                    done=str(tmp_path / "done.json"))
    assert not (tmp_path / "done.json").exists()


def test_killed_run_continues_from_latest_checkpoint(data, tmp_path):
    model_dir = tmp_path / "cc-100"
    long_cfg = h.write_stage_config(tmp_path / "long.yaml", h.stage_spec(1000, train_steps=100000))
    cmd = [sys.executable, "-m", "scripts.training.model_garden", "--config", str(long_cfg), "--train-files", data["pattern"],
           "--model-dir", str(model_dir), "--threads", "2", "--mode", "train", "--done", str(model_dir / "done.json")]
    proc = subprocess.Popen(cmd, cwd=h.ROOT, env=h.env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            state = model_dir / "checkpoint"
            if state.exists() and "ckpt-" in state.read_text():
                break
            time.sleep(0.1)
        assert proc.poll() is None, "training exited before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert not (model_dir / "done.json").exists()
    import tensorflow as tf

    latest = tf.train.latest_checkpoint(str(model_dir))
    k = int(latest.rsplit("-", 1)[1])
    assert 0 < k < 1000
    cfg = h.write_stage_config(tmp_path / "cc-100.yaml", h.stage_spec(1000, train_steps=k + 10))
    rerun = train_cli(cfg, model_dir, data["pattern"], "--mode", "train")
    assert f"resuming from {model_dir}/ckpt-{k} at step {k}" in rerun.stderr
    d = h.read_json(model_dir / "done.json")
    assert (d["start_step"], d["final_step"]) == (k, k + 10)


def test_stage2_starts_from_stage1_weights(stage1, data, tmp_path):
    from scripts.hf_model.convert import load_pretrainer, tf_variables
    from scripts.training.model_garden import load_params

    # Learning rate 0: the stage-2 checkpoint holds exactly the weights stage 2 started from.
    cfg = h.write_stage_config(tmp_path / "cc-100_wikipedia.yaml", h.stage_spec(
        1000, name="cc-100_wikipedia", train_steps=2, learning_rate=0.0, warmup_steps=1,
        steps_per_loop=2, summary_interval=2, global_batch_size=16))
    model_dir = tmp_path / "cc-100_wikipedia"
    proc = train_cli(cfg, model_dir, data["pattern"], "--mode", "train", "--init-checkpoint", stage1["model_dir"])
    init = f"{stage1['model_dir']}/ckpt-20"
    assert f"starting fresh (init from {init})" in proc.stderr
    d = h.read_json(model_dir / "done.json")
    assert d["init_checkpoint"] == init and d["final_step"] == 2

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
        train.main(["--config", str(stage1["cfg"]), "--train-files", data["pattern"], "--model-dir",
                    str(tmp_path / "m"), "--init-checkpoint", str(empty), "--done", str(tmp_path / "m" / "d.json")])
    with pytest.raises(InputError, match="init checkpoint not found"):
        train.resolve_init_checkpoint(str(stage1["model_dir"] / "ckpt-999"))
    prefix = str(stage1["model_dir"] / "ckpt-20")
    assert train.resolve_init_checkpoint(prefix) == prefix
    assert not (tmp_path / "m").exists()
