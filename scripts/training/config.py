"""Write the Model Garden ``bert/pretraining`` override YAML for one training stage.

``python -m scripts.training.config --spec JSON --vocab-file tokenizers/<tok>/vocab.txt
--output model/<tok>/<arch>/training/<stage>.yaml``

``--spec`` is one JSON object (the rule passes it as a single shell-quoted string)::

    {"architecture": {hidden_size, num_layers, num_attention_heads, intermediate_size,
                      max_position_embeddings, type_vocab_size, hidden_activation, dropout_rate,
                      attention_dropout_rate, initializer_range},
     "stage": {name, corpus, global_batch_size, train_steps, learning_rate, end_learning_rate,
               warmup_steps, checkpoint_interval, max_to_keep, steps_per_loop, summary_interval,
               validation_interval, validation_steps},
     "data": {max_seq_length, max_predictions_per_seq},
     "runtime": {distribution_strategy, tpu, mixed_precision_dtype, num_gpus}}

The YAML has the shape of the recipe's two Model Garden config files merged into one (the data
file: ``task.train_data`` / ``task.validation_data``; the model file: ``task.model`` and
``trainer``) plus the ``runtime`` section the recipe passed on the command line
(``runtime.distribution_strategy=tpu``, ``--tpu=local``).

Decisions:

* **The vocab size is the vocab file's line count** (``--vocab-file``, an input of the rule), not
  the tokenizer's configured ``vocab_size``: that is a request the WordPiece trainer may exceed
  (it keeps every alphabet character and every ``##`` continuation character it saw), and a
  model smaller than its vocabulary fails at the first out-of-range token id. A spec that
  carries ``vocab_size`` itself is rejected with ``--vocab-file`` (:func:`build_override` still
  takes it from the spec, for callers that know the size).
* ``trainer.optimizer_config.learning_rate.polynomial.decay_steps`` is the stage's
  ``train_steps`` (the recipe: 1M and 1M); the schedule is linear warm-up then linear decay.
* The optimizer is ``{type: adamw}`` only, as in the recipe: its weight decay (0.01, excluding
  LayerNorm/layer_norm/bias) comes from the ``bert/pretraining`` experiment defaults.
* ``task.{train,validation}_data.file_type: tfrecord_compressed``: the pretraining data are
  GZIP TFRecords (``pretraining_data_*.tfrecord.gz``), and Model Garden's
  ``BertPretrainDataConfig.file_type`` selects ``tf.data.TFRecordDataset(...,
  compression_type='GZIP')`` for that value (``official.common.dataset_fn``). ``scripts.training.model_garden``
  still checks the actual file suffixes at train time.
* Input paths and ``task.init_checkpoint`` are *not* written here: ``scripts.training.model_garden`` sets them
  (train and validation read the same files, as in the recipe).
* ``spec["torch"]`` (only for models with ``backend: torch``): the ``training.torch`` options,
  written as a top-level ``torch:`` section that :mod:`scripts.training.torch_train` reads.
* ``spec["family"]`` (models whose architecture is a ``roberta`` or ``distilbert`` family): the
  family's facts (masking, teacher, distillation weights), a top-level ``family:`` section that
  :mod:`scripts.training.mlm` reads; the Model Garden sections stay (the engine reads the encoder,
  shapes and schedule from them).
* Output is deterministic: sorted keys, no timestamps, written atomically.

No TensorFlow import here: this runs in well under a second.
"""

from __future__ import annotations

import argparse
import json
import numbers

import yaml

from scripts.shared.common import LOG, InputError, atomic_path, run_cli
from scripts.shared.formats import read_vocab

ARCH_KEYS = ("hidden_size", "num_layers", "num_attention_heads", "intermediate_size",
             "max_position_embeddings", "type_vocab_size", "hidden_activation", "dropout_rate",
             "attention_dropout_rate", "initializer_range")
STAGE_INT_KEYS = ("global_batch_size", "train_steps", "warmup_steps", "checkpoint_interval",
                  "max_to_keep", "steps_per_loop", "summary_interval", "validation_interval",
                  "validation_steps")
