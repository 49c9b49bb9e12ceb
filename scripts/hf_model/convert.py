"""Convert a Model Garden ``bert/pretraining`` checkpoint into a transformers BERT directory.

::

    python -m scripts.hf_model.convert --config model/<tok>/<arch>/training/cc-100_wikipedia.yaml \\
        [--checkpoint DIR_OR_PREFIX]   (default: the checkpoint the --done marker names) \\
        --vocab-file tokenizers/<tok>/vocab.txt --subword-tokenizer wordpiece|character \\
        --mecab-dic unidic_lite --model-name bert-base-japanese-v3 \\
        --card-json '{"license": ..., "description": ..., ...}' --provenance-json '{...}' \\
        --output-dir hf_model/<name>

Steps: the experiment config (``bert/pretraining`` + the stage YAML, as ``scripts.training.model_garden`` builds
it) -> ``MaskedLMTask.build_model()`` (``BertPretrainerV2`` with the MLM head and the
``next_sentence`` classification head) -> ``tf.train.Checkpoint(model=...).read(ckpt)`` with
``assert_existing_objects_matched`` (every model variable must come from the checkpoint) ->
:mod:`scripts.hf_model.bert_mapping` (every variable mapped or explicitly dropped, every transformers key
set, shapes checked) -> ``BertForPreTraining.load_state_dict(strict=True)`` -> ``save_pretrained``.

Output directory (built under a temporary name, renamed at the end):
``model.safetensors``, ``config.json`` (``BertForPreTraining``), ``vocab.txt`` (copied),
``tokenizer_config.json`` (``BertJapaneseTokenizer``, MeCab + wordpiece|character),
``special_tokens_map.json`` and ``provenance.json``. This is the build directory
(``build/hf_model/<name>/``) that evaluation reads; the model card is written after the evaluation
by the release stage (:mod:`scripts.release.assemble`), which makes ``hf_model/<name>/`` from it.

Decisions:

* **PyTorch-backend checkpoints** (``ckpt-N.pt`` of :mod:`scripts.training.torch_train`, detected
  by name) hold a ``BertForPreTraining`` state dict and its config already:
  :mod:`scripts.hf_model.torch_weights` loads them (checked against the stage YAML's encoder) and
  the rest (:func:`write_model_dir`: tokenizer files, provenance) is the same as below.
* ``hidden_act: gelu_new``. Model Garden's ``"gelu"`` (``tf_utils.get_activation('gelu')`` ->
  ``official.modeling.activations.gelu``) is the tanh approximation
  (``tf_keras.activations.gelu(x, approximate=True)``), used by the encoder's intermediate layers
  and by the MLM transform (``mlm_activation``). transformers' ``gelu`` is the exact erf form;
  ``gelu_new`` is the same tanh approximation. ``relu`` maps to ``relu``; other activations are
  rejected.
* ``layer_norm_eps: 1e-12``: the epsilon of every Model Garden BERT layer norm (embeddings,
  transformer blocks, MLM transform).
* The config must describe a model transformers' BERT can express: post-norm, no embedding
  projection, no ``output_range``, MLM output weights tied to the embeddings, exactly one
  ``next_sentence`` head (2 classes, tanh, ``inner_dim == hidden_size``, ``[CLS]`` at 0); anything
  else is an error rather than a silently different model.
* ``tokenizer_config.json`` lists ``model_input_names`` with ``token_type_ids``: transformers 5's
  ``BertJapaneseTokenizer`` otherwise returns only ``input_ids``/``attention_mask``, and sentence
  pairs (NSP, JNLI-style fine-tuning) would lose their segment ids.
* ``vocab.txt`` must have exactly ``vocab_size`` lines and contain the BERT special tokens.
* ``--card-json`` keys: ``license`` (a Hub licence id, :data:`LICENSE_ID`) and ``description``
  (required, checked here); the rest (``architecture``, ``stages``, ``tokenizer``, ``corpora``,
  ``seed``, ...) are the config values that shaped the model. All of it is recorded as
  ``provenance.json``'s ``config``, where the model card reads it.
* ``provenance.json`` is the ``--provenance-json`` object, written as given (sorted keys).
* **Other tokenizers and families** (:mod:`scripts.hf_model.families`): a MeCab + SentencePiece
  BERT gets ``spiece.model`` and a ``BertJapaneseTokenizer`` config with ``spm_file``; a RoBERTa or
  DistilBERT checkpoint of the PyTorch backend is written by :func:`scripts.hf_model.families.convert_family`
  (the tokenizer files are those in ``--vocab-file``'s directory).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil

import numpy as np

from scripts.hf_model.bert_mapping import MappingError, expected_shapes, map_variables
from scripts.shared.common import LOG, InputError, atomic_dir, run_cli, write_json

SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                  "cls_token": "[CLS]", "mask_token": "[MASK]"}
HF_ACTIVATION = {"gelu": "gelu_new", "relu": "relu"}
LAYER_NORM_EPS = 1e-12
# A Hugging Face Hub licence id (apache-2.0, mit, cc-by-sa-4.0, openrail++, other, ...); the same
# pattern as models.<m>.card.license in schemas/config.schema.yaml.
LICENSE_ID = re.compile(r"[a-z0-9][a-z0-9.+-]{0,63}")


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


def check_convertible(params) -> dict:
    """The encoder config as a dict, after checking transformers' BERT can express the model."""
    m = params.task.model
    where = "task.model"
    if m.encoder.type != "bert":
        raise InputError(where, f"encoder type {m.encoder.type!r}: only 'bert' is convertible")
    e = m.encoder.bert
    problems = []
    if e.hidden_activation not in HF_ACTIVATION:
        problems.append(f"encoder.bert.hidden_activation {e.hidden_activation!r} (supported: "
                        f"{', '.join(HF_ACTIVATION)})")
    if m.mlm_activation != e.hidden_activation:
        problems.append(f"mlm_activation {m.mlm_activation!r} differs from hidden_activation "
                        f"{e.hidden_activation!r} (transformers uses hidden_act for both)")
    if e.embedding_size not in (None, e.hidden_size):
        problems.append(f"encoder.bert.embedding_size {e.embedding_size} (factorised embeddings)")
    if e.norm_first:
        problems.append("encoder.bert.norm_first (pre-norm)")
    if e.output_range:
        problems.append(f"encoder.bert.output_range {e.output_range}")
    if m.mlm_output_weights_use_proj:
        problems.append("mlm_output_weights_use_proj (untied MLM output)")
    heads = list(m.cls_heads or [])
    if len(heads) != 1:
        problems.append(f"{len(heads)} cls_heads (need exactly one next_sentence head)")
    else:
        h = heads[0]
        if (h.name, h.num_classes, h.activation, h.cls_token_idx, h.inner_dim) != (
                "next_sentence", 2, "tanh", 0, e.hidden_size):
            problems.append(f"cls_heads[0] {h.as_dict()} (need name next_sentence, 2 classes, tanh, "
                            f"cls_token_idx 0, inner_dim {e.hidden_size})")
    if e.hidden_size % e.num_attention_heads:
        problems.append("hidden_size not divisible by num_attention_heads")
    if problems:
        raise InputError(where, "not convertible to transformers BERT: " + "; ".join(problems))
    return e.as_dict()


