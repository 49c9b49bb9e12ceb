"""The PyTorch training backend (scripts.training.torch_*): the TFRecord reader against TensorFlow,
the data streams, the optimisers and schedule against Model Garden, the losses of the first steps
against a Model Garden pretrainer with the same weights and records, tiny CPU runs (the loss
goes down, exact resume, stage chaining) and the converted model in transformers.

Everything runs on CPU with a tiny BERT (hidden 64, 2 layers); the CLI runs are subprocesses
(``python -m scripts.training.torch_train``, as the rule runs it), ~10-20 s each on 2 cores.
"""

from __future__ import annotations

import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

import helpers_tf as h
from scripts.shared.common import InputError

VOCAB = h.TINY_VOCAB
TORCH_CPU = {"precision": "fp32", "compile": False, "num_workers": 0, "shuffle_records": 64,
             "trim_padding": True}


def torch_spec(torch_opts=None, **stage) -> dict:
    spec = h.stage_spec(VOCAB, **stage)
    spec["torch"] = {**TORCH_CPU, **(torch_opts or {})}
    return spec


def write_cfg(path: Path, spec: dict, *, cls_dropout: float | None = None) -> Path:
    h.write_stage_config(path, spec)
    if cls_dropout is not None:
        o = yaml.safe_load(path.read_text())
        o["task"]["model"]["cls_heads"][0]["dropout_rate"] = cls_dropout
        path.write_text(yaml.safe_dump(o, sort_keys=True))
    return path


def train_cli(cfg, stage_dir, files, *extra, check=True, timeout=300):
    args = ["--config", cfg, "--stage-dir", stage_dir, "--threads", "2"]
    for f in files:
        args += ["--train-file", f]
    if not any(str(a).startswith("--done") for a in extra) and "--stop-after" not in map(str, extra):
        args += ["--done", Path(stage_dir) / "done.json"]
    return h.run_module("scripts.training.torch_train", *args, *extra, check=check, timeout=timeout)


