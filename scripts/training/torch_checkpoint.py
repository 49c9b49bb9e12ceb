"""Checkpoints of the PyTorch backend: ``<run dir>/ckpt-<step>.pt``, one ``torch.save`` file each.

Contents (``format: bertja-torch-1``; tensors, dicts, lists and numbers only, so that
``torch.load(weights_only=True)`` reads them): ``step``, ``model`` (the ``BertForPreTraining``
state dict), ``optimizer``, ``scheduler``, ``rng`` (every rank's torch and CUDA RNG states),
``data`` (every consumer's stream position and the data layout), ``bert_config``
(``BertConfig.to_dict()``), ``options``. Written atomically (:func:`save_atomic`); the converter
(:mod:`scripts.hf_model.torch_weights`) reads the model and its config from the final one.
"""

from __future__ import annotations

import contextlib
import os
import re

from scripts.shared.common import InputError

CKPT_RE = re.compile(r"^ckpt-(\d+)\.pt$")
CKPT_FORMAT = "bertja-torch-1"


def list_checkpoints(model_dir: str) -> list[tuple[int, str]]:
    if not os.path.isdir(model_dir):
        return []
    out = [(int(m.group(1)), os.path.join(model_dir, n)) for n in os.listdir(model_dir)
           if (m := CKPT_RE.match(n))]
    return sorted(out)


def latest_checkpoint(model_dir: str) -> str | None:
    c = list_checkpoints(model_dir)
    return c[-1][1] if c else None


def resolve_checkpoint(path: str, what: str = "checkpoint") -> str:
    """A directory -> its newest ``ckpt-N.pt``; a file must exist. Never silently empty."""
    if os.path.isdir(path):
        ckpt = latest_checkpoint(path)
        if not ckpt:
            raise InputError(path, f"{what} directory holds no torch checkpoint (ckpt-N.pt)")
        return ckpt
    if not os.path.isfile(path):
        raise InputError(path, f"{what} not found (neither a directory nor a ckpt-N.pt file)")
    return path


def load_checkpoint(path: str) -> dict:
    import torch

    try:
        ck = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file is reported with its path
        raise InputError(path, f"not a readable torch checkpoint: {e}") from None
    if not isinstance(ck, dict) or ck.get("format") != CKPT_FORMAT:
        raise InputError(path, f"not a {CKPT_FORMAT} checkpoint")
    return ck


def save_atomic(obj: dict, path: str) -> None:
    """torch.save to a hidden temporary file, fsync, rename, fsync the directory."""
    import torch

    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    tmp = os.path.join(d, f".{os.path.basename(path)}.tmp-{os.getpid()}")
    try:
        with open(tmp, "wb") as fh:
            torch.save(obj, fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    fd = os.open(d, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def prune(model_dir: str, keep: int) -> None:
    for _, p in list_checkpoints(model_dir)[:-keep]:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(p)
