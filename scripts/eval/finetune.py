"""Fine-tune a model directory on one JGLUE task's train split and score its dev split.

One call is one grid point (learning rate, epochs, seed). The recipe follows JGLUE's
fine-tuning README and the transformers scripts it patches (facts, not their code): AdamW
(betas 0.9/0.999, eps 1e-8, weight decay ``weight_decay`` on all weights except biases and
LayerNorm), a linear schedule with ``ceil(warmup_ratio * steps)`` warm-up steps, gradient
clipping at 1.0, the final model scored once after the last epoch. The heads come from
transformers' Auto classes (``AutoModelForSequenceClassification`` with ``num_labels=1`` and
MSE for JSTS, ``AutoModelForMultipleChoice``, ``AutoModelForQuestionAnswering``) on top of the
encoder of the ``BertForPreTraining`` weights; loading fails if anything but the new head is
missing from the checkpoint.

Device: CUDA when available (``device: auto``), with bf16 autocast (``precision: auto``; fp32 on
CPU). ``max_seq_length`` is capped at the model's ``max_position_embeddings`` (the cap is
recorded). Everything that shaped the run is returned in its record.
"""

from __future__ import annotations

import hashlib
import math
import random
import time
from importlib import metadata

import numpy as np

from scripts.eval import metrics as M
from scripts.eval import tasks as T
from scripts.eval.features import collate, decode_qa, encode_choice, encode_qa, encode_text
from scripts.shared.common import LOG, peak_rss_mb

DEFAULTS = {"train_batch_size": 32, "eval_batch_size": 64, "warmup_ratio": 0.1, "weight_decay": 0.0,
            "adam_epsilon": 1e-8, "max_grad_norm": 1.0, "max_train_examples": 0, "max_valid_examples": 0,
            "precision": "auto", "device": "auto", "doc_stride": 128, "max_query_length": 64,
            "max_answer_length": 30, "n_best_size": 20}
REQUIRED = ("learning_rate", "epochs", "seed", "max_seq_length")
HEAD_PREFIXES = ("classifier.", "qa_outputs.")
VERSIONS = ("torch", "transformers", "tokenizers", "fugashi", "unidic-lite", "numpy")