def data_stage_corpus(path: Path) -> Path:
    """sample/source/web_docs.txt as a sentence-per-line shard (one paragraph a line)."""
    docs, cur = [], []
    for line in (h.ROOT / "sample" / "source" / "web_docs.txt").read_text(encoding="utf-8").splitlines():
        if line.startswith("@doc"):
            if cur:
                docs.append(cur)
            cur = []
        elif line.strip() and not line.startswith("#"):
            cur.append(line.strip())
    if cur:
        docs.append(cur)
    path.write_text("".join("".join(s + "\n" for s in d) + "\n" for d in docs), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("torch")
    vocab = h.write_vocab(root / "vocab.txt", VOCAB)
    tf_files = h.write_pretraining_data(root / "tf", vocab_size=VOCAB, num_files=2, per_file=160)
    corpus = data_stage_corpus(root / "corpus_01.txt")
    out = root / "stage" / "pretraining_data_01.tfrecord.gz"
    out.parent.mkdir()
    h.run_module("scripts.pretraining_data.create", "--input", corpus, "--output", out, "--vocab-file", vocab,
                 "--subword-tokenizer", "wordpiece", "--mecab-dic", "unidic_lite", "--max-seq-length", "64",
                 "--max-predictions-per-seq", "10", "--masked-lm-prob", "0.15", "--short-seq-prob", "0.1",
                 "--dupe-factor", "2", "--seed", "3", "--threads", "1",
                 "--stats", root / "stage" / "pretraining_data_01.stats.json")
    return {"root": root, "vocab": vocab, "tf_files": [str(f) for f in tf_files], "stage_file": str(out)}


def tf_parse(path: str) -> list[dict]:
    import tensorflow as tf

    out = []
    for raw in tf.data.TFRecordDataset(path, compression_type="GZIP"):
        ex = tf.train.Example.FromString(raw.numpy()).features.feature
        out.append({k: np.array(v.int64_list.value or v.float_list.value) for k, v in ex.items()})
    return out


# ---------------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("which", ["stage_file", "tf_file"])
def test_reader_equals_what_tensorflow_parses(data, which):
    from scripts.training.torch_data import Layout, read_file

    path = data["stage_file"] if which == "stage_file" else data["tf_files"][0]
    layout = Layout(64, 10)
    ints, floats = read_file(path, layout)
    want = tf_parse(path)
    assert len(ints) == len(want) > 50
    cols = layout.split(ints)
    for i, ex in enumerate(want):
        for k, v in cols.items():
            np.testing.assert_array_equal(np.atleast_1d(v[i]), ex[k].astype(np.int64), err_msg=f"{k} {i}")
        np.testing.assert_array_equal(floats[i], ex["masked_lm_weights"].astype(np.float32))


def test_reader_errors_name_the_file_and_record(data, tmp_path):
    from scripts.training.torch_data import Layout, check_first_record, read_file

    path = data["stage_file"]
    with pytest.raises(InputError, match=r"record 0: a feature has the wrong number of values"):
        check_first_record(path, Layout(128, 10))
    good = gzip.decompress(Path(path).read_bytes())
    raw = bytearray(good)
    raw[40] ^= 0xFF  # inside the first record's data
    bad = tmp_path / "bad.tfrecord.gz"
    bad.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(InputError, match=rf"{bad}: record 0: data CRC mismatch"):
        read_file(str(bad), Layout(64, 10))
    cut = tmp_path / "cut.tfrecord.gz"
    cut.write_bytes(gzip.compress(good[: len(good) - 7]))
    with pytest.raises(InputError, match="truncated record"):
        read_file(str(cut), Layout(64, 10))
    trunc = tmp_path / "trunc.tfrecord.gz"
    trunc.write_bytes(Path(path).read_bytes()[:-20])
    with pytest.raises(InputError, match="truncated gzip stream"):
        read_file(str(trunc), Layout(64, 10))


def test_consumers_split_the_records_exactly_and_resume_their_stream(data):
    from scripts.training.torch_data import ConsumerStream, Layout, StreamState, consumer_files, read_file

    layout = Layout(64, 10)
    files = data["tf_files"]
    every = np.concatenate([read_file(f, layout)[0] for f in files])
    key = lambda a: sorted(map(bytes, a))  # noqa: E731
    for n in (1, 2, 3, 5):  # more files than consumers, as many, fewer
        seen = []
        for k in range(n):
            s = ConsumerStream(files, layout, k, n, seed=1, shuffle_records=50)
            rows, it = [], s.pieces()
            for ints, _, epoch, _ in it:
                if epoch:
                    break
                rows.append(ints)
            seen.append(np.concatenate(rows))
        assert key(np.concatenate(seen)) == key(every), n  # each record once per epoch
    assert consumer_files(2, 5, 4) == [(0, 3, 2)]

    s = ConsumerStream(files, layout, 0, 1, seed=7, shuffle_records=50)
    batches = [b for _, b in zip(range(25), s.batches(30))]  # 750 rows: into the third epoch
    assert batches[10][2] == StreamState(1, 10)
    first = batches[0][0]
    assert not np.array_equal(first, every[:30])  # shuffled
    for cut in (3, 10, 17):  # restart from the state after batch `cut`
        again = ConsumerStream(files, layout, 0, 1, seed=7, shuffle_records=50, state=batches[cut][2])
        rest = [b for _, b in zip(range(25 - cut - 1), again.batches(30))]
        for (a, _, sa), (b, _, sb) in zip(batches[cut + 1:], rest):
            np.testing.assert_array_equal(a, b)
            assert sa == sb


def test_reader_speed_is_reported(data, capsys):
    import time

    from scripts.training.torch_data import Layout, read_file

    path = data["tf_files"][0]
    read_file(path, Layout(64, 10))  # compiled
    t = time.perf_counter()
    for _ in range(5):
        n = len(read_file(path, Layout(64, 10))[0])
    rate = 5 * n / (time.perf_counter() - t)
    print(f"reader: {rate:.0f} records/s")
    assert rate > 5000


# ---------------------------------------------------------------------------------------------
# Optimisers and schedule vs Model Garden
# ---------------------------------------------------------------------------------------------


def test_schedule_equals_model_garden():
    from official.modeling.optimization import lr_schedule

    from scripts.training.torch_optim import learning_rate

    decay = lr_schedule.PolynomialDecayWithOffset(initial_learning_rate=1e-3, decay_steps=60,
                                                  end_learning_rate=1e-5, power=1.0)
    warm = lr_schedule.PolynomialWarmUp(decay, warmup_steps=10, power=1.0)
    for t in (0, 1, 2, 5, 9, 10, 11, 30, 59, 60, 70):
        want = float(warm(t))
        got = learning_rate(t, learning_rate=1e-3, end_learning_rate=1e-5, warmup_steps=10, decay_steps=60)
        assert got == pytest.approx(want, rel=1e-6), t


def test_lamb_equals_model_garden():
    import tensorflow as tf
    import torch
    from official.modeling.optimization import lamb

    from scripts.training.torch_optim import Lamb

    rng = np.random.default_rng(0)
    w = {"dense/kernel": rng.normal(size=(4, 3)), "dense/bias": rng.normal(size=3),
         "LayerNorm/gamma": rng.normal(size=3)}
    grads = [{k: rng.normal(size=v.shape) for k, v in w.items()} for _ in range(3)]
    tv = {k: tf.Variable(v.astype(np.float32), name=k) for k, v in w.items()}
    tfo = lamb.LAMB(learning_rate=0.01, weight_decay_rate=0.01,
                    exclude_from_weight_decay=["LayerNorm", "layer_norm", "bias"])
    tp = {k: torch.nn.Parameter(torch.tensor(v, dtype=torch.float32)) for k, v in w.items()}
    groups = [{"params": [tp["dense/kernel"]], "weight_decay": 0.01, "adapt": True},
              {"params": [tp["dense/bias"], tp["LayerNorm/gamma"]], "weight_decay": 0.0, "adapt": False}]
    opt = Lamb(groups, lr=0.01)
    for g in grads:
        tfo.apply_gradients([(tf.constant(g[k], tf.float32), tv[k]) for k in w])
        for k in w:
            tp[k].grad = torch.tensor(g[k], dtype=torch.float32)
        opt.step()
    for k in w:
        np.testing.assert_allclose(tp[k].detach().numpy(), tv[k].numpy(), rtol=1e-5, atol=1e-6, err_msg=k)


# ---------------------------------------------------------------------------------------------
# Parity with Model Garden: the losses of the first 5 steps, same weights, same records
# ---------------------------------------------------------------------------------------------


def test_first_losses_equal_model_garden(data, tmp_path):
    import tensorflow as tf
    import torch
    from official.core import task_factory

    from scripts.hf_model.bert_mapping import expected_shapes, map_variables
    from scripts.hf_model.convert import build_pretrainer, tf_variables
    from scripts.training.experiment import load_params
    from scripts.training.torch_data import ConsumerStream, Layout, to_batch
    from scripts.training.torch_train import Dist, Options, Trainer, read_stage, to_device

    arch = {**h.TINY_ARCH, "dropout_rate": 0.0, "attention_dropout_rate": 0.0}
    spec = h.stage_spec(VOCAB, arch=arch, global_batch_size=16, train_steps=100, warmup_steps=3,
                        learning_rate=1e-3)
    cfg = write_cfg(tmp_path / "parity.yaml", spec, cls_dropout=0.0)
    params = load_params(str(cfg))
    task = task_factory.get_task(params.task)
    tf_model = build_pretrainer(params)
    optimizer = task.create_optimizer(params.trainer.optimizer_config, params.runtime)
    metrics = {m.name: m for m in task.build_metrics(training=True)}

    enc = params.task.model.encoder.bert.as_dict()
    shapes = expected_shapes(vocab_size=VOCAB, hidden_size=enc["hidden_size"], num_layers=enc["num_layers"],
                             intermediate_size=enc["intermediate_size"],
                             max_position_embeddings=enc["max_position_embeddings"],
                             type_vocab_size=enc["type_vocab_size"])
    state, _ = map_variables(tf_variables(tf_model), shapes)
    tr = Trainer(stage=read_stage(str(cfg)), files=[data["stage_file"]], model_dir=str(tmp_path),
                 options=Options(precision="fp32", compile="false", num_workers=0, trim_padding=False),
                 dist=Dist())
    tr.build(init_state={k: torch.from_numpy(v.copy()) for k, v in state.items()})

    layout = Layout(64, 10)
    stream = ConsumerStream([data["stage_file"]], layout, 0, 1, shuffle_records=1)
    got, want = [], []
    for step, (ints, floats, _) in zip(range(5), stream.batches(16)):
        b = to_batch(ints, floats, layout)
        tf_in = {"input_word_ids": b["input_ids"], "input_mask": b["attention_mask"],
                 "input_type_ids": b["token_type_ids"], "masked_lm_positions": b["masked_lm_positions"],
                 "masked_lm_ids": b["masked_lm_ids"], "masked_lm_weights": b["masked_lm_weights"],
                 "next_sentence_labels": b["next_sentence_labels"]}
        tf_in = {k: tf.constant(v.numpy()) for k, v in tf_in.items()}
        for m in metrics.values():
            m.reset_state()
        task.train_step(tf_in, tf_model, optimizer, metrics=list(metrics.values()))
        want.append((float(metrics["lm_example_loss"].result()), float(metrics["next_sentence_loss"].result())))
        from scripts.training.torch_model import metrics_from_stats

        st, *_ = tr.step([to_device(b, "cpu", False, 8)], step)
        m = metrics_from_stats(st)
        got.append((m["mlm_loss"], m["nsp_loss"]))
    print("Model Garden (mlm, nsp):", want, "\ntorch:", got)
    for (gm, gn), (wm, wn) in zip(got, want):
        assert gm == pytest.approx(wm, rel=1e-3) and gn == pytest.approx(wn, rel=1e-3)
    assert want[4][0] < want[0][0]  # the updates did something (not five equal first steps)


# ---------------------------------------------------------------------------------------------
# CPU training runs
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def stage1(data):
    """30 steps on 64 records of the data stage (batch 16: the model can memorise them)."""
    root = data["root"] / "run1"
    cfg = write_cfg(root / "cc-100.yaml", torch_spec(train_steps=30, global_batch_size=16, warmup_steps=3,
                                                     checkpoint_interval=10, steps_per_loop=5,
                                                     summary_interval=5, learning_rate=3e-3))
    proc = train_cli(cfg, root / "cc-100", [data["stage_file"]])
    return {"cfg": cfg, "stage_dir": root / "cc-100", "proc": proc, "done": h.read_json(root / "cc-100" / "done.json")}


def test_tiny_training_reduces_the_loss_and_reports(stage1):
    d = stage1["done"]
    assert d["backend"] == "torch" and d["final_step"] == 30 and d["start_step"] == 0
    run_dir = Path(d["run_dir"])
    assert run_dir.parent == stage1["stage_dir"] and run_dir.name.startswith("run-")
    assert d["checkpoint"] == str(run_dir / "ckpt-30.pt") and Path(d["checkpoint"]).exists()
    assert sorted(p.name for p in run_dir.glob("ckpt-*.pt")) == ["ckpt-10.pt", "ckpt-20.pt", "ckpt-30.pt"]
    err = stage1["proc"].stderr
    losses = [float(x) for x in re.findall(r"\| loss ([\d.]+) ", err)]
    assert len(losses) >= 6 and losses[-1] < losses[0] - 0.5, losses
    assert "starting fresh (init from random initialization)" in err and "ETA" in err and "seq/s" in err
    assert err.strip().splitlines()[-1].endswith(f"built {run_dir}: step 30, checkpoint {run_dir}/ckpt-30.pt")
    assert {"mlm_accuracy", "nsp_accuracy", "learning_rate", "sequences_per_s"} <= set(d["train_metrics"])
    assert d["validation_metrics"]["loss"] > 0
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ev = EventAccumulator(str(run_dir / "train"))
    ev.Reload()
    tags = set(ev.Tags()["scalars"])
    # Model Garden's tag names (the two backends overlay in TensorBoard), plus throughput
    assert {"training_loss", "lm_example_loss", "next_sentence_loss", "masked_lm_accuracy",
            "next_sentence_accuracy", "learning_rate", "sequences_per_s", "tokens_per_s", "grad_norm"} <= tags
    assert [e.step for e in ev.Scalars("training_loss")] == [5, 10, 15, 20, 25, 30]
    from scripts.report.data import read_events  # the report's reader takes them as they are

    assert read_events(str(run_dir / "validation"))["validation_loss"][0][0] == 30


def test_interrupted_run_ends_with_the_same_weights(data, tmp_path):
    """20 steps in one run == 10 steps, stop, 10 more (data workers, shuffling, dropout on)."""
    import torch

    spec = torch_spec({"num_workers": 2, "shuffle_records": 40, "deterministic": True}, train_steps=20,
                      global_batch_size=8, checkpoint_interval=5, warmup_steps=2, steps_per_loop=5,
                      summary_interval=5)
    cfg = write_cfg(tmp_path / "cfg.yaml", spec)
    files = [data["stage_file"], *data["tf_files"]]
    train_cli(cfg, tmp_path / "whole", files)
    stopped = train_cli(cfg, tmp_path / "parts", files, "--stop-after", "7")
    assert "stopped after 7 step(s) as asked, at step 7" in stopped.stderr
    rest = train_cli(cfg, tmp_path / "parts", files)
    assert "resuming from" in rest.stderr and "ckpt-7.pt at step 7" in rest.stderr
    a = torch.load(h.read_json(tmp_path / "whole" / "done.json")["checkpoint"], weights_only=True)
    b = torch.load(h.read_json(tmp_path / "parts" / "done.json")["checkpoint"], weights_only=True)
    assert a["data"] == b["data"]
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k
    # a rerun with everything done only rewrites the marker
    again = train_cli(cfg, tmp_path / "parts", files)
    assert "already at train_steps, nothing to train" in again.stderr


def test_stage2_starts_from_stage1_weights_with_a_fresh_nsp_layer(data, stage1, tmp_path):
    import torch

    cfg = write_cfg(tmp_path / "s2.yaml", torch_spec(name="cc-100_wikipedia", train_steps=2, learning_rate=0.0,
                                                     warmup_steps=1, global_batch_size=8, steps_per_loop=1,
                                                     summary_interval=1, checkpoint_interval=1))
    stage_dir = tmp_path / "cc-100_wikipedia"
    proc = train_cli(cfg, stage_dir, data["tf_files"], "--init-done", stage1["stage_dir"] / "done.json")
    init = stage1["done"]["checkpoint"]
    assert f"starting fresh (init from {init})" in proc.stderr
    d = h.read_json(stage_dir / "done.json")
    assert d["init_checkpoint"] == init and d["init_run_key"] == stage1["done"]["run_key"]
    one = torch.load(init, weights_only=True)
    two = torch.load(d["checkpoint"], weights_only=True)
    fresh = {"cls.seq_relationship.weight", "cls.seq_relationship.bias"}
    for k in one["model"].keys() - fresh:
        assert torch.equal(one["model"][k], two["model"][k]), k
    assert not torch.equal(one["model"]["cls.seq_relationship.weight"], two["model"]["cls.seq_relationship.weight"])
    assert two["scheduler"]["last_epoch"] == 2  # a fresh schedule: 2 updates of this stage
    assert len(two["optimizer"]["state"]) > 0


def test_missing_init_and_bad_options_are_errors(data, stage1, tmp_path):
    from scripts.training.torch_train import Options, resolve_init

    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="holds no torch checkpoint"):
        resolve_init(None, str(empty))
    with pytest.raises(InputError, match="unknown option"):
        Options.from_dict({"precison": "bf16"})
    with pytest.raises(InputError, match="precision 'fp16'"):
        Options.from_dict({"precision": "fp16"})
    proc = train_cli(stage1["cfg"], tmp_path / "gpu", [data["stage_file"]], "--num-gpus", "1", check=False)
    assert proc.returncode == 3 and "torch sees no CUDA device" in proc.stderr