STAGE_FLOAT_KEYS = ("learning_rate", "end_learning_rate")
DATA_KEYS = ("max_seq_length", "max_predictions_per_seq")
RUNTIME_KEYS = ("distribution_strategy", "tpu", "mixed_precision_dtype", "num_gpus")
STRATEGIES = ("one_device", "mirrored", "multi_worker_mirrored", "tpu")
PRECISIONS = ("float32", "float16", "bfloat16")
HEADER = ("# Model Garden `bert/pretraining` override, written by scripts/training/config.py.\n"
          "# Input paths and task.init_checkpoint are set by scripts/training/model_garden.py at run time.\n")


def _get(d: dict, key: str, where: str):
    if not isinstance(d, dict):
        raise InputError("--spec", f"{where} must be an object")
    if key not in d:
        raise InputError("--spec", f"missing key {where}.{key}")
    return d[key]


def _int(d: dict, key: str, where: str, minimum: int = 0) -> int:
    v = _get(d, key, where)
    if isinstance(v, bool) or not isinstance(v, numbers.Real) or float(v) != int(v):
        raise InputError("--spec", f"{where}.{key} must be an integer, got {v!r}")
    if int(v) < minimum:
        raise InputError("--spec", f"{where}.{key} must be >= {minimum}, got {v!r}")
    return int(v)


def _float(d: dict, key: str, where: str) -> float:
    v = _get(d, key, where)
    if isinstance(v, bool) or not isinstance(v, numbers.Real):
        raise InputError("--spec", f"{where}.{key} must be a number, got {v!r}")
    return float(v)


def build_override(spec: dict) -> dict:
    """The override dictionary (``task``, ``trainer``, ``runtime``) for one stage's spec."""
    arch = _get(spec, "architecture", "spec")
    stage = _get(spec, "stage", "spec")
    data = _get(spec, "data", "spec")
    runtime = _get(spec, "runtime", "spec")
    vocab_size = _int(spec, "vocab_size", "spec", minimum=1)

    hidden = _int(arch, "hidden_size", "architecture", 1)
    heads = _int(arch, "num_attention_heads", "architecture", 1)
    if hidden % heads:
        raise InputError("--spec", f"architecture.hidden_size {hidden} is not divisible by "
                                   f"num_attention_heads {heads}")
    encoder = {
        "attention_dropout_rate": _float(arch, "attention_dropout_rate", "architecture"),
        "dropout_rate": _float(arch, "dropout_rate", "architecture"),
        "hidden_activation": str(_get(arch, "hidden_activation", "architecture")),
        "hidden_size": hidden,
        "initializer_range": _float(arch, "initializer_range", "architecture"),
        "intermediate_size": _int(arch, "intermediate_size", "architecture", 1),
        "max_position_embeddings": _int(arch, "max_position_embeddings", "architecture", 1),
        "num_attention_heads": heads,
        "num_layers": _int(arch, "num_layers", "architecture", 1),
        "type_vocab_size": _int(arch, "type_vocab_size", "architecture", 1),
        "vocab_size": vocab_size,
    }

    seq_length = _int(data, "max_seq_length", "data", 2)
    max_pred = _int(data, "max_predictions_per_seq", "data", 1)
    if seq_length > encoder["max_position_embeddings"]:
        raise InputError("--spec", f"data.max_seq_length {seq_length} exceeds "
                                   f"architecture.max_position_embeddings "
                                   f"{encoder['max_position_embeddings']}")
    s = {k: _int(stage, k, "stage", 0) for k in STAGE_INT_KEYS}
    for k in ("global_batch_size", "train_steps", "checkpoint_interval", "max_to_keep",
              "steps_per_loop", "summary_interval", "validation_interval"):
        if s[k] < 1:
            raise InputError("--spec", f"stage.{k} must be >= 1, got {s[k]}")
    if s["summary_interval"] % s["steps_per_loop"]:
        raise InputError("--spec", f"stage.summary_interval {s['summary_interval']} must be a multiple of "
                                   f"stage.steps_per_loop {s['steps_per_loop']} (an Orbit requirement)")
    lr = {k: _float(stage, k, "stage") for k in STAGE_FLOAT_KEYS}

    def data_section(is_training: bool) -> dict:
        return {
            "drop_remainder": True,
            "file_type": "tfrecord_compressed",
            "global_batch_size": s["global_batch_size"],
            "is_training": is_training,
            "max_predictions_per_seq": max_pred,
            "seq_length": seq_length,
            "use_next_sentence_label": True,
            "use_position_id": False,
            "use_v2_feature_names": True,
        }

    strategy = str(_get(runtime, "distribution_strategy", "runtime"))
    if strategy not in STRATEGIES:
        raise InputError("--spec", f"runtime.distribution_strategy {strategy!r} is not one of "
                                   f"{', '.join(STRATEGIES)}")
    precision = str(_get(runtime, "mixed_precision_dtype", "runtime"))
    if precision not in PRECISIONS:
        raise InputError("--spec", f"runtime.mixed_precision_dtype {precision!r} is not one of "
                                   f"{', '.join(PRECISIONS)}")
    tpu = _get(runtime, "tpu", "runtime")
    tpu = "" if tpu is None else str(tpu)

    return {
        "task": {
            "model": {
                "cls_heads": [{
                    "activation": "tanh",
                    "cls_token_idx": 0,
                    "dropout_rate": 0.1,
                    "inner_dim": hidden,
                    "name": "next_sentence",
                    "num_classes": 2,
                }],
                "encoder": {"bert": encoder, "type": "bert"},
            },
            "train_data": data_section(True),
            "validation_data": data_section(False),
        },
        "trainer": {
            "checkpoint_interval": s["checkpoint_interval"],
            "max_to_keep": s["max_to_keep"],
            "optimizer_config": {
                "learning_rate": {
                    "polynomial": {
                        "cycle": False,
                        "decay_steps": s["train_steps"],
                        "end_learning_rate": lr["end_learning_rate"],
                        "initial_learning_rate": lr["learning_rate"],
                        "power": 1.0,
                    },
                    "type": "polynomial",
                },
                "optimizer": {"type": "adamw"},
                "warmup": {
                    "polynomial": {"power": 1, "warmup_steps": s["warmup_steps"]},
                    "type": "polynomial",
                },
            },
            "steps_per_loop": s["steps_per_loop"],
            "summary_interval": s["summary_interval"],
            "train_steps": s["train_steps"],
            "validation_interval": s["validation_interval"],
            "validation_steps": s["validation_steps"],
        },
        "runtime": {
            "distribution_strategy": strategy,
            "mixed_precision_dtype": precision,
            "num_gpus": _int(runtime, "num_gpus", "runtime", 0),
            "tpu": tpu,
        },
        # PyTorch backend only (scripts.training.torch_train): its options, so that they are part of
        # the file (and of the run key); Model Garden never reads a stage file that has them.
        **({"torch": dict(spec["torch"])} if spec.get("torch") else {}),
        # a model family other than BERT pretraining (scripts.training.mlm: roberta, distilbert): its facts
        **({"family": dict(spec["family"])} if spec.get("family") else {}),
    }


