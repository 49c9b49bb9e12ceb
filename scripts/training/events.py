"""The TensorBoard event files a training stage leaves beside its checkpoints, read back.

Both backends write them into the run directory that holds the checkpoint ``done.json`` names:
``train/`` (``training_loss``, ``lm_example_loss``, ``masked_lm_accuracy``,
``next_sentence_loss``, ``next_sentence_accuracy``, ``learning_rate``, ... every
``summary_interval`` steps, each the mean over the interval) and ``validation/`` (the same
metrics, ``validation_loss`` instead of ``training_loss``, every ``validation_interval``). Model
Garden writes them itself; :mod:`scripts.training.torch_train` uses the same tag names. Event
files are TFRecord-framed ``Event`` protos, read with :mod:`scripts.shared.tfrecord` and
tensorboard's compiled protos (no TensorFlow import; ``gs://`` directories go through
``tf.io.gfile``).

Readers: the report's training curves (:mod:`scripts.report.data`) and the model card's final
losses and accuracies (:mod:`scripts.release.facts`).
"""

from __future__ import annotations

import json
import os
from collections import defaultdict

from scripts.shared.tfrecord import iter_records

TRAIN_TAGS = ("training_loss", "lm_example_loss", "masked_lm_accuracy", "next_sentence_loss",
              "next_sentence_accuracy", "learning_rate")
VALID_TAGS = ("validation_loss", "lm_example_loss", "masked_lm_accuracy", "next_sentence_loss",
              "next_sentence_accuracy")


def _listdir(path: str) -> list[str]:
    if path.startswith("gs://"):
        import tensorflow as tf

        return [os.path.join(path, p) for p in tf.io.gfile.listdir(path)]
    return [os.path.join(path, p) for p in sorted(os.listdir(path))] if os.path.isdir(path) else []


def _records(path: str):
    if path.startswith("gs://"):
        import tensorflow as tf

        for rec in tf.data.TFRecordDataset(path):
            yield rec.numpy()
        return
    try:
        yield from iter_records(path)
    except ValueError:  # a file still being written ends in a partial record
        return


def read_events(event_dir: str) -> dict[str, list[tuple[int, float]]]:
    """``{tag: [(step, value), ...]}`` of every event file in ``event_dir`` (sorted by step; a
    step logged twice, e.g. after a resume, keeps its last value)."""
    from tensorboard.compat.proto import event_pb2
    from tensorboard.util import tensor_util

    series: dict[str, dict[int, float]] = defaultdict(dict)
    for f in _listdir(event_dir):
        if "tfevents" not in os.path.basename(f):
            continue
        for rec in _records(f):
            ev = event_pb2.Event.FromString(rec)
            for v in ev.summary.value:
                if v.HasField("tensor"):
                    arr = tensor_util.make_ndarray(v.tensor)
                    if arr.size != 1:
                        continue
                    value = float(arr.reshape(-1)[0])
                elif v.HasField("simple_value"):
                    value = float(v.simple_value)
                else:
                    continue
                series[v.tag][int(ev.step)] = value
    return {tag: sorted(points.items()) for tag, points in series.items()}


def stage_event_dir(done_path: str) -> str:
    """The directory of a finished stage's summaries: where its final checkpoint lives."""
    with open(done_path, encoding="utf-8") as fh:
        done = json.load(fh)
    ckpt = done.get("checkpoint")
    return os.path.dirname(ckpt) if ckpt else done["model_dir"]
