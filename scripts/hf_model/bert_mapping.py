"""Weight mapping: Model Garden ``BertPretrainerV2`` (bert encoder) -> transformers ``BertForPreTraining``.

Pure numpy (no TensorFlow, no torch), so the rules are unit-testable on their own. Input: the
pretrainer's variables as ``{name: array}`` with TF variable names without ``:0``; output: the
``BertForPreTraining`` state dict as ``{key: array}`` (PyTorch ``Linear`` layout, ``[out, in]``).

Model Garden layout (``official.nlp.modeling``, TF 2.20 / tf-models-official 2.20):

===============================================================  =================================================
TF variable                                                      transformers key
===============================================================  =================================================
``word_embeddings/embeddings`` [V, H]                            ``bert.embeddings.word_embeddings.weight``
                                                                 (and the tied ``cls.predictions.decoder.weight``)
``position_embedding/embeddings`` [P, H]                         ``bert.embeddings.position_embeddings.weight``
``type_embeddings/embeddings`` [T, H]                            ``bert.embeddings.token_type_embeddings.weight``
``embeddings/layer_norm/{gamma,beta}``                           ``bert.embeddings.LayerNorm.{weight,bias}``
``transformer/layer_i/self_attention/{query,key,value}/kernel``  ``...layer.i.attention.self.{q,k,v}.weight``
  EinsumDense [H, heads, head_size] -> reshape [H, H] -> T
``.../{query,key,value}/bias`` [heads, head_size] -> [H]         ``....bias``
``.../self_attention/attention_output/kernel``                   ``...layer.i.attention.output.dense.weight``
  [heads, head_size, H] -> reshape [H, H] -> T
``transformer/layer_i/self_attention_layer_norm``                ``...layer.i.attention.output.LayerNorm``
``transformer/layer_i/intermediate`` [H, I] -> T                 ``...layer.i.intermediate.dense``
``transformer/layer_i/output`` [I, H] -> T                       ``...layer.i.output.dense``
``transformer/layer_i/output_layer_norm``                        ``...layer.i.output.LayerNorm``
``bert/cls/predictions/transform/dense`` -> T                    ``cls.predictions.transform.dense``
``bert/cls/predictions/transform/LayerNorm``                     ``cls.predictions.transform.LayerNorm``
``bert/cls/predictions/output_bias/bias`` [V]                    ``cls.predictions.bias`` (= tied ``decoder.bias``)
``bert/next_sentence/pooler_dense`` (tanh) -> T                  ``bert.pooler.dense``
``bert/next_sentence/logits`` [H, 2] -> T                        ``cls.seq_relationship``
===============================================================  =================================================

Deliberately dropped: the encoder's own ``pooler_transform/{kernel,bias}``. ``BertPretrainerV2``
never uses the encoder's ``pooled_output`` (the next-sentence head pools ``[CLS]`` itself), so
those weights get no gradient and stay at their random initialisation (Model Garden warns
"Gradients do not exist for variables ['pooler_transform/...']"). The next-sentence head's
``pooler_dense`` is the trained pooler and becomes ``bert.pooler.dense``.

Every other variable must match a rule and every ``BertForPreTraining`` key must be produced,
with the expected shape; anything else raises :class:`MappingError`.
"""

from __future__ import annotations

import re

import numpy as np

DROPPED = {
    "pooler_transform/kernel": "encoder pooler, unused by BertPretrainerV2 (never trained)",
    "pooler_transform/bias": "encoder pooler, unused by BertPretrainerV2 (never trained)",
}


class MappingError(ValueError):
    """A TF variable without a rule, a missing transformers key, or a shape mismatch."""


def _t(a):
    return np.ascontiguousarray(a.T)


def _heads_in(a):  # EinsumDense [H, heads, head_size] -> Linear [heads*head_size, H]
    return np.ascontiguousarray(a.reshape(a.shape[0], -1).T)


def _heads_bias(a):  # [heads, head_size] -> [heads*head_size]
    return np.ascontiguousarray(a.reshape(-1))


def _heads_out(a):  # EinsumDense [heads, head_size, H] -> Linear [H, heads*head_size]
    return np.ascontiguousarray(a.reshape(-1, a.shape[-1]).T)


def _copy(a):
    return np.ascontiguousarray(a)


