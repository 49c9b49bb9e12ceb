"""The weights of a PyTorch-backend checkpoint as a transformers ``BertForPreTraining``.

The ``torch`` backend (:mod:`scripts.training.torch_train`) trains a ``BertForPreTraining`` and
stores its state dict and ``BertConfig`` in ``ckpt-<step>.pt``
(:mod:`scripts.training.torch_checkpoint`), so no name mapping is needed: the model is rebuilt
from the stored config, loaded strictly, checked against the stage YAML's encoder, and handed
to :func:`scripts.hf_model.convert.write_model_dir` like a converted Model Garden model
(tokenizer files, model card, provenance are the same code path).
"""

from __future__ import annotations

import os

from scripts.shared.common import LOG, InputError
from scripts.training.torch_checkpoint import CKPT_RE, load_checkpoint, resolve_checkpoint
from scripts.training.torch_config import read_stage
from scripts.training.torch_model import HF_ACTIVATION, LAYER_NORM_EPS


def is_torch_checkpoint(path: str) -> bool:
    """A ``ckpt-N.pt`` file, or a directory holding one (and no TF checkpoint state)."""
    if os.path.isfile(path):
        return bool(CKPT_RE.match(os.path.basename(path)))
    if os.path.isdir(path):
        names = os.listdir(path)
        return any(CKPT_RE.match(n) for n in names) and "checkpoint" not in names
    return False


def load_torch_model(config: str, checkpoint: str):
    """``(model, encoder dict, checkpoint path, step)`` for the final stage's ``config``."""
    from transformers import BertConfig, BertForPreTraining

    stage = read_stage(config)
    enc = stage.encoder
    ckpt = resolve_checkpoint(checkpoint)
    ck = load_checkpoint(ckpt)
    cfg = BertConfig.from_dict(ck["bert_config"])
    want = {"vocab_size": enc["vocab_size"], "hidden_size": enc["hidden_size"],
            "num_hidden_layers": enc["num_layers"], "num_attention_heads": enc["num_attention_heads"],
            "intermediate_size": enc["intermediate_size"],
            "max_position_embeddings": enc["max_position_embeddings"],
            "type_vocab_size": enc["type_vocab_size"], "hidden_act": HF_ACTIVATION.get(enc["hidden_activation"]),
            "layer_norm_eps": LAYER_NORM_EPS}
    bad = [f"{k} {getattr(cfg, k)!r} != {v!r}" for k, v in want.items() if getattr(cfg, k) != v]
    if bad:
        raise InputError(ckpt, f"checkpoint's model does not match {config}: " + "; ".join(bad))
    model = BertForPreTraining(cfg)
    result = model.load_state_dict(ck["model"], strict=True)
    if getattr(result, "missing_keys", None) or getattr(result, "unexpected_keys", None):
        raise InputError(ckpt, f"load_state_dict: missing {result.missing_keys}, unexpected {result.unexpected_keys}")
    model.eval()
    step = int(ck["step"])
    if step != stage.train_steps:
        LOG.warning("%s is at step %d, the config's train_steps is %d", ckpt, step, stage.train_steps)
    LOG.info("loaded %s (step %d): BertForPreTraining, no weight mapping needed", ckpt, step)
    return model, enc, ckpt, step
