"""Pretrain one stage with TensorFlow Model Garden's ``bert/pretraining`` experiment.

::

    python -m scripts.training.model_garden --config model/<tok>/<arch>/training/<stage>.yaml \\
        --train-files 'pretraining_data/<tok>/<corpus>/pretraining_data_*.tfrecord.gz' \\
        [--train-file F ...] [--train-stats S ...] --stage-dir model/<tok>/<arch>/training/<stage> \\
        [--init-done model/<tok>/<arch>/training/<prev-stage>/done.json | --init-checkpoint PREFIX] \\
        [--code DIGEST] [--mode train_and_eval|train] [--threads N] --done <stage-dir>/done.json [--dry-run]

What it does, in the order of ``official/nlp/train.py`` (the recipe's entry point):

1. ``exp_factory.get_exp_config('bert/pretraining')`` overridden (strictly: unknown keys are
   errors) by the stage YAML from ``scripts.training.config``; then the input paths (train and
   validation read the same files, as in the recipe) and ``task.init_checkpoint``.
2. The distribution strategy from ``runtime`` via ``distribute_utils.get_distribution_strategy``:
   ``one_device`` (``device:CPU:0`` with ``num_gpus: 0``, else ``device:GPU:0``), ``mirrored``
   (``num_gpus`` GPUs), ``multi_worker_mirrored`` (cluster from ``TF_CONFIG``), ``tpu``
   (``runtime.tpu``; ``local`` on a TPU VM). Mixed precision from
   ``runtime.mixed_precision_dtype`` (``performance.set_mixed_precision_policy``: ``float16`` ->
   ``mixed_float16``, ``bfloat16`` -> ``mixed_bfloat16``; variables stay float32). Caveat, logged
   as a warning: with float16 Model Garden wraps the optimizer in a ``LossScaleOptimizer``, but
   ``MaskedLMTask.train_step`` never scales the loss (unlike ``base_task.Task.train_step``), so
   float16 BERT pretraining runs without effective loss scaling; bfloat16 (TPU, A100/H100) does
   not need it.
3. ``train_lib.run_experiment`` (Orbit controller, ``CheckpointManager`` in the run directory
   ``<stage-dir>/run-<key16>/``, see :mod:`scripts.training.runs`).

Decisions:

* **GZIP input.** Model Garden's ``BertPretrainDataConfig.file_type`` picks the dataset class
  (``official.common.dataset_fn.pick_dataset_fn``): ``tfrecord_compressed`` reads with
  ``tf.data.TFRecordDataset(compression_type='GZIP')``. The file type is set from the files'
  suffix (all ``.gz``: ``tfrecord_compressed``; none: ``tfrecord``; a mix is an error), and the
  first record of the first file is read and checked against ``seq_length`` /
  ``max_predictions_per_seq`` / the v2 feature names before anything is built, so a
  wrong compression or data/config mismatch fails in seconds naming the file.
* **Run directory and resume.** Checkpoints go to ``<stage-dir>/run-<key16>/``, the key being a
  digest of the stage YAML, the training files' content (digests from ``--train-stats``, see
  :mod:`scripts.training.runs`), the init checkpoint's run, ``--code`` (default: the digest of
  this module and its imports, as the rule's ``params.code``) and the backend ``model_garden``.
  Model Garden restores the latest checkpoint of that directory by itself; this script reads it
  first and logs ``run <key16>: resuming from <ckpt> at step N``, ``run <key16>: starting fresh
  (init from <ckpt>)`` or ``run <key16>: already at train_steps, nothing to train`` (then it
  only writes ``done.json``). Other ``run-*`` directories are listed as stale, never deleted.
* **init_checkpoint.** ``--init-done`` (what the workflow passes) takes the previous stage's
  checkpoint from its done.json; ``--init-checkpoint`` (by hand) a directory or a prefix.
  ``MaskedLMTask.initialize`` (the ``CheckpointManager`` ``init_fn``, run
  only when the run directory has no checkpoint) accepts a directory (-> its latest checkpoint) or
  a prefix, and silently trains from scratch when it finds nothing. Here the argument is
  resolved first (a directory must hold a checkpoint, a prefix must have its ``.index``) and
  the resolved prefix is passed on, so stage 2 can never silently start from random weights.
  It restores the pretrainer's ``checkpoint_items``: the encoder, the MLM head and the
  next-sentence head's ``pooler_dense``; the next-sentence ``logits`` layer and the optimizer
  state start fresh, exactly as in the recipe's stage 2 (same Model Garden code path).
* **Threads.** ``--threads N`` sets TF's intra-op and inter-op pools to N (before any op runs).
* **Devices.** ``tf.config.list_physical_devices()`` is logged; ``runtime.num_gpus`` larger than
  the number of visible GPUs fails at once with a clear message.
* **Progress.** Orbit logs ``train | step | steps/sec``; a train action here adds a line per loop
  with step/total, loss, examples/s and an ETA. The final summary line is
  ``built <model_dir>: step N, checkpoint <path>``.
* **done.json** (written atomically, last, only by the chief): run key, run dir (``model_dir``),
  final step, final checkpoint prefix, train steps, seconds, the last training and validation
  metrics of this run (``null`` when nothing was trained). Nothing under ``--stage-dir`` is ever
  deleted or cleaned.
* ``--dry-run`` prints the resolved plan (params, strategy arguments, precision policy) as JSON
  and exits: no device, no training (tests use it for the TPU and GPU configurations).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import sys
import time

from scripts.shared.common import LOG, InputError, run_cli
from scripts.shared.formats import PATHS, PRED_FEATURES, write_done
from scripts.shared.formats import SEQ_FEATURES as INT_FEATURES
from scripts.training import runs
from scripts.training.experiment import (EXPERIMENT, _tf, checkpoint_step, detect_file_type,  # noqa: F401
                                         load_params, resolve_checkpoint, resolve_init_checkpoint)
PRECISION_POLICY = {"float32": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}
BACKEND = "model_garden"


def _route_absl_logging() -> None:
    """Send Model Garden / Orbit (absl) INFO logs through the root handler (stderr)."""
    from absl import logging as absl_logging

    absl_logging.set_verbosity(absl_logging.INFO)
    absl_logging.get_absl_logger().propagate = True


# ---------------------------------------------------------------------------------------------
# Inputs
# ---------------------------------------------------------------------------------------------


def resolve_train_files(patterns=(), files=()) -> list[str]:
    """Expand glob patterns (local or gs://) and explicit files; sorted, de-duplicated."""
    tf = _tf()
    out: list[str] = []
    for pat in patterns or ():
        for part in (p.strip() for p in pat.split(",")):
            if not part:
                continue
            found = sorted(tf.io.gfile.glob(part))
            if not found:
                raise InputError(part, "no training file matches this pattern")
            out += found
    for f in files or ():
        if not tf.io.gfile.exists(f):
            raise InputError(f, "training file not found")
        out.append(f)
    out = sorted(dict.fromkeys(out))
    if not out:
        raise InputError("--train-files", "no training files given")
    return out


def check_first_record(path: str, file_type: str, seq_length: int, max_pred: int) -> None:
    """Read one record and check the v2 feature layout against the config (names the file)."""
    tf = _tf()
    compression = "GZIP" if file_type == "tfrecord_compressed" else ""
    try:
        raw = next(iter(tf.data.TFRecordDataset(path, compression_type=compression).take(1)), None)
    except tf.errors.OpError as e:
        raise InputError(path, f"cannot read as {compression or 'uncompressed'} TFRecord: "
                               f"{e.message.splitlines()[0]}") from None
    if raw is None:
        raise InputError(path, "no records")
    ex = tf.train.Example.FromString(raw.numpy())
    feats = ex.features.feature
    expect = {**{k: seq_length for k in INT_FEATURES}, **{k: max_pred for k in PRED_FEATURES},
              "next_sentence_labels": 1}
    for name, n in expect.items():
        if name not in feats:
            raise InputError(path, f"feature {name!r} missing (have: {', '.join(sorted(feats))}); "
                                   "expected v2 feature names")
        f = feats[name]
        kind = f.WhichOneof("kind")
        got = len(getattr(f, kind).value) if kind else 0
        if got != n:
            raise InputError(path, f"feature {name!r} has {got} values, the config expects {n} "
                                   f"(seq_length={seq_length}, max_predictions_per_seq={max_pred})")


# ---------------------------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------------------------


def strategy_kwargs(params) -> dict:
    """Arguments for ``distribute_utils.get_distribution_strategy`` (as official/nlp/train.py)."""
    rt = params.runtime
    return {
        "distribution_strategy": rt.distribution_strategy,
        "num_gpus": rt.num_gpus,
        "all_reduce_alg": rt.all_reduce_alg,
        "num_packs": rt.num_packs,
        "tpu_address": rt.tpu,
    }


def precision_policy(params) -> str:
    dtype = params.runtime.mixed_precision_dtype or "float32"
    if dtype not in PRECISION_POLICY:
        raise InputError("runtime.mixed_precision_dtype", f"unsupported {dtype!r}")
    return PRECISION_POLICY[dtype]


def plan(params, *, stage_dir: str, threads: int, mode: str) -> dict:
    """Everything a run would use, without touching a device (the run key, which needs the data
    digests and the init checkpoint's done.json, is computed when training starts)."""
    return {
        "experiment": EXPERIMENT,
        "mode": mode,
        "stage_dir": stage_dir,
        "run_dir": PATHS.run_dir.format(stage_dir=stage_dir.rstrip("/"), key16="<key16>"),
        "threads": threads,
        "strategy": strategy_kwargs(params),
        "precision_policy": precision_policy(params),
        "params": params.as_dict(),
    }


class DeviceError(RuntimeError):
    """The configured accelerators are not visible."""


def check_devices(params) -> list:
    tf = _tf()
    devices = tf.config.list_physical_devices()
    LOG.info("physical devices: %s", ", ".join(f"{d.device_type}:{d.name}" for d in devices) or "none")
    gpus = [d for d in devices if d.device_type == "GPU"]
    want = params.runtime.num_gpus or 0
    strategy = params.runtime.distribution_strategy
    if strategy != "tpu" and want > len(gpus):
        raise DeviceError(
            f"runtime.num_gpus is {want} but {len(gpus)} GPU(s) are visible to TensorFlow "
            f"(devices: {[d.name for d in devices]}); check CUDA/drivers and CUDA_VISIBLE_DEVICES, "
            "or set training.num_gpus: 0 to train on CPU")
    if strategy != "tpu" and gpus and want == 0:
        LOG.warning("%d GPU(s) visible but runtime.num_gpus is 0: training on CPU", len(gpus))
    return devices


def make_strategy(params):
    from official.common import distribute_utils

    kw = strategy_kwargs(params)
    LOG.info("distribution strategy: %s", kw)
    return distribute_utils.get_distribution_strategy(**kw)


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def _scalars(output) -> dict:
    import numpy as np

    out = {}
    for k, v in (output or {}).items():
        try:
            a = np.asarray(v.numpy() if hasattr(v, "numpy") else v)
        except Exception:  # noqa: BLE001  (a non-numeric entry is just not reported)
            continue
        if a.size == 1 and np.issubdtype(a.dtype, np.number):
            out[k] = float(a.reshape(()))
    return out


class ProgressAction:
    """Orbit train action: remember the latest metrics and log step/total, examples/s, ETA."""

    def __init__(self, trainer, train_steps: int, global_batch_size: int, start_step: int):
        # start_step: the restored step (the controller restores only after this is built).
        self.trainer, self.train_steps, self.batch = trainer, train_steps, global_batch_size
        self.last: dict | None = None
        self.start_step = start_step
        self.t0 = self._t = time.monotonic()
        self._step = self.start_step

    def __call__(self, output) -> None:
        now = time.monotonic()
        step = int(self.trainer.global_step.numpy())
        self.last = _scalars(output)
        dt = max(now - self._t, 1e-9)
        sps = (step - self._step) / dt
        done = step - self.start_step
        rate = done / max(now - self.t0, 1e-9)
        eta = (self.train_steps - step) / rate if rate > 0 else float("nan")
        self._t, self._step = now, step
        loss = self.last.get("training_loss", float("nan"))
        LOG.info("step %d/%d (%.1f%%) | loss %.4f | %.2f steps/s, %.1f examples/s | ETA %s", step,
                 self.train_steps, 100.0 * step / max(self.train_steps, 1), loss, sps, sps * self.batch,
                 _fmt_s(eta))


class EvalAction:
    def __init__(self):
        self.last: dict | None = None

    def __call__(self, output) -> None:
        self.last = _scalars(output)
        LOG.info("validation: %s", ", ".join(f"{k} {v:.4f}" for k, v in sorted(self.last.items())))


def _fmt_s(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    s = int(s)
    return f"{s // 3600}h{s % 3600 // 60:02d}m{s % 60:02d}s"


def code_digest() -> str:
    """The digest of this backend's code, as the rule's ``params.code`` computes it."""
    from scripts.shared.registry import code_digest as digest

    return digest("training.model_garden")


def init_from_checkpoint(path: str) -> runs.InitCheckpoint:
    """An init checkpoint given by hand (a directory or a prefix): keyed by its ``.index`` digest."""
    tf = _tf()
    ckpt = resolve_init_checkpoint(path)
    with tf.io.gfile.GFile(ckpt + ".index", "rb") as fh:
        index_sha = hashlib.sha256(fh.read()).hexdigest()
    return runs.InitCheckpoint(path=ckpt, part={"checkpoint": os.path.basename(ckpt), "index_sha256": index_sha})


def resolve_init(init_done: str | None = None, init_checkpoint: str | None = None) -> runs.InitCheckpoint | None:
    if init_done and init_checkpoint:
        raise InputError("--init-done/--init-checkpoint", "give one of them, not both")
    if init_done:
        init = runs.init_from_done(init_done)
        resolve_checkpoint(init.path, "init checkpoint")  # must exist (a prefix with its .index)
        return init
    return init_from_checkpoint(init_checkpoint) if init_checkpoint else None


def train(*, config: str, train_files: list[str], stage_dir: str, done: str, init_done: str | None = None,
          init_checkpoint: str | None = None, train_stats: list[str] | None = None, code: str | None = None,
          mode: str = "train_and_eval", threads: int = 0) -> dict:
    t_start = time.monotonic()
    tf = _tf()
    if threads > 0:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    _route_absl_logging()

    from official.core import task_factory, train_lib, train_utils
    from official.modeling import performance

    init_ckpt = resolve_init(init_done, init_checkpoint)
    init = init_ckpt.path if init_ckpt else None
    params = load_params(config, train_files=train_files, init_checkpoint=init or "")
    devices = check_devices(params)
    td = params.task.train_data
    LOG.info("%d training file(s) (%s%s), e.g. %s", len(train_files), td.file_type,
             ", GZIP" if td.file_type == "tfrecord_compressed" else "", train_files[0])
    check_first_record(train_files[0], td.file_type, td.seq_length, td.max_predictions_per_seq)
    train_steps = int(params.trainer.train_steps)

    parts = runs.run_parts(config=config, data=runs.data_digests(train_files, train_stats), init=init_ckpt,
                           code=code or code_digest(), backend=BACKEND)
    run = runs.open_run(stage_dir, parts)
    model_dir = run.dir
    latest = tf.train.latest_checkpoint(model_dir)
    start_step = checkpoint_step(latest) if latest else 0
    how = runs.log_start(run, latest=latest, step=start_step, train_steps=train_steps, init=init_ckpt)
    if how == "resume" and init:
        LOG.info("(init checkpoint %s is not used: %s already has a checkpoint)", init, model_dir)

    train_metrics = eval_metrics = None
    chief = True
    if start_step < train_steps:
        precision = precision_policy(params)
        performance.set_mixed_precision_policy(params.runtime.mixed_precision_dtype or "float32")
        LOG.info("precision policy: %s", precision)
        if precision == "mixed_float16":
            LOG.warning("float16: Model Garden's MaskedLMTask.train_step does not scale the loss for the "
                        "LossScaleOptimizer (tf_keras warns 'You forgot to call get_scaled_loss'), so small "
                        "gradients may underflow; prefer bfloat16 on GPUs that support it (A100, H100)")
        strategy = make_strategy(params)
        chief = bool(strategy.extended.should_checkpoint)
        if chief:
            train_utils.serialize_config(params, model_dir)
        with strategy.scope():
            task = task_factory.get_task(params.task, logging_dir=model_dir)
            trainer = train_utils.create_trainer(
                params, task, train=True, evaluate="eval" in mode,
                checkpoint_exporter=train_lib.maybe_create_best_ckpt_exporter(params, model_dir))
        progress = ProgressAction(trainer, train_steps, td.global_batch_size, start_step)
        evals = EvalAction()
        LOG.info("training to step %d: global batch %d, %d replica(s), mode %s", train_steps,
                 td.global_batch_size, strategy.num_replicas_in_sync, mode)
        train_lib.run_experiment(distribution_strategy=strategy, task=task, mode=mode, params=params,
                                 model_dir=model_dir, trainer=trainer, train_actions=[progress],
                                 eval_actions=[evals])
        train_metrics, eval_metrics = progress.last, evals.last

    final = tf.train.latest_checkpoint(model_dir)
    final_step = checkpoint_step(final) if final else -1
    if final_step != train_steps:
        raise RuntimeError(f"training ended with latest checkpoint {final} at step {final_step}, "
                           f"expected {train_steps}")
    info = {
        **runs.done_info(run, checkpoint=final, final_step=final_step, init=init_ckpt),
        "backend": BACKEND,
        "train_steps": train_steps,
        "start_step": start_step,
        "trained_steps": final_step - start_step,
        "seconds": round(time.monotonic() - t_start, 3),
        "resumed_from": latest if how == "resume" else None,
        "global_batch_size": td.global_batch_size,
        "train_files": len(train_files),
        "file_type": td.file_type,
        "distribution_strategy": params.runtime.distribution_strategy,
        "mixed_precision_dtype": params.runtime.mixed_precision_dtype,
        "devices": [d.name for d in devices],
        "train_metrics": train_metrics,
        "validation_metrics": eval_metrics,
    }
    if chief:
        write_done(done, info)
    else:
        LOG.info("not the chief worker: %s not written", done)
    LOG.info("built %s: step %d, checkpoint %s", model_dir, final_step, final)
    return info


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, help="stage override YAML (scripts.training.config)")
    ap.add_argument("--train-files", action="append", default=[],
                    help="glob pattern(s) of training TFRecords (repeatable, comma-separated ok)")
    ap.add_argument("--train-file", action="extend", nargs="+", default=[],
                    help="training file(s) (repeatable)")
    ap.add_argument("--train-stats", action="extend", nargs="*", default=[],
                    help="the training files' .stats.json (their recorded sha256 spares hashing the files)")
    ap.add_argument("--stage-dir", required=True,
                    help="the stage's directory: checkpoints go to <stage-dir>/run-<key16>/ (kept; resumed from)")
    ap.add_argument("--init-done", nargs="*", default=[],
                    help="the previous stage's done.json (its checkpoint initialises this stage); none: random")
    ap.add_argument("--init-checkpoint", help="instead of --init-done: a model dir or a checkpoint prefix")
    ap.add_argument("--code", help="code digest for the run key (default: this module's, as params.code)")
    ap.add_argument("--mode", default="train_and_eval", choices=["train_and_eval", "train"])
    ap.add_argument("--threads", type=int, default=0, help="TF intra/inter-op threads (0: TF default)")
    ap.add_argument("--done", help="marker JSON written at the very end (required unless --dry-run)")
    ap.add_argument("--dry-run", action="store_true", help="print the resolved plan as JSON and exit")
    a = ap.parse_args(argv)
    if len(a.init_done) > 1:
        ap.error("--init-done takes at most one done.json")
    init_done = a.init_done[0] if a.init_done else None

    files = resolve_train_files(a.train_files, a.train_file)
    if a.dry_run:
        init = a.init_checkpoint  # not resolved: a dry run may describe a remote (gs://) layout
        params = load_params(a.config, train_files=files, init_checkpoint=init or "")
        json.dump(plan(params, stage_dir=a.stage_dir, threads=a.threads, mode=a.mode), sys.stdout,
                  indent=2, sort_keys=True, default=str)
        sys.stdout.write("\n")
        return 0
    if not a.done:
        ap.error("--done is required")
    try:
        train(config=a.config, train_files=files, stage_dir=a.stage_dir, done=a.done, init_done=init_done,
              init_checkpoint=a.init_checkpoint, train_stats=a.train_stats, code=a.code, mode=a.mode,
              threads=a.threads)
    except DeviceError as e:
        LOG.error("%s", e)
        return 3
    return 0


if __name__ == "__main__":
    run_cli(main)
