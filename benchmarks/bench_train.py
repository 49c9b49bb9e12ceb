"""Training throughput of the PyTorch backend on one device, against a plain transformers Trainer.

::

    python benchmarks/bench_train.py                 # BERT-base on GPU 0: every configuration, one table
    python benchmarks/bench_train.py --steps 100 --json bench_train.json
    python benchmarks/bench_train.py --tiny --steps 2    # CPU smoke test (a tiny BERT)

Every configuration runs ``--warmup`` steps (compilation, cuDNN autotuning, allocator growth),
then ``--steps`` timed steps between two ``torch.cuda.synchronize()``:

* ``torch_train s128`` / ``s512``: :class:`scripts.training.torch_train.Trainer` with every
  switch on as config.yaml has it for GPUs (bf16 autocast, SDPA attention, ``torch.compile``,
  fused AdamW, MLM head at the masked positions only, padding trimmed), fed by its own DataLoader
  over gzip TFRecords (:mod:`scripts.training.torch_data`, ``--workers`` workers). Shapes per
  GPU of the recipe on 8 GPUs: stage 1 (CC-100) seq 128, 19 predictions, batch 2048 / 8 = 256;
  stage 2 (Wikipedia) seq 512, 76 predictions, batch 512 / 8 = 64.
* ablations at s128, each with one switch off: ``no compile``, ``full MLM head``, ``eager
  attention``, ``fp32``; and ``lamb`` (the LAMB optimiser instead of fused AdamW).
* ``hf_trainer s128`` / ``s512``: ``transformers.Trainer`` on ``BertForPreTraining`` with
  ``bf16=True``, the same batch and data (MLM labels at the masked positions, -100 elsewhere):
  the MLM head runs on every position, no compilation, the default AdamW.
* ``reader s128`` / ``s512``: records/s that one data worker decodes (decompression, CRCs,
  parsing; :class:`scripts.training.torch_data.RecordReader`), no model.

Reported per row: sequences/s, tokens/s (non-padding), peak device memory
(``torch.cuda.max_memory_allocated``; on CPU the process's peak RSS), and MFU: model FLOPs per
step (:func:`scripts.training.torch_model.flops_per_sequence`: matmuls of the encoder, attention,
the MLM head at the positions the configuration computes, pooler and NSP; backward = 2x forward)
divided by the step time and by the device's dense bf16 peak
(:data:`scripts.training.torch_model.PEAK_BF16_TFLOPS`, keyed by the device name; e.g. H100 SXM /
H200 989 TFLOP/s, A100 312). fp32 rows use the same bf16 peak (so they show what is lost).

The data are made here (random valid BERT instances, 90 % filling the sequence, as
``short_seq_prob: 0.1`` gives; written with the data stage's encoder): no TensorFlow, MeCab or
corpus is needed on the GPU machine.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.pretraining_data.encoder import ExampleEncoder  # noqa: E402
from scripts.shared.formats import record_features  # noqa: E402
from scripts.shared.tfrecord import GzipPieceWriter, deflate_piece  # noqa: E402

BERT_BASE = {"hidden_size": 768, "num_layers": 12, "num_attention_heads": 12, "intermediate_size": 3072,
             "max_position_embeddings": 512, "type_vocab_size": 2, "hidden_activation": "gelu",
             "dropout_rate": 0.1, "attention_dropout_rate": 0.1, "initializer_range": 0.02, "vocab_size": 32768}
TINY = {**BERT_BASE, "hidden_size": 64, "num_layers": 2, "num_attention_heads": 2, "intermediate_size": 256,
        "vocab_size": 1000}
SHAPES = {"s128": (128, 19, 256), "s512": (512, 76, 64)}  # seq, predictions, per-GPU batch
TINY_BATCH = {"s128": 4, "s512": 2}


# ---------------------------------------------------------------------------------------------
# Data
# ---------------------------------------------------------------------------------------------


def synthetic_arrays(n: int, seq: int, pred: int, vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    lengths = np.where(rng.random(n) < 0.9, seq, rng.integers(16, seq, n))
    ids = rng.integers(15, vocab, (n, seq))
    pos = np.arange(seq)
    mask = (pos[None, :] < lengths[:, None]).astype(np.int64)
    len_a = np.maximum(1, (lengths - 3) // 2)
    types = ((pos[None, :] > len_a[:, None]) & (mask == 1)).astype(np.int64)
    ids[:, 0] = 2
    ids[np.arange(n), len_a + 1] = 3
    ids[np.arange(n), lengths - 1] = 3
    ids = ids * mask
    n_pred = np.minimum(pred, np.maximum(1, (lengths * 0.15).astype(int)))
    positions = np.zeros((n, pred), np.int64)
    mlm_ids = np.zeros((n, pred), np.int64)
    weights = np.zeros((n, pred), np.float32)
    for i in range(n):
        cand = np.setdiff1d(np.arange(1, lengths[i] - 1), [len_a[i] + 1])
        p = np.sort(rng.choice(cand, n_pred[i], replace=False))
        positions[i, :len(p)] = p
        mlm_ids[i, :len(p)] = ids[i, p]
        weights[i, :len(p)] = 1.0
        ids[i, p] = 4
    return {"input_word_ids": ids, "input_mask": mask, "input_type_ids": types, "masked_lm_positions": positions,
            "masked_lm_ids": mlm_ids, "masked_lm_weights": weights,
            "next_sentence_labels": rng.integers(0, 2, (n, 1))}


def write_records(path: Path, n: int, seq: int, pred: int, vocab: int) -> Path:
    enc = ExampleEncoder(record_features(seq, pred, vocab))
    with open(path, "wb") as fh:
        gz = GzipPieceWriter(fh)
        for start in range(0, n, 4096):
            arrays = synthetic_arrays(min(4096, n - start), seq, pred, vocab, seed=start)
            data, _ = enc.encode(arrays)
            gz.write_piece(deflate_piece(bytes(data), 1))
        gz.close()
    return path


# ---------------------------------------------------------------------------------------------
# Measurements
# ---------------------------------------------------------------------------------------------


def _device():
    import torch

    return "cuda:0" if torch.cuda.is_available() else "cpu"


def _sync():
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def _reset_memory():
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _peak_gb() -> float:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**30
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def _peak_tflops() -> tuple[str, float | None]:
    import torch

    from scripts.training.torch_model import peak_tflops

    if not torch.cuda.is_available():
        return "cpu", None
    name = torch.cuda.get_device_name(0)
    return name, peak_tflops(name)


def bench_torch_train(*, arch: dict, seq: int, pred: int, batch: int, files: list[str], steps: int, warmup: int,
                      workers: int, options: dict) -> dict:
    import torch

    from scripts.training.torch_config import Options, Stage
    from scripts.training.torch_train import Dist, Trainer, to_device

    dev = _device()
    stage = Stage(encoder=dict(arch), seq_length=seq, max_predictions=pred, global_batch_size=batch,
                  train_steps=10**6, learning_rate=1e-4, end_learning_rate=0.0, decay_steps=10**6, power=1.0,
                  warmup_steps=10000, checkpoint_interval=10**6, max_to_keep=1, steps_per_loop=10**6,
                  summary_interval=10**6, validation_interval=10**6, validation_steps=0, cls_dropout=0.1)
    opts = Options(**{"num_workers": workers, "shuffle_records": 1000, **options})
    tr = Trainer(stage=stage, files=files, model_dir=tempfile.mkdtemp(), options=opts, dist=Dist(device=dev))
    _reset_memory()
    tr.build()
    it = iter(tr.loader(None, 0))
    multiple = opts.pad_multiple if dev.startswith("cuda") else 8
    flops = tokens = 0.0
    t0 = None
    for t in range(warmup + steps):
        if t == warmup:
            _sync()
            t0 = time.perf_counter()
            flops = tokens = 0.0
        b = to_device(next(it), dev, opts.trim_padding, multiple)
        _, tok, fl, _, _ = tr.step([b], t)
        flops += fl
        tokens += tok
    _sync()
    dt = time.perf_counter() - t0
    out = {"sequences_per_s": steps * batch / dt, "tokens_per_s": tokens / dt, "flops_per_s": flops / dt,
           "peak_mem_gb": _peak_gb(), "step_ms": 1000 * dt / steps}
    del it, tr
    torch._dynamo.reset()
    return out


class _Timer:
    def __init__(self, warmup: int, steps: int):
        self.warmup, self.steps, self.t0, self.dt = warmup, steps, None, None

    def callback(self):
        from transformers import TrainerCallback

        timer = self

        class CB(TrainerCallback):
            def on_step_begin(self, args, state, control, **kw):
                if state.global_step == timer.warmup:
                    _sync()
                    timer.t0 = time.perf_counter()

            def on_step_end(self, args, state, control, **kw):
                if state.global_step == timer.warmup + timer.steps:
                    _sync()
                    timer.dt = time.perf_counter() - timer.t0

        return CB()


def bench_hf_trainer(*, arch: dict, seq: int, pred: int, batch: int, files: list[str], steps: int, warmup: int,
                     workers: int) -> dict:
    import torch
    from transformers import BertForPreTraining, Trainer, TrainingArguments

    from scripts.training.torch_data import Layout, read_file
    from scripts.training.torch_model import bert_config, flops_per_sequence

    layout = Layout(seq, pred)
    ints, floats = read_file(files[0], layout)
    f = layout.split(ints)
    labels = np.full((len(ints), seq), -100, np.int64)
    for i in range(len(ints)):
        w = floats[i] > 0
        labels[i, f["masked_lm_positions"][i][w]] = f["masked_lm_ids"][i][w]

    class DS(torch.utils.data.Dataset):
        def __len__(self):
            return len(ints)

        def __getitem__(self, i):
            return {"input_ids": torch.as_tensor(f["input_word_ids"][i], dtype=torch.long),
                    "attention_mask": torch.as_tensor(f["input_mask"][i], dtype=torch.long),
                    "token_type_ids": torch.as_tensor(f["input_type_ids"][i], dtype=torch.long),
                    "labels": torch.as_tensor(labels[i]),
                    "next_sentence_label": torch.as_tensor(int(f["next_sentence_labels"][i]))}

    cuda = torch.cuda.is_available()
    _reset_memory()
    model = BertForPreTraining(bert_config(arch, attn_implementation="sdpa"))
    timer = _Timer(warmup, steps)
    out_dir = tempfile.mkdtemp()
    args = TrainingArguments(output_dir=out_dir, per_device_train_batch_size=batch, max_steps=warmup + steps,
                             bf16=cuda, use_cpu=not cuda, learning_rate=1e-4, weight_decay=0.01, warmup_steps=10,
                             report_to=[], save_strategy="no", logging_strategy="no", disable_tqdm=True,
                             dataloader_num_workers=workers, seed=0)
    Trainer(model=model, args=args, train_dataset=DS(), callbacks=[timer.callback()]).train()
    dt = timer.dt
    mean_tokens = float(f["input_mask"].sum(1).mean())
    fl = flops_per_sequence(arch, seq, pred, masked_only_head=False)
    out = {"sequences_per_s": steps * batch / dt, "tokens_per_s": steps * batch * mean_tokens / dt,
           "flops_per_s": steps * batch * fl / dt, "peak_mem_gb": _peak_gb(), "step_ms": 1000 * dt / steps}
    del model
    return out


def bench_reader(*, seq: int, pred: int, files: list[str], **_) -> dict:
    from scripts.training.torch_data import Layout, RecordReader

    layout = Layout(seq, pred)
    for _ in RecordReader(files[0], layout).chunks():  # compile / warm the page cache
        break
    t0 = time.perf_counter()
    n = sum(len(i) for i, _ in RecordReader(files[0], layout).chunks())
    dt = time.perf_counter() - t0
    size = os.path.getsize(files[0])
    return {"records_per_s": n / dt, "compressed_mb_per_s": size / dt / 1e6, "records": n}


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def configurations() -> list[dict]:
    return [
        {"config": "torch_train s128", "kind": "torch", "shape": "s128", "options": {}},
        {"config": "torch_train s512", "kind": "torch", "shape": "s512", "options": {}},
        {"config": "torch_train s128 no compile", "kind": "torch", "shape": "s128", "options": {"compile": "false"}},
        {"config": "torch_train s128 full MLM head", "kind": "torch", "shape": "s128",
         "options": {"masked_only_head": False}},
        {"config": "torch_train s128 eager attention", "kind": "torch", "shape": "s128",
         "options": {"attention": "eager"}},
        {"config": "torch_train s128 fp32", "kind": "torch", "shape": "s128", "options": {"precision": "fp32"}},
        {"config": "torch_train s128 lamb", "kind": "torch", "shape": "s128", "options": {"optimizer": "lamb"}},
        {"config": "hf_trainer s128", "kind": "hf", "shape": "s128"},
        {"config": "hf_trainer s512", "kind": "hf", "shape": "s512"},
        {"config": "reader s128", "kind": "reader", "shape": "s128"},
        {"config": "reader s512", "kind": "reader", "shape": "s512"},
    ]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tiny", action="store_true", help="a tiny BERT and small batches (CPU smoke test)")
    ap.add_argument("--steps", type=int, default=50, help="timed steps per configuration")
    ap.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 10; --tiny: 1)")
    ap.add_argument("--workers", type=int, default=None, help="data workers (default 4; --tiny: 0)")
    ap.add_argument("--only", action="append", default=[], help="run only configurations containing this text")
    ap.add_argument("--json", help="also write the rows as JSON here")
    a = ap.parse_args(argv)
    warmup = a.warmup if a.warmup is not None else (1 if a.tiny else 10)
    workers = a.workers if a.workers is not None else (0 if a.tiny else 4)
    arch = TINY if a.tiny else BERT_BASE
    import torch

    device, peak = _peak_tflops()
    if a.tiny:
        torch.set_num_threads(min(2, os.cpu_count() or 1))
    work = Path(tempfile.mkdtemp(prefix="bench_train-"))
    files = {}
    for shape, (seq, pred, batch) in SHAPES.items():
        b = TINY_BATCH[shape] if a.tiny else batch
        n = max(2048, b * (warmup + a.steps) + 64)
        files[shape] = [str(write_records(work / f"data_{shape}.tfrecord.gz", n, seq, pred, arch["vocab_size"]))]
    rows = []
    for c in configurations():
        if a.only and not any(o in c["config"] for o in a.only):
            continue
        seq, pred, batch = SHAPES[c["shape"]]
        batch = TINY_BATCH[c["shape"]] if a.tiny else batch
        row = {"config": c["config"], "seq": seq, "batch": batch, "steps": a.steps, "device": device, "error": None}
        kw = dict(arch=arch, seq=seq, pred=pred, batch=batch, files=files[c["shape"]], steps=a.steps, warmup=warmup,
                  workers=workers)
        t0 = time.perf_counter()
        try:
            if c["kind"] == "torch":
                row.update(bench_torch_train(**kw, options=c["options"]))
            elif c["kind"] == "hf":
                row.update(bench_hf_trainer(**kw))
            else:
                row.update(bench_reader(seq=seq, pred=pred, files=files[c["shape"]]))
        except Exception as e:  # noqa: BLE001 - one failing configuration must not hide the others
            row["error"] = f"{type(e).__name__}: {e}"
        row["wall_s"] = time.perf_counter() - t0
        if peak and "flops_per_s" in row:
            row["mfu"] = row["flops_per_s"] / (peak * 1e12)
        rows.append(row)
        print(f"# {row['config']}: done in {row['wall_s']:.1f} s{' (' + row['error'] + ')' if row['error'] else ''}",
              file=sys.stderr, flush=True)
    print(table(rows, device, peak, arch))
    if a.json:
        Path(a.json).write_text(json.dumps({"device": device, "peak_bf16_tflops": peak, "arch": arch,
                                            "steps": a.steps, "warmup": warmup, "workers": workers, "rows": rows},
                                           indent=2))
    return 1 if any(r["error"] for r in rows) else 0


def table(rows: list[dict], device: str, peak: float | None, arch: dict) -> str:
    head = (f"device: {device} (dense bf16 peak: {f'{peak:.0f} TFLOP/s' if peak else 'n/a'}); model: hidden "
            f"{arch['hidden_size']}, {arch['num_layers']} layers, vocab {arch['vocab_size']}")
    lines = [head, "", "| configuration | seq | batch | sequences/s | tokens/s | records/s/worker | step ms | "
             "peak mem GB | MFU |", "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def f(v, fmt):
        return format(v, fmt) if isinstance(v, (int, float)) else "-"

    for r in rows:
        if r["error"]:
            lines.append(f"| {r['config']} | {r['seq']} | {r['batch']} | error: {r['error'][:80]} |||||")
            continue
        mfu = f"{100 * r['mfu']:.1f}%" if r.get("mfu") is not None else "-"
        lines.append(f"| {r['config']} | {r['seq']} | {r['batch'] if 'records_per_s' not in r else '-'} | "
                     f"{f(r.get('sequences_per_s'), '.1f')} | {f(r.get('tokens_per_s'), '.0f')} | "
                     f"{f(r.get('records_per_s'), '.0f')} | {f(r.get('step_ms'), '.1f')} | "
                     f"{f(r.get('peak_mem_gb'), '.2f')} | {mfu} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
