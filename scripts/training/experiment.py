"""Model Garden experiment parameters and checkpoints, shared by the trainer and the converter.

``load_params`` builds the ``bert/pretraining`` ExperimentConfig from a stage YAML (strict
override); the checkpoint helpers resolve a directory to its latest checkpoint and read its step.
"""

from __future__ import annotations

import os

from scripts.shared.common import InputError

EXPERIMENT = "bert/pretraining"


def _tf():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    import tensorflow as tf

    return tf


def detect_file_type(files: list[str]) -> str:
    gz = [f.endswith(".gz") for f in files]
    if all(gz):
        return "tfrecord_compressed"
    if not any(gz):
        return "tfrecord"
    raise InputError(files[gz.index(False)], "mix of GZIP (.gz) and uncompressed TFRecord files")


def resolve_checkpoint(path: str, what: str = "checkpoint") -> str:
    """A directory -> its latest checkpoint prefix; a prefix must exist. Never silently empty."""
    tf = _tf()
    if tf.io.gfile.isdir(path):
        ckpt = tf.train.latest_checkpoint(path)
        if not ckpt:
            raise InputError(path, f"{what} directory holds no checkpoint")
        return ckpt
    if not tf.io.gfile.exists(path + ".index"):
        raise InputError(path, f"{what} not found (neither a directory nor a checkpoint prefix)")
    return path


def resolve_init_checkpoint(path: str | None) -> str | None:
    return resolve_checkpoint(path, "init checkpoint") if path else None


def checkpoint_step(ckpt: str) -> int:
    tf = _tf()
    step = tf.Variable(-1, dtype=tf.int64)
    tf.train.Checkpoint(global_step=step).read(ckpt).expect_partial()
    if int(step.numpy()) < 0:
        raise InputError(ckpt, "checkpoint has no global_step")
    return int(step.numpy())



def load_params(config: str, *, train_files=None, init_checkpoint: str | None = None,
                lock: bool = True):
    """The ``bert/pretraining`` ExperimentConfig overridden by ``config`` (YAML) and the inputs."""
    from official.core import exp_factory
    from official.modeling.hyperparams import params_dict
    from official.nlp.configs import pretraining_experiments  # noqa: F401  registers the experiment

    if not os.path.exists(config):
        raise InputError(config, "config not found")
    params = exp_factory.get_exp_config(EXPERIMENT)
    try:
        params = params_dict.override_params_dict(params, config, is_strict=True)
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(config, f"not a valid {EXPERIMENT} override: {e}") from None
    over: dict = {"task": {}}
    if train_files:
        file_type = detect_file_type(train_files)
        for section in ("train_data", "validation_data"):
            over["task"][section] = {"input_path": list(train_files), "file_type": file_type}
    if init_checkpoint is not None:
        over["task"]["init_checkpoint"] = init_checkpoint
    params.override(over, is_strict=True)
    params.validate()
    if lock:
        params.lock()
    return params
