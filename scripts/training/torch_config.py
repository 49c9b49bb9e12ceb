"""The PyTorch backend's settings: its options (``training.torch`` in config.yaml, written into
the stage YAML's ``torch`` section by :mod:`scripts.training.config`) and the stage facts it reads
from the Model Garden override YAML (plain YAML: no TensorFlow).

Options (``auto``: on for CUDA, off on CPU): ``precision`` (``bf16`` autocast | ``fp32``),
``attention`` (``sdpa`` | ``eager``), ``compile`` (``torch.compile``), ``optimizer`` (``adamw`` |
``lamb``), ``fused_optimizer`` (fused AdamW kernel on CUDA), ``masked_only_head``,
``trim_padding`` / ``pad_multiple`` (cut each micro-batch to its longest sequence, rounded up),
``micro_batch_size`` (0: global batch / world size, no accumulation), ``num_workers`` (data
workers per rank; -1: 4 on CUDA, 0 on CPU), ``shuffle_records`` (block size of the shuffle),
``seed``, ``deterministic`` (``torch.use_deterministic_algorithms``), ``verify_crc``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, fields

import yaml

from scripts.shared.common import InputError


@dataclass
class Options:
    precision: str = "auto"          # auto | bf16 | fp32
    attention: str = "sdpa"          # sdpa | eager
    compile: str = "auto"            # auto | true | false
    optimizer: str = "adamw"         # adamw | lamb
    fused_optimizer: str = "auto"    # auto | true | false
    masked_only_head: bool = True
    trim_padding: bool = True
    pad_multiple: int = 64
    micro_batch_size: int = 0        # 0: global_batch_size / world size
    num_workers: int = -1            # -1: auto (4 on CUDA, 0 on CPU)
    shuffle_records: int = 10000
    seed: int = 0
    deterministic: bool = False
    verify_crc: bool = True

    @classmethod
    def from_dict(cls, d: dict | None) -> "Options":
        d = dict(d or {})
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(d) - known)
        if unknown:
            raise InputError("--options", f"unknown option(s) {', '.join(unknown)} (known: {', '.join(sorted(known))})")
        for k in ("compile", "fused_optimizer"):
            if isinstance(d.get(k), bool):
                d[k] = "true" if d[k] else "false"
        o = cls(**d)
        choices = {"precision": ("auto", "bf16", "fp32"), "attention": ("sdpa", "eager"),
                   "compile": ("auto", "true", "false"), "optimizer": ("adamw", "lamb"),
                   "fused_optimizer": ("auto", "true", "false")}
        for k, allowed in choices.items():
            if getattr(o, k) not in allowed:
                raise InputError("--options", f"{k} {getattr(o, k)!r} is not one of {', '.join(allowed)}")
        return o


@dataclass
class Resolved:
    """The options for this device (no 'auto' left)."""

    bf16: bool
    compile: bool
    fused: bool
    num_workers: int


def resolve(o: Options, cuda: bool) -> Resolved:
    import torch

    bf16 = o.precision == "bf16" or (o.precision == "auto" and cuda and torch.cuda.is_bf16_supported())
    return Resolved(bf16=bf16, compile=o.compile == "true" or (o.compile == "auto" and cuda),
                    fused=cuda and (o.fused_optimizer == "true" or o.fused_optimizer == "auto"),
                    num_workers=o.num_workers if o.num_workers >= 0 else (4 if cuda else 0))


@dataclass
class Stage:
    encoder: dict
    seq_length: int
    max_predictions: int
    global_batch_size: int
    train_steps: int
    learning_rate: float
    end_learning_rate: float
    decay_steps: int
    power: float
    warmup_steps: int
    checkpoint_interval: int
    max_to_keep: int
    steps_per_loop: int
    summary_interval: int
    validation_interval: int
    validation_steps: int
    cls_dropout: float


def read_stage(path: str) -> Stage:
    """The stage YAML written by scripts.training.config (the Model Garden override)."""
    if not os.path.exists(path):
        raise InputError(path, "config not found")
    with open(path, encoding="utf-8") as fh:
        o = yaml.safe_load(fh)
    try:
        task, trainer = o["task"], o["trainer"]
        enc = dict(task["model"]["encoder"]["bert"])
        heads = task["model"]["cls_heads"]
        td = task["train_data"]
        opt = trainer["optimizer_config"]
        poly = opt["learning_rate"]["polynomial"]
        warm = opt["warmup"]["polynomial"]
        return Stage(encoder=enc, seq_length=int(td["seq_length"]), max_predictions=int(td["max_predictions_per_seq"]),
                     global_batch_size=int(td["global_batch_size"]), train_steps=int(trainer["train_steps"]),
                     learning_rate=float(poly["initial_learning_rate"]),
                     end_learning_rate=float(poly["end_learning_rate"]), decay_steps=int(poly["decay_steps"]),
                     power=float(poly["power"]), warmup_steps=int(warm["warmup_steps"]),
                     checkpoint_interval=int(trainer["checkpoint_interval"]), max_to_keep=int(trainer["max_to_keep"]),
                     steps_per_loop=int(trainer["steps_per_loop"]), summary_interval=int(trainer["summary_interval"]),
                     validation_interval=int(trainer["validation_interval"]),
                     validation_steps=int(trainer["validation_steps"]),
                     cls_dropout=float(heads[0]["dropout_rate"]))
    except (KeyError, TypeError, IndexError) as e:
        raise InputError(path, f"not a stage config written by scripts.training.config: missing {e}") from None


def stage_options(config: str, overrides: dict | None = None) -> Options:
    """The ``torch`` section of the stage YAML (training.torch of config.yaml), then ``overrides``."""
    with open(config, encoding="utf-8") as fh:
        o = yaml.safe_load(fh) or {}
    return Options.from_dict({**(o.get("torch") or {}), **(overrides or {})})