def dump_override(override: dict) -> str:
    """The YAML text: sorted keys, block style, a fixed header (byte-stable for equal input)."""
    return HEADER + yaml.safe_dump(override, sort_keys=True, default_flow_style=False,
                                   allow_unicode=True, width=100)


def write_override(spec: dict, output: str) -> dict:
    override = build_override(spec)
    text = dump_override(override)
    with atomic_path(output) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
    return override


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--spec", required=True, help="stage spec as one JSON object (without vocab_size)")
    ap.add_argument("--vocab-file", required=True, help="the model's vocab.txt: its line count is the vocab size")
    ap.add_argument("--output", required=True, help="override YAML to write")
    a = ap.parse_args(argv)
    try:
        spec = json.loads(a.spec)
    except json.JSONDecodeError as e:
        raise InputError("--spec", f"invalid JSON: {e}") from None
    if not isinstance(spec, dict):
        raise InputError("--spec", "must be a JSON object")
    if "vocab_size" in spec:
        raise InputError("--spec", "has vocab_size: the vocab size is counted from --vocab-file")
    spec = {**spec, "vocab_size": len(read_vocab(a.vocab_file))}
    override = write_override(spec, a.output)
    t = override["trainer"]
    LOG.info("built %s: vocab %d (%s), %s steps, batch %s, lr %s, warmup %s, strategy %s/%s", a.output,
             spec["vocab_size"], a.vocab_file, t["train_steps"], override["task"]["train_data"]["global_batch_size"],
             t["optimizer_config"]["learning_rate"]["polynomial"]["initial_learning_rate"],
             t["optimizer_config"]["warmup"]["polynomial"]["warmup_steps"],
             override["runtime"]["distribution_strategy"],
             override["runtime"]["mixed_precision_dtype"])
    return 0


if __name__ == "__main__":
    run_cli(main)
