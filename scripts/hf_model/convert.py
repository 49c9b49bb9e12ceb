"""Convert a Model Garden ``bert/pretraining`` checkpoint into a transformers BERT directory.

::

    python -m scripts.hf_model.convert --config model/<tok>/<arch>/training/cc-100_wikipedia.yaml \\
        --checkpoint model/<tok>/<arch>/training/cc-100_wikipedia   (directory -> latest, or a prefix) \\
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
``special_tokens_map.json``, ``README.md`` (model card) and ``provenance.json``.

Decisions:

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
* ``--card-json`` keys: ``license`` and ``description`` (required); optional ``language``,
  ``tags``, ``datasets`` (default: derived from the stages' corpora, ``cc-100`` -> ``cc100``,
  ``wikipedia``), ``architecture`` (a name, or an object with ``name``), ``stages`` (list of
  ``{name, corpus, global_batch_size, train_steps, learning_rate, end_learning_rate,
  warmup_steps, pretraining_data: {max_seq_length, ...}}``); other keys (``tokenizer``,
  ``seed``, ...) are listed under "Build facts".
* ``provenance.json`` is the ``--provenance-json`` object, written as given (sorted keys).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

import numpy as np

from scripts.hf_model.bert_mapping import MappingError, expected_shapes, map_variables
from scripts.shared.common import LOG, InputError, atomic_dir, run_cli, write_json

SPECIAL_TOKENS = {"unk_token": "[UNK]", "sep_token": "[SEP]", "pad_token": "[PAD]",
                  "cls_token": "[CLS]", "mask_token": "[MASK]"}
HF_ACTIVATION = {"gelu": "gelu_new", "relu": "relu"}
LAYER_NORM_EPS = 1e-12
DATASET_IDS = {"cc-100": "cc100", "wikipedia": "wikipedia"}


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


def _yaml_list(items) -> str:
    return "\n".join(f"- {json.dumps(str(i), ensure_ascii=False)}" for i in items)


def model_card(*, name: str, card: dict, enc: dict, subword: str, mecab_dic: str, n_params: int,
               checkpoint: str, step: int | None, vocab_size: int, path: str) -> str:
    stages = card.get("stages") or []
    datasets = card.get("datasets")
    if datasets is None:
        datasets = [DATASET_IDS[c] for c in dict.fromkeys(s.get("corpus", "") for s in stages)
                    if c in DATASET_IDS]
    tags = card.get("tags") or ["bert", "fill-mask", "japanese", "pretraining"]
    front = ["---", f"language: {card.get('language', 'ja')}", f"license: {card['license']}",
             "library_name: transformers", "pipeline_tag: fill-mask", "tags:", _yaml_list(tags)]
    if datasets:
        front += ["datasets:", _yaml_list(datasets)]
    front.append("---")
    act = HF_ACTIVATION[enc["hidden_activation"]]
    arch = card.get("architecture")
    if isinstance(arch, dict):  # {name, hidden_size, ...} as the workflow passes it
        arch = arch.get("name")
    arch = f" ({arch})" if arch else ""
    lines = [
        "\n".join(front), "", f"# {name}", "", card["description"], "",
        "## Model architecture", "",
        f"BERT{arch}: {enc['num_layers']} layers, hidden size "
        f"{enc['hidden_size']}, {enc['num_attention_heads']} attention heads, intermediate size "
        f"{enc['intermediate_size']}, {enc['max_position_embeddings']} position embeddings, "
        f"vocabulary {vocab_size}; {n_params:,} parameters (`BertForPreTraining`, tied MLM "
        f"decoder). Activation `{act}` (the tanh GELU approximation that TensorFlow Model "
        "Garden's `gelu` computes), layer-norm epsilon 1e-12.",
        "",
        "## Tokenization", "",
        f"Text is split into words by MeCab with the `{mecab_dic}` dictionary (via fugashi), then "
        + ("into subwords by WordPiece" if subword == "wordpiece" else "into characters")
        + f" (`BertJapaneseTokenizer`, `subword_tokenizer_type: {subword}`). Vocabulary size: "
          f"{vocab_size}.",
        "",
        "## Training", "",
        "Pretrained with TensorFlow Model Garden's `bert/pretraining` experiment (masked language "
        "modelling + next sentence prediction, AdamW, linear warm-up then linear decay)"
        + (", in stages; each stage starts from the previous stage's weights." if len(stages) > 1 else "."),
        "",
    ]
    if stages:
        lines += ["| stage | corpus | sequence length | batch size | steps | peak learning rate | warm-up steps "
                  "| final learning rate |",
                  "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"]
        for s in stages:
            seq = (s.get("pretraining_data") or {}).get("max_seq_length", "")
            lines.append(f"| {s.get('name', '')} | {s.get('corpus', '')} | {seq} | {s.get('global_batch_size', '')} | "
                         f"{s.get('train_steps', '')} | {s.get('learning_rate', '')} | "
                         f"{s.get('warmup_steps', '')} | {s.get('end_learning_rate', '')} |")
        lines.append("")
    lines += [f"Converted from the checkpoint `{checkpoint}`"
              + (f" (step {step})." if step is not None else "."), ""]
    rest = {k: v for k, v in card.items()
            if k not in ("license", "description", "language", "tags", "datasets", "stages", "architecture")}
    if rest:
        lines += ["## Build facts", ""]
        for k, v in sorted(rest.items()):
            lines.append(f"- {k}: `{json.dumps(v, ensure_ascii=False, sort_keys=True)}`")
        lines.append("")
    lines += [
        "## How to use", "",
        "Tokenization needs `fugashi` and `unidic-lite` (`pip install fugashi unidic-lite`).", "",
        "```python",
        "from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline",
        "",
        f'path = "{path}"  # this directory (or the model\'s Hub id once uploaded)',
        "tokenizer = AutoTokenizer.from_pretrained(path)",
        "model = AutoModelForMaskedLM.from_pretrained(path)",
        'fill_mask = pipeline("fill-mask", model=model, tokenizer=tokenizer)',
        'print(fill_mask("東北大学で[MASK]の研究をしています。"))',
        "```", "",
        "## License", "", f"{card['license']}", "",
    ]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# Conversion
# ---------------------------------------------------------------------------------------------


def convert(*, config: str, checkpoint: str, vocab_file: str, subword: str, mecab_dic: str,
            model_name: str, card: dict, provenance: dict, output_dir: str) -> dict:
    for key in ("license", "description"):
        if key not in card:
            raise InputError("--card-json", f"missing key {key!r}")
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
    n_params = sum(p.numel() for p in hf.parameters())

    with atomic_dir(output_dir) as tmp:
        hf.save_pretrained(str(tmp))
        shutil.copyfile(vocab_file, tmp / "vocab.txt")
        write_json(tmp / "tokenizer_config.json",
                   tokenizer_config(subword=subword, mecab_dic=mecab_dic,
                                    model_max_length=enc["max_position_embeddings"]))
        write_json(tmp / "special_tokens_map.json", SPECIAL_TOKENS)
        (tmp / "README.md").write_text(
            model_card(name=model_name, card=card, enc=enc, subword=subword, mecab_dic=mecab_dic,
                       n_params=n_params, checkpoint=ckpt, step=step, vocab_size=len(vocab),
                       path=str(output_dir)),
            encoding="utf-8")
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
    ap.add_argument("--checkpoint", required=True, help="model dir (-> latest checkpoint) or a prefix")
    ap.add_argument("--vocab-file", required=True)
    ap.add_argument("--subword-tokenizer", required=True, choices=["wordpiece", "character"])
    ap.add_argument("--mecab-dic", default="unidic_lite", choices=["unidic_lite", "unidic", "ipadic"])
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
    convert(config=a.config, checkpoint=a.checkpoint, vocab_file=a.vocab_file, subword=a.subword_tokenizer,
            mecab_dic=a.mecab_dic, model_name=a.model_name, card=card, provenance=provenance,
            output_dir=a.output_dir)
    return 0


if __name__ == "__main__":
    run_cli(main)