def test_ddp_on_two_cpu_ranks_equals_one_process_with_accumulation(data, tmp_path):
    """torchrun, 2 gloo ranks x micro-batch 4 == 1 process x 2 micro-batches of 4 (same data split)."""
    import torch

    spec = torch_spec({"micro_batch_size": 4}, train_steps=3, global_batch_size=8, checkpoint_interval=3,
                      steps_per_loop=1, summary_interval=1, warmup_steps=1)
    arch = {**h.TINY_ARCH, "dropout_rate": 0.0, "attention_dropout_rate": 0.0}
    spec["architecture"] = arch
    cfg = write_cfg(tmp_path / "ddp.yaml", spec, cls_dropout=0.0)
    files = data["tf_files"]
    torchrun = str(Path(sys.executable).with_name("torchrun"))
    cmd = [torchrun, "--standalone", "--nproc-per-node", "2", "-m", "scripts.training.torch_train",
           "--config", str(cfg), "--stage-dir", str(tmp_path / "ddp"), "--done", str(tmp_path / "ddp" / "done.json"),
           "--threads", "1", "--train-file", *files]
    proc = subprocess.run(cmd, cwd=h.ROOT, env={**h.env(), "OMP_NUM_THREADS": "1"}, text=True, capture_output=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    d = h.read_json(tmp_path / "ddp" / "done.json")
    assert d["world_size"] == 2 and d["gradient_accumulation"] == 1
    # One process, two consumers per step? No: one rank has one consumer. Emulate the 2-rank split:
    # rank r's consumer is r of 2; a single process reads both streams and accumulates.
    from scripts.training.torch_data import ConsumerStream, Layout, to_batch
    from scripts.training.torch_train import Dist, Trainer, read_stage, stage_options, to_device

    tr = Trainer(stage=read_stage(str(cfg)), files=files, model_dir=str(tmp_path), options=stage_options(str(cfg)),
                 dist=Dist())
    tr.build()
    layout = Layout(64, 10)
    streams = [ConsumerStream(files, layout, k, 2, seed=0, shuffle_records=64).batches(4) for k in (0, 1)]
    for t in range(3):
        mbs = [to_device(to_batch(*next(s)[:2], layout), "cpu", True, 8) for s in streams]
        tr.step(mbs, t)
    ddp = torch.load(d["checkpoint"], weights_only=True)["model"]
    for k, v in tr.model.state_dict().items():
        torch.testing.assert_close(ddp[k], v, rtol=1e-5, atol=1e-6, msg=k)


def test_converted_model_loads_in_transformers_and_fills_masks(data, stage1, tmp_path):
    from transformers import AutoModelForMaskedLM, AutoTokenizer, BertForPreTraining, pipeline

    out = tmp_path / "hf"
    card = {"license": "apache-2.0", "description": "Tiny torch test BERT.", "backend": "torch"}
    h.run_module("scripts.hf_model.convert", "--config", stage1["cfg"], "--vocab-file", data["vocab"],
                 "--subword-tokenizer", "wordpiece", "--mecab-dic", "unidic_lite", "--model-name", "bert-tiny-torch",
                 "--card-json", json.dumps(card), "--done", stage1["stage_dir"] / "done.json", "--output-dir", out)
    cfg = h.read_json(out / "config.json")
    assert cfg["hidden_act"] == "gelu_new" and cfg["layer_norm_eps"] == 1e-12 and cfg["vocab_size"] == VOCAB
    prov = h.read_json(out / "provenance.json")
    assert prov["training"]["backend"] == "torch"
    assert not (out / "README.md").exists()  # the model card is the release stage's (tests/test_release.py)
    import torch

    ck = torch.load(stage1["done"]["checkpoint"], weights_only=True)
    hf = BertForPreTraining.from_pretrained(out)
    for k, v in hf.state_dict().items():
        assert torch.equal(v, ck["model"][k]), k
    tok = AutoTokenizer.from_pretrained(out)
    fill = pipeline("fill-mask", model=AutoModelForMaskedLM.from_pretrained(out), tokenizer=tok, top_k=3)
    preds = fill("東京は日本の[MASK]です。")
    assert len(preds) == 3 and all(0 <= p["score"] <= 1 for p in preds)


def test_bench_train_tiny_runs_every_configuration(tmp_path):
    proc = subprocess.run([sys.executable, str(h.ROOT / "benchmarks" / "bench_train.py"), "--tiny", "--steps", "2",
                           "--json", str(tmp_path / "bench.json")], cwd=h.ROOT, env=h.env(), text=True,
                          capture_output=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-4000:]
    rows = json.loads((tmp_path / "bench.json").read_text())["rows"]
    names = {r["config"] for r in rows}
    assert {"torch_train s128", "torch_train s512", "hf_trainer s128", "reader s128"} <= names, names
    assert all(r.get("error") is None for r in rows), rows
    assert "sequences/s" in proc.stdout and "MFU" in proc.stdout


# ---------------------------------------------------------------------------------------------
# The workflow: a recipe model switched to the torch backend
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("nodes", [1, 2])
def test_recipe_model_on_the_torch_backend_plans_torchrun_with_gpus(tmp_path, nodes):
    from conftest import copy_workflow, snakemake, with_placeholder_dumps
    from test_profiles import jobs

    wd = with_placeholder_dumps(copy_workflow(tmp_path / "wf"))
    (wd / "torch.yaml").write_text(yaml.safe_dump({
        "models": {"bert-base-japanese-v3": {"backend": "torch"}},
        "training": {"num_gpus": 8, "num_nodes": nodes}}))
    out = snakemake(wd, "--workflow-profile", "profiles/slurm", "--configfile", "torch.yaml", "-n",
                    "hf_model/bert-base-japanese-v3").stdout
    by_rule: dict[str, list[dict]] = {}
    for j in jobs(out):
        by_rule.setdefault(j["rule"], []).append(j)
    assert "train" not in by_rule and len(by_rule["train_torch"]) == 2, sorted(by_rule)
    assert len(by_rule["pretraining_data"]) == 64 + 8 and len(by_rule["hf_model"]) == 1
    for j in by_rule["train_torch"]:
        r = j["resources"]
        assert r["gpu"] == "8" and r["slurm_partition"] == "SITE_GPU_PARTITION" and r["nodes"] == str(nodes), r
        if nodes == 1:
            assert j["shell"].startswith("torchrun --standalone --nnodes 1 --nproc-per-node 8 -m "
                                         "scripts.training.torch_train"), j["shell"]
        else:
            assert j["shell"].startswith("srun --nodes 2 --ntasks-per-node 1 torchrun --nnodes 2 --nproc-per-node 8"
                                         " --rdzv-backend c10d"), j["shell"]
        assert "--num-gpus 8" in j["shell"] and "/training-torch/" in j["shell"]
    s1, s2 = sorted(by_rule["train_torch"], key=lambda j: "--init-done model" in j["shell"])
    assert "--init-done model/wordpiece_unidic_lite/bert_base/training-torch/cc-100/done.json" in s2["shell"]
    assert "pretraining_data/wordpiece_unidic_lite/cc-100/pretraining_data_64.tfrecord.gz" in s1["shell"]
    spec = " ".join(j["shell"] for j in by_rule["training_config_torch"])
    assert '"torch": {' in spec and '"precision": "auto"' in spec and '"global_batch_size": 2048' in spec


def test_models_may_share_tokenizer_and_architecture_across_backends_only():
    import copy

    from scripts.shared import registry

    cfg = yaml.safe_load((h.ROOT / "config.yaml").read_text(encoding="utf-8"))
    assert registry.backend(cfg, "bert-tiny-japanese-sample") == "model_garden"
    assert registry.backend(cfg, "bert-tiny-japanese-sample-torch") == "torch"
    assert "bert-tiny-japanese-sample-torch" in cfg["default_models"]
    registry.check(cfg)  # the demo and its torch twin: same tokenizer and architecture
    assert registry.model_for(cfg, "sample_wordpiece_unidic_lite", "bert_tiny", "torch")[0] == \
        "bert-tiny-japanese-sample-torch"
    bad = copy.deepcopy(cfg)
    bad["models"]["bert-tiny-japanese-sample-torch"]["backend"] = "model_garden"
    with pytest.raises(registry.ConfigError, match="training-torch|training/ would collide"):
        registry.check(bad)
    default = copy.deepcopy(cfg)
    default["training"]["backend"] = "torch"  # the global default: every model without its own
    assert registry.backend(default, "bert-base-japanese-v3") == "torch"


def test_sigterm_checkpoints_and_sigkill_resumes_from_the_latest(data, tmp_path):
    """SIGTERM (a preemption): the step ends, a checkpoint is written, exit 143. SIGKILL: every
    ckpt-N.pt left is complete (atomic writes), and a rerun resumes from the newest."""
    import signal
    import time

    import torch

    cfg = write_cfg(tmp_path / "long.yaml", torch_spec(train_steps=100000, global_batch_size=8, checkpoint_interval=3,
                                                       steps_per_loop=1, summary_interval=1))
    stage_dir = tmp_path / "stage"
    cmd = [sys.executable, "-m", "scripts.training.torch_train", "--config", str(cfg), "--stage-dir", str(stage_dir),
           "--threads", "1", "--train-file", data["stage_file"], "--done", str(stage_dir / "done.json")]

    def start_and_wait_for(n_ckpts: int):
        proc = subprocess.Popen(cmd, cwd=h.ROOT, env=h.env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                text=True)
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(stage_dir.glob("run-*/ckpt-*.pt"))) >= n_ckpts:
                return proc
            time.sleep(0.05)
        proc.kill()
        raise AssertionError(f"no checkpoint appeared: {proc.communicate()[1][-3000:]}")

    proc = start_and_wait_for(1)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err[-3000:]
    m = re.search(r"stopped by signal 15 at step (\d+): (\S+\.pt)", err)
    assert m and Path(m.group(2)).exists(), err[-3000:]
    proc = start_and_wait_for(2)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert not (stage_dir / "done.json").exists()
    ckpts = sorted(stage_dir.glob("run-*/ckpt-*.pt"), key=lambda p: int(p.name[5:-3]))
    for p in ckpts:
        assert torch.load(p, weights_only=True)["step"] == int(p.name[5:-3])
    rest = train_cli(cfg, stage_dir, [data["stage_file"]], "--stop-after", "1")
    newest = int(ckpts[-1].name[5:-3])
    assert f"ckpt-{newest}.pt at step {newest}" in rest.stderr and f"at step {newest + 1}" in rest.stderr