def hf_config(enc: dict, *, pad_token_id: int):
    from transformers import BertConfig

    return BertConfig(
        architectures=["BertForPreTraining"],
        vocab_size=enc["vocab_size"],
        hidden_size=enc["hidden_size"],
        num_hidden_layers=enc["num_layers"],
        num_attention_heads=enc["num_attention_heads"],
        intermediate_size=enc["intermediate_size"],
        hidden_act=HF_ACTIVATION[enc["hidden_activation"]],
        hidden_dropout_prob=enc["dropout_rate"],
        attention_probs_dropout_prob=enc["attention_dropout_rate"],
        max_position_embeddings=enc["max_position_embeddings"],
        type_vocab_size=enc["type_vocab_size"],
        initializer_range=enc["initializer_range"],
        layer_norm_eps=LAYER_NORM_EPS,
        pad_token_id=pad_token_id,
        tie_word_embeddings=True,
        tokenizer_class="BertJapaneseTokenizer",
    )


def read_vocab(path: str, vocab_size: int) -> list[str]:
    if not os.path.exists(path):
        raise InputError(path, "vocabulary not found")
    with open(path, encoding="utf-8") as fh:
        toks = [line.rstrip("\n") for line in fh]
    if len(toks) != vocab_size:
        raise InputError(path, f"{len(toks)} tokens, but the model's vocab_size is {vocab_size}")
    missing = [t for t in SPECIAL_TOKENS.values() if t not in toks]
    if missing:
        raise InputError(path, f"special tokens missing: {', '.join(missing)}")
    return toks