def sha256_file(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def versions() -> dict:
    out = {}
    for n in VERSIONS:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def pick_device(device: str, precision: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise RuntimeError(f"device {device!r} requested but torch sees no CUDA device")
    if precision == "auto":
        precision = "bf16" if device.startswith("cuda") and torch.cuda.is_bf16_supported() else "fp32"
    if precision not in ("fp32", "bf16"):
        raise ValueError(f"precision must be auto, fp32 or bf16, not {precision!r}")
    return device, precision


def load_model(task: T.Task, model_dir: str):
    from transformers import (AutoConfig, AutoModelForMultipleChoice, AutoModelForQuestionAnswering,
                              AutoModelForSequenceClassification)
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the load report is checked below instead
    hf_logging.disable_progress_bar()
    cls = {"choice": AutoModelForMultipleChoice, "qa": AutoModelForQuestionAnswering}.get(
        task.kind, AutoModelForSequenceClassification)
    kwargs = {}
    if cls is AutoModelForSequenceClassification:
        kwargs = {"num_labels": task.num_labels,
                  "problem_type": "regression" if task.kind == "regression" else "single_label_classification"}
    config = AutoConfig.from_pretrained(model_dir, **kwargs)
    model, info = cls.from_pretrained(model_dir, config=config, output_loading_info=True)
    missing = sorted(info.get("missing_keys", []))
    not_head = [k for k in missing if not k.startswith(HEAD_PREFIXES)]
    if not_head:
        raise RuntimeError(f"{model_dir}: the checkpoint lacks encoder weights {not_head[:5]} "
                           f"({len(not_head)} in all); only the task head may be new")
    return model, missing


def encode(task: T.Task, tokenizer, examples: list[dict], s: dict, max_len: int, train: bool):
    if task.kind == "qa":
        return encode_qa(tokenizer, examples, max_len=max_len, doc_stride=s["doc_stride"],
                         max_query_length=s["max_query_length"], train=train)
    if task.kind == "choice":
        return encode_choice(tokenizer, examples, max_len), None
    return encode_text(tokenizer, examples, max_len), None


def _labels(task: T.Task, batch: list[dict]):
    import torch

    if task.kind == "qa":
        return {"start_positions": torch.tensor([f["start"] for f in batch]),
                "end_positions": torch.tensor([f["end"] for f in batch])}
    if task.kind == "regression":
        return {"labels": torch.tensor([f["label"] for f in batch], dtype=torch.float32)}
    return {"labels": torch.tensor([f["label"] for f in batch])}


def score(task: T.Task, examples, feats, extra, outputs, s) -> dict:
    if task.kind == "qa":
        starts, ends = outputs
        preds = decode_qa(examples, feats, extra["spans"], starts, ends, n_best_size=s["n_best_size"],
                          max_answer_length=s["max_answer_length"])
        return M.squad_scores([[a["text"] for a in e["answers"]] for e in examples], preds)
    logits = np.concatenate(outputs[0])
    labels = [e["label"] for e in examples]
    if task.kind == "regression":
        p = logits.reshape(-1)
        return {"pearson": M.pearson(p, labels), "spearman": M.spearman(p, labels)}
    p = logits.argmax(-1)
    out = {"accuracy": M.accuracy(p, labels)}
    if "matthews" in task.metrics:
        out["matthews"] = M.matthews(p, labels)
    return out


def run(*, task_name: str, model_dir: str, train_path: str, valid_path: str, settings: dict,
        threads: int = 1) -> dict:
    import torch
    from transformers import AutoTokenizer

    t0 = time.time()
    task = T.get(task_name)
    missing = [k for k in REQUIRED if k not in settings]
    if missing:
        raise ValueError(f"settings lack {missing}")
    s = {**DEFAULTS, **settings}
    torch.set_num_threads(max(1, threads))
    device, precision = pick_device(s["device"], s["precision"])
    random.seed(s["seed"])
    np.random.seed(s["seed"])
    torch.manual_seed(s["seed"])

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model, new_keys = load_model(task, model_dir)
    max_len = min(int(s["max_seq_length"]), int(model.config.max_position_embeddings))
    train_ex = T.load(task, train_path, s["max_train_examples"])
    valid_ex = T.load(task, valid_path, s["max_valid_examples"])
    train_feats, train_extra = encode(task, tokenizer, train_ex, s, max_len, train=True)
    valid_feats, valid_extra = encode(task, tokenizer, valid_ex, s, max_len, train=False)
    if not train_feats:
        raise ValueError(f"{train_path}: no trainable {task.title} examples")
    t_enc = time.time()
    LOG.info("%s: %d train examples (%d features), %d dev examples (%d features), max length %d, %s/%s",
             task.title, len(train_ex), len(train_feats), len(valid_ex), len(valid_feats), max_len, device, precision)

    model.to(device)
    no_decay = ("bias", "LayerNorm.weight", "LayerNorm.bias")
    groups = [{"params": [p for n, p in model.named_parameters() if not n.endswith(no_decay)],
               "weight_decay": s["weight_decay"]},
              {"params": [p for n, p in model.named_parameters() if n.endswith(no_decay)], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(groups, lr=s["learning_rate"], betas=(0.9, 0.999), eps=s["adam_epsilon"])
    bs = int(s["train_batch_size"])
    steps_per_epoch = math.ceil(len(train_feats) / bs)
    total = steps_per_epoch * int(s["epochs"])
    warmup = math.ceil(total * s["warmup_ratio"])

    def lr_lambda(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_lambda)
    autocast = (torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)
                if precision == "bf16" else _null())
    gen = torch.Generator().manual_seed(s["seed"])
    pad = tokenizer.pad_token_id
    epoch_loss = []
    model.train()
    for epoch in range(int(s["epochs"])):
        order = torch.randperm(len(train_feats), generator=gen).tolist()
        losses = []
        for b in range(0, len(order), bs):
            batch = [train_feats[i] for i in order[b:b + bs]]
            inputs = {k: v.to(device) for k, v in collate(batch, pad).items()}
            inputs.update({k: v.to(device) for k, v in _labels(task, batch).items()})
            with autocast:
                loss = model(**inputs).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), s["max_grad_norm"])
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            losses.append(float(loss.detach()))
        epoch_loss.append(float(np.mean(losses)))
        LOG.info("epoch %d/%d: mean train loss %.4f", epoch + 1, s["epochs"], epoch_loss[-1])
    t_train = time.time()

    model.eval()
    outs: list[list] = [[], []]
    ebs = int(s["eval_batch_size"])
    with torch.no_grad():
        for b in range(0, len(valid_feats), ebs):
            batch = valid_feats[b:b + ebs]
            inputs = {k: v.to(device) for k, v in collate(batch, pad).items()}
            with autocast:
                o = model(**inputs)
            if task.kind == "qa":
                outs[0].extend(o.start_logits.float().cpu().numpy())
                outs[1].extend(o.end_logits.float().cpu().numpy())
            else:
                outs[0].append(o.logits.float().cpu().numpy())
    result = score(task, valid_ex, valid_feats, valid_extra, outs, s)
    t_eval = time.time()
    LOG.info("%s dev: %s", task.title, ", ".join(f"{k} {v:.4f}" for k, v in result.items()))

    record = {
        "task": task.name,
        "model_dir": model_dir,
        "settings": s,
        "effective": {"max_seq_length": max_len, "device": device, "precision": precision,
                      "steps": total, "steps_per_epoch": steps_per_epoch, "warmup_steps": warmup,
                      "threads": threads, "new_head_weights": new_keys},
        "data": {"train": {"path": train_path, "sha256": sha256_file(train_path), "examples": len(train_ex),
                           "features": len(train_feats)},
                 "valid": {"path": valid_path, "sha256": sha256_file(valid_path), "examples": len(valid_ex),
                           "features": len(valid_feats)}},
        "metrics": result,
        "train_loss_per_epoch": epoch_loss,
        "seconds": {"encode": round(t_enc - t0, 3), "train": round(t_train - t_enc, 3),
                    "eval": round(t_eval - t_train, 3)},
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "versions": versions(),
    }
    if device.startswith("cuda"):
        record["peak_gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    if task.kind == "qa":
        record["span_recovery"] = {"train": train_extra["stats"], "valid": valid_extra["stats"]}
    return record


class _null:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