_LAYER = r"transformer/layer_(\d+)/"
_HF_LAYER = "bert.encoder.layer.{0}."
RULES: list[tuple[re.Pattern, str, object]] = [(re.compile(p + r"\Z"), k, f) for p, k, f in [
    (r"word_embeddings/embeddings", "bert.embeddings.word_embeddings.weight", _copy),
    (r"position_embedding/embeddings", "bert.embeddings.position_embeddings.weight", _copy),
    (r"type_embeddings/embeddings", "bert.embeddings.token_type_embeddings.weight", _copy),
    (r"embeddings/layer_norm/gamma", "bert.embeddings.LayerNorm.weight", _copy),
    (r"embeddings/layer_norm/beta", "bert.embeddings.LayerNorm.bias", _copy),
    (_LAYER + r"self_attention/(query|key|value)/kernel", _HF_LAYER + "attention.self.{1}.weight", _heads_in),
    (_LAYER + r"self_attention/(query|key|value)/bias", _HF_LAYER + "attention.self.{1}.bias", _heads_bias),
    (_LAYER + r"self_attention/attention_output/kernel", _HF_LAYER + "attention.output.dense.weight", _heads_out),
    (_LAYER + r"self_attention/attention_output/bias", _HF_LAYER + "attention.output.dense.bias", _copy),
    (_LAYER + r"self_attention_layer_norm/gamma", _HF_LAYER + "attention.output.LayerNorm.weight", _copy),
    (_LAYER + r"self_attention_layer_norm/beta", _HF_LAYER + "attention.output.LayerNorm.bias", _copy),
    (_LAYER + r"intermediate/kernel", _HF_LAYER + "intermediate.dense.weight", _t),
    (_LAYER + r"intermediate/bias", _HF_LAYER + "intermediate.dense.bias", _copy),
    (_LAYER + r"output/kernel", _HF_LAYER + "output.dense.weight", _t),
    (_LAYER + r"output/bias", _HF_LAYER + "output.dense.bias", _copy),
    (_LAYER + r"output_layer_norm/gamma", _HF_LAYER + "output.LayerNorm.weight", _copy),
    (_LAYER + r"output_layer_norm/beta", _HF_LAYER + "output.LayerNorm.bias", _copy),
    (r"bert/cls/predictions/transform/dense/kernel", "cls.predictions.transform.dense.weight", _t),
    (r"bert/cls/predictions/transform/dense/bias", "cls.predictions.transform.dense.bias", _copy),
    (r"bert/cls/predictions/transform/LayerNorm/gamma", "cls.predictions.transform.LayerNorm.weight", _copy),
    (r"bert/cls/predictions/transform/LayerNorm/beta", "cls.predictions.transform.LayerNorm.bias", _copy),
    (r"bert/cls/predictions/output_bias/bias", "cls.predictions.bias", _copy),
    (r"bert/next_sentence/pooler_dense/kernel", "bert.pooler.dense.weight", _t),
    (r"bert/next_sentence/pooler_dense/bias", "bert.pooler.dense.bias", _copy),
    (r"bert/next_sentence/logits/kernel", "cls.seq_relationship.weight", _t),
    (r"bert/next_sentence/logits/bias", "cls.seq_relationship.bias", _copy),
]]
# transformers keys that are copies of another one (tied weights).
TIED = {
    "cls.predictions.decoder.weight": "bert.embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
}


def expected_shapes(*, vocab_size: int, hidden_size: int, num_layers: int, intermediate_size: int,
                    max_position_embeddings: int, type_vocab_size: int) -> dict[str, tuple]:
    """Every ``BertForPreTraining`` state-dict key with its shape."""
    V, H, I = vocab_size, hidden_size, intermediate_size
    s = {
        "bert.embeddings.word_embeddings.weight": (V, H),
        "bert.embeddings.position_embeddings.weight": (max_position_embeddings, H),
        "bert.embeddings.token_type_embeddings.weight": (type_vocab_size, H),
        "bert.embeddings.LayerNorm.weight": (H,),
        "bert.embeddings.LayerNorm.bias": (H,),
        "bert.pooler.dense.weight": (H, H),
        "bert.pooler.dense.bias": (H,),
        "cls.predictions.bias": (V,),
        "cls.predictions.transform.dense.weight": (H, H),
        "cls.predictions.transform.dense.bias": (H,),
        "cls.predictions.transform.LayerNorm.weight": (H,),
        "cls.predictions.transform.LayerNorm.bias": (H,),
        "cls.predictions.decoder.weight": (V, H),
        "cls.predictions.decoder.bias": (V,),
        "cls.seq_relationship.weight": (2, H),
        "cls.seq_relationship.bias": (2,),
    }
    for i in range(num_layers):
        p = f"bert.encoder.layer.{i}."
        for n in ("query", "key", "value"):
            s[p + f"attention.self.{n}.weight"] = (H, H)
            s[p + f"attention.self.{n}.bias"] = (H,)
        s[p + "attention.output.dense.weight"] = (H, H)
        s[p + "attention.output.dense.bias"] = (H,)
        s[p + "attention.output.LayerNorm.weight"] = (H,)
        s[p + "attention.output.LayerNorm.bias"] = (H,)
        s[p + "intermediate.dense.weight"] = (I, H)
        s[p + "intermediate.dense.bias"] = (I,)
        s[p + "output.dense.weight"] = (H, I)
        s[p + "output.dense.bias"] = (H,)
        s[p + "output.LayerNorm.weight"] = (H,)
        s[p + "output.LayerNorm.bias"] = (H,)
    return s


def map_variables(tf_vars: dict[str, np.ndarray], shapes: dict[str, tuple]) -> tuple[dict, dict]:
    """Map every TF variable; return ``(hf_state, dropped)``. Raise on any gap or mismatch.

    ``shapes`` is :func:`expected_shapes` for the model's config.
    """
    hf: dict[str, np.ndarray] = {}
    source: dict[str, str] = {}
    dropped: dict[str, str] = {}
    unmapped: list[str] = []
    for name, value in tf_vars.items():
        if name in DROPPED:
            dropped[name] = DROPPED[name]
            continue
        for pat, key, fn in RULES:
            m = pat.match(name)
            if m:
                k = key.format(*m.groups())
                if k in hf:
                    raise MappingError(f"TF variables {source[k]!r} and {name!r} both map to {k!r}")
                hf[k] = fn(np.asarray(value))
                source[k] = name
                break
        else:
            unmapped.append(name)
    if unmapped:
        raise MappingError(f"{len(unmapped)} TF variable(s) have no transformers counterpart: "
                           f"{', '.join(sorted(unmapped))}")
    for k, src in TIED.items():
        if src in hf:
            hf[k] = hf[src]
    missing = sorted(set(shapes) - set(hf))
    extra = sorted(set(hf) - set(shapes))
    if missing or extra:
        raise MappingError(f"transformers keys not set: {missing}; unexpected keys: {extra}")
    bad = [f"{k}: {tuple(v.shape)} (from {source.get(k, TIED.get(k))}) != {shapes[k]}"
           for k, v in hf.items() if tuple(v.shape) != tuple(shapes[k])]
    if bad:
        raise MappingError("shape mismatch: " + "; ".join(bad))
    return hf, dropped