@pytest.mark.e2e
def test_demo_twin_is_trained_by_the_torch_backend(demo_run):
    """The default target builds the demo model's torch twin (shares the e2e session's demo run)."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer, BertForPreTraining, pipeline

    out = demo_run / "hf_model" / "bert-tiny-japanese-sample-torch"
    prov = h.read_json(out / "provenance.json")
    assert prov["training"]["backend"] == "torch" and prov["config"]["backend"] == "torch"
    assert "/training-torch/cc-100_wikipedia/run-" in prov["training"]["checkpoint"]
    assert prov["training"]["init_run_key"]  # stage 2 started from stage 1's run
    log = (demo_run / "logs" / "training" / "train_torch" / "sample_wordpiece_unidic_lite" / "bert_tiny"
           / "cc-100_wikipedia.log").read_text()
    assert "built " in log.strip().splitlines()[-1] and "seq/s" in log
    twin = BertForPreTraining.from_pretrained(out).state_dict()
    mg = BertForPreTraining.from_pretrained(demo_run / "hf_model" / "bert-tiny-japanese-sample").state_dict()
    assert twin.keys() == mg.keys() and not torch.equal(twin["bert.pooler.dense.weight"], mg["bert.pooler.dense.weight"])
    tok = AutoTokenizer.from_pretrained(out)
    preds = pipeline("fill-mask", model=AutoModelForMaskedLM.from_pretrained(out), tokenizer=tok)("東京は日本の[MASK]です。")
    assert len(preds) == 5