# ---------------------------------------------------------------------------------------------
# TF side
# ---------------------------------------------------------------------------------------------


def dummy_inputs(seq_length: int = 8, max_pred: int = 2) -> dict:
    import tensorflow as tf

    z = tf.zeros((1, seq_length), tf.int32)
    return {"input_word_ids": z, "input_mask": tf.ones_like(z), "input_type_ids": z,
            "masked_lm_positions": tf.zeros((1, max_pred), tf.int32)}


def build_pretrainer(params):
    """The task's ``BertPretrainerV2``, built (variables created) in float32."""
    import tf_keras
    from official.core import task_factory

    tf_keras.mixed_precision.set_global_policy("float32")
    task = task_factory.get_task(params.task)
    model = task.build_model()
    model(dummy_inputs(), training=False)
    return model


def load_pretrainer(params, checkpoint: str):
    """Build the pretrainer and restore every one of its variables from ``checkpoint``."""
    import tensorflow as tf

    model = build_pretrainer(params)
    status = tf.train.Checkpoint(model=model).read(checkpoint)
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise InputError(checkpoint, f"checkpoint does not hold this model's weights: {e}") from None
    status.expect_partial()  # optimizer slots, global_step, ... are not needed here
    return model


def tf_variables(model) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for v in model.variables:
        name = v.name[:-2] if v.name.endswith(":0") else v.name
        if name in out:
            raise MappingError(f"two TF variables named {name!r}")
        out[name] = v.numpy().astype(np.float32)
    return out


# ---------------------------------------------------------------------------------------------
# Output files
# ---------------------------------------------------------------------------------------------


def tokenizer_config(*, subword: str, mecab_dic: str, model_max_length: int) -> dict:
    return {
        "tokenizer_class": "BertJapaneseTokenizer",
        "do_lower_case": False,
        "do_word_tokenize": True,
        "do_subword_tokenize": True,
        "word_tokenizer_type": "mecab",
        "subword_tokenizer_type": subword,
        "mecab_kwargs": {"mecab_dic": mecab_dic},
        "model_max_length": model_max_length,
        "model_input_names": ["input_ids", "token_type_ids", "attention_mask"],
        **SPECIAL_TOKENS,
    }


def check_card(card: dict) -> None:
    """``license`` (a Hub licence id) and ``description`` (text) are required."""
    for key in ("license", "description"):
        if key not in card:
            raise InputError("--card-json", f"missing key {key!r}")
        if not isinstance(card[key], str):
            raise InputError("--card-json", f"{key!r} must be a string, not {card[key]!r}")
    if not LICENSE_ID.fullmatch(card["license"]):
        raise InputError("--card-json", f"license {card['license']!r} is not a Hugging Face Hub licence id "
                                        "(lower case letters, digits, '.', '+', '-'; e.g. apache-2.0, mit, other)")


# ---------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------


def convert(*, config: str, checkpoint: str, vocab_file: str, subword: str, mecab_dic: str,
            model_name: str, card: dict, provenance: dict, output_dir: str) -> dict:
    check_card(card)
    from scripts.hf_model.families import checkpoint_family, convert_family
    from scripts.hf_model.torch_weights import is_torch_checkpoint

    if checkpoint_family(checkpoint):  # RoBERTa / DistilBERT (PyTorch backend): scripts.hf_model.families
        return convert_family(config=config, checkpoint=checkpoint, tokenizer_dir=os.path.dirname(vocab_file),
                              subword=subword, mecab_dic=mecab_dic, model_name=model_name, card=card,
                              provenance=provenance, output_dir=output_dir)

    if is_torch_checkpoint(checkpoint):  # the PyTorch backend: a BertForPreTraining already
        from scripts.hf_model.torch_weights import load_torch_model

        hf, enc, ckpt, step = load_torch_model(config, checkpoint)
        vocab = read_vocab(vocab_file, enc["vocab_size"])
        return write_model_dir(hf, enc=enc, vocab=vocab, vocab_file=vocab_file, subword=subword, mecab_dic=mecab_dic,
                               model_name=model_name, card=card, provenance=provenance, output_dir=output_dir,
                               checkpoint=ckpt, step=step, dropped={})
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    import torch
    from transformers import BertForPreTraining

    from scripts.training.experiment import checkpoint_step, load_params, resolve_checkpoint

    params = load_params(config)
    enc = check_convertible(params)
    vocab = read_vocab(vocab_file, enc["vocab_size"])
    ckpt = resolve_checkpoint(checkpoint)
    try:
        step = checkpoint_step(ckpt)
    except InputError:
        step = None
    if step is not None and step != params.trainer.train_steps:
        LOG.warning("%s is at step %d, the config's train_steps is %d", ckpt, step,
                    params.trainer.train_steps)
    LOG.info("restoring %s (step %s)", ckpt, step)
    model = load_pretrainer(params, ckpt)
    tf_vars = tf_variables(model)
    shapes = expected_shapes(vocab_size=enc["vocab_size"], hidden_size=enc["hidden_size"],
                             num_layers=enc["num_layers"], intermediate_size=enc["intermediate_size"],
                             max_position_embeddings=enc["max_position_embeddings"],
                             type_vocab_size=enc["type_vocab_size"])
    state, dropped = map_variables(tf_vars, shapes)
    for name, why in sorted(dropped.items()):
        LOG.info("not converted: %s (%s)", name, why)
    LOG.info("mapped %d TF variables to %d transformers tensors", len(tf_vars) - len(dropped), len(state))

    cfg = hf_config(enc, pad_token_id=vocab.index(SPECIAL_TOKENS["pad_token"]))
    hf = BertForPreTraining(cfg)
    result = hf.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in state.items()}, strict=True)
    if getattr(result, "missing_keys", None) or getattr(result, "unexpected_keys", None):
        raise MappingError(f"load_state_dict: missing {result.missing_keys}, unexpected {result.unexpected_keys}")
    if hf.cls.predictions.decoder.weight.data_ptr() != hf.bert.embeddings.word_embeddings.weight.data_ptr():
        LOG.warning("MLM decoder weight is not tied to the word embeddings in this transformers version")
    hf.eval()
    return write_model_dir(hf, enc=enc, vocab=vocab, vocab_file=vocab_file, subword=subword, mecab_dic=mecab_dic,
                           model_name=model_name, card=card, provenance=provenance, output_dir=output_dir,
                           checkpoint=ckpt, step=step, dropped=dropped)


def write_model_dir(hf, *, enc: dict, vocab: list[str], vocab_file: str, subword: str, mecab_dic: str,
                    model_name: str, card: dict, provenance: dict, output_dir: str, checkpoint: str,
                    step: int | None, dropped: dict) -> dict:
    """The build directory (``build/hf_model/<name>/``) of a loaded ``BertForPreTraining`` (either
    backend), written whole (``model_name`` and ``card`` are recorded in ``provenance``)."""
    ckpt = checkpoint
    n_params = sum(p.numel() for p in hf.parameters())

    with atomic_dir(output_dir) as tmp:
        hf.save_pretrained(str(tmp))
        shutil.copyfile(vocab_file, tmp / "vocab.txt")
        write_json(tmp / "tokenizer_config.json",
                   tokenizer_config(subword=subword, mecab_dic=mecab_dic,
                                    model_max_length=enc["max_position_embeddings"]))
        write_json(tmp / "special_tokens_map.json", SPECIAL_TOKENS)
        if subword == "sentencepiece":  # MeCab + SentencePiece: spiece.model and its config (families.py)
            from scripts.hf_model.families import tokenizer_kind, write_tokenizer_files

            write_tokenizer_files(tmp, kind=tokenizer_kind(subword, mecab_dic), tokenizer_dir=os.path.dirname(vocab_file),
                                  mecab_dic=mecab_dic, model_max_length=enc["max_position_embeddings"])
        write_json(tmp / "provenance.json", provenance)
        mask = os.umask(0)
        os.umask(mask)
        for p in tmp.iterdir():  # some writers create 0600 files; make them like any other output
            p.chmod(0o666 & ~mask)
        files = sorted(p.name for p in tmp.iterdir())
    LOG.info("wrote %s: %s", output_dir, ", ".join(files))
    LOG.info("built %s: %d parameters", output_dir, n_params)
    return {"output_dir": output_dir, "parameters": n_params, "checkpoint": ckpt, "step": step,
            "dropped": sorted(dropped)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="the final stage's override YAML")
    ap.add_argument("--checkpoint", help="model dir (-> latest checkpoint) or a prefix "
                                         "(default: the checkpoint that --done names)")
    ap.add_argument("--vocab-file", required=True)
    ap.add_argument("--subword-tokenizer", required=True, choices=["wordpiece", "character", "sentencepiece"])
    ap.add_argument("--mecab-dic", default="unidic_lite", choices=["unidic_lite", "unidic", "ipadic", "none"],
                    help="none: plain SentencePiece (no MeCab)")
    ap.add_argument("--model-name", required=True)
    ap.add_argument("--card-json", required=True, help="model card facts (JSON object)")
    ap.add_argument("--provenance-json", default="{}", help="extra provenance (JSON object)")
    ap.add_argument("--raw-digests", nargs="*", default=[],
                    help="raw.sha256.json files of the corpora the model was built from (provenance)")
    ap.add_argument("--done", help="the final stage's done.json (provenance)")
    ap.add_argument("--output-dir", required=True)
    a = ap.parse_args(argv)
    try:
        card = json.loads(a.card_json)
        provenance = json.loads(a.provenance_json)
    except json.JSONDecodeError as e:
        raise InputError("--card-json/--provenance-json", f"invalid JSON: {e}") from None
    if not isinstance(card, dict) or not isinstance(provenance, dict):
        raise InputError("--card-json/--provenance-json", "must be JSON objects")
    if a.raw_digests or a.done:
        from scripts.hf_model.provenance import build

        provenance = {**build(a.raw_digests, card, a.done), **provenance}
    checkpoint = a.checkpoint
    if not checkpoint:
        if not a.done:
            ap.error("--checkpoint or --done is required")
        from scripts.shared.formats import read_done

        checkpoint = read_done(a.done)["checkpoint"]  # the run that trained it, not a guessed path
    convert(config=a.config, checkpoint=checkpoint, vocab_file=a.vocab_file, subword=a.subword_tokenizer,
            mecab_dic=a.mecab_dic, model_name=a.model_name, card=card, provenance=provenance,
            output_dir=a.output_dir)
    return 0


if __name__ == "__main__":
    run_cli(main)
