"""Training runs: the checkpoint directory a training job may use, bound to what shaped it.

Every training backend (:mod:`scripts.training.model_garden`, the PyTorch backend) follows one
rule, implemented here once:

* A stage's checkpoints live in ``<stage_dir>/run-<key16>/`` (``PATHS.run_dir``). ``key`` is the
  sha256 of the run's *parts* (canonical JSON), ``key16`` its first 16 hex digits. The parts are
  everything that shapes the trained weights:

  ``config``   sha256 of the stage config file's bytes (model, vocab size, optimiser, schedule,
               batch, train_steps, runtime and precision: all of it is in that file);
  ``data``     ``[{"sha256", "size"}, ...]`` of the training files, in the order the trainer
               reads them (content only: moving the files does not change the key);
  ``init``     the init checkpoint: the previous stage's ``run_key``, checkpoint name and step,
               read from its ``done.json`` (:func:`init_from_done`); ``None`` for a random start;
  ``code``     the code digest of the backend (the rule's ``params.code``);
  ``backend``  the backend's name (``"model_garden"``, ``"torch"``, ...).

* Same parts, same directory: a killed or preempted job resumes from its latest checkpoint.
  Any change gives a new directory and a fresh start, so a checkpoint trained under other
  settings is never continued, reported as done, or converted.
* Old run directories are never deleted: :func:`open_run` lists every other ``run-*``
  directory of the stage in the log, with the parts it differs in, as "not deleted; remove by
  hand" (weeks of accelerator time are not ours to throw away; a config change may be undone).
* ``run.json`` in each run directory records ``run_key``, ``parts``, ``backend`` and when it
  was created (UTC); :func:`open_run` checks it against the key on every start.
* The finished job's ``done.json`` is :func:`done_info` plus the backend's own facts, written
  with :func:`scripts.shared.formats.write_done`: ``run_key``, ``run_dir`` (= ``model_dir``),
  ``stage_dir`` and the real ``checkpoint`` path. The next stage's init and hf_model take the
  checkpoint from that file (a Snakemake input), never from a guessed path.

Decision -- digests of the training files. Reading hundreds of GB of TFRecords at every start
or resume would cost many minutes at recipe scale, so the data stage records the digest: the
``pretraining_data`` job hashes the compressed bytes as it writes them and stores
``output_sha256`` and ``output_bytes`` in the records' ``.stats.json`` (free: no second read).
:func:`data_digests` takes a file's digest from its stats when the stats name that file
(basename) and its current size; otherwise (no stats given, an older stats file, a size
mismatch) it hashes the file itself and logs that it did. The size check catches a truncated or
replaced file at no cost; a same-size in-place edit of a records file that bypasses Snakemake
is not detected (Snakemake itself would rerun the data job for any tracked change).

API (a backend calls these in order)::

    init = init_from_done(prev_done) if prev_done else None          # InitCheckpoint | None
    parts = run_parts(config=cfg_path, data=data_digests(files, stats), init=init,
                      code=code_digest, backend="torch")
    run = open_run(stage_dir, parts)                                   # creates run.dir
    latest, step = <backend: latest checkpoint in run.dir and its step, or (None, 0)>
    log_start(run, latest=latest, step=step, train_steps=T, init=init)
    ... train in run.dir ...
    write_done(done_path, {**done_info(run, checkpoint=final, final_step=T, init=init), ...})

Local paths use :mod:`os`; ``scheme://`` paths (``gs://``) use ``tf.io.gfile`` (imported only
then). No TensorFlow or torch import otherwise.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
from dataclasses import dataclass, field

from scripts.shared.common import LOG, InputError, write_json
from scripts.shared.formats import PATHS, read_done, read_stats

RUN_PREFIX = "run-"
RUN_JSON = "run.json"
KEY_CHARS = 16
PART_NAMES = ("backend", "code", "config", "data", "init")
_HASH_CHUNK = 8 << 20


# ---------------------------------------------------------------------------------------------
# Files, local or remote
# ---------------------------------------------------------------------------------------------


def _remote(path: str) -> bool:
    return "://" in str(path)


def _gfile():
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "1")
    import tensorflow as tf

    return tf.io.gfile


def _join(a: str, b: str) -> str:
    return f"{str(a).rstrip('/')}/{b}" if _remote(a) else os.path.join(a, b)


def _isdir(path: str) -> bool:
    return _gfile().isdir(path) if _remote(path) else os.path.isdir(path)


def _exists(path: str) -> bool:
    return _gfile().exists(path) if _remote(path) else os.path.exists(path)


def _listdir(path: str) -> list[str]:
    if not _isdir(path):
        return []
    names = _gfile().listdir(path) if _remote(path) else os.listdir(path)
    return sorted(n.rstrip("/") for n in names)


def _size(path: str) -> int:
    return _gfile().stat(path).length if _remote(path) else os.path.getsize(path)


def _read_text(path: str) -> str:
    if _remote(path):
        with _gfile().GFile(path, "r") as fh:
            return fh.read()
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def _write_json(path: str, obj) -> None:
    if _remote(path):
        with _gfile().GFile(path, "w") as fh:  # an object store write is all-or-nothing
            fh.write(json.dumps(obj, ensure_ascii=False, indent=2, sort_keys=True) + "\n")
    else:
        write_json(path, obj)


def sha256_file(path: str) -> str:
    """sha256 of a file's bytes (local or ``gs://``), read in 8 MB pieces."""
    h = hashlib.sha256()
    opener = _gfile().GFile(path, "rb") if _remote(path) else open(path, "rb")
    with opener as fh:
        while True:
            block = fh.read(_HASH_CHUNK)
            if not block:
                break
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------------------------
# The parts of a run key
# ---------------------------------------------------------------------------------------------


def file_digest(path: str, stats_path: str | None = None) -> dict:
    """``{"sha256", "size"}`` of a training file: from its stats.json when that names this file
    (basename) with its current size and records ``output_sha256``; else by hashing the file."""
    path = str(path)
    if not _exists(path):
        raise InputError(path, "training file not found")
    size = _size(path)
    why = "no stats given"
    if stats_path:
        st = read_stats(stats_path)
        if "output_sha256" not in st:
            why = f"{stats_path} records no output_sha256"
        elif os.path.basename(str(st.get("output", ""))) != os.path.basename(path):
            why = f"{stats_path} describes {st.get('output')!r}"
        elif st.get("output_bytes") != size:
            why = f"{stats_path} records {st.get('output_bytes')} bytes, the file has {size}"
        else:
            return {"sha256": st["output_sha256"], "size": size}
    LOG.info("hashing %s (%s)", path, why)
    return {"sha256": sha256_file(path), "size": size}


def data_digests(files: list[str], stats_files: list[str] | None = None) -> list[dict]:
    """:func:`file_digest` of each training file, in the given order. ``stats_files``, when
    given, are paired with ``files`` by basename (``X.tfrecord.gz`` <-> ``X.stats.json``)."""
    by_stem: dict[str, str] = {}
    for s in stats_files or ():
        stem = os.path.basename(str(s))
        stem = stem[: -len(".stats.json")] if stem.endswith(".stats.json") else stem
        by_stem[stem] = str(s)
    out = []
    for f in files:
        stem = os.path.basename(str(f)).split(".tfrecord")[0]
        out.append(file_digest(str(f), by_stem.get(stem)))
    return out


@dataclass(frozen=True)
class InitCheckpoint:
    """Where a stage starts from: ``path`` (what the trainer restores) and ``part`` (what enters
    the run key: location-free, so a copied or moved workflow keeps its keys)."""

    path: str
    part: dict


def init_from_done(done_path: str) -> InitCheckpoint:
    """The previous stage's final checkpoint, from its ``done.json``."""
    info = read_done(done_path)
    ckpt = str(info["checkpoint"])
    return InitCheckpoint(path=ckpt, part={"run_key": info["run_key"], "checkpoint": os.path.basename(ckpt),
                                           "final_step": info["final_step"]})


def run_parts(*, config: str, data: list[dict], init: InitCheckpoint | None, code: str,
              backend: str) -> dict:
    """The parts of a run key (see the module docstring); ``config`` is the stage config's path."""
    if not code:
        raise ValueError("run_parts: a code digest is required")
    if not _exists(config):
        raise InputError(config, "stage config not found")
    return {
        "backend": str(backend),
        "code": str(code),
        "config": sha256_file(config),
        "data": [{"sha256": d["sha256"], "size": int(d["size"])} for d in data],
        "init": dict(init.part) if init else None,
    }


def run_key(parts: dict) -> str:
    """sha256 (hex) of the parts as canonical JSON (sorted keys, no whitespace)."""
    missing = [k for k in PART_NAMES if k not in parts]
    if missing:
        raise ValueError(f"run parts lack {missing}")
    blob = json.dumps(parts, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(blob.encode("ascii")).hexdigest()


# ---------------------------------------------------------------------------------------------
# Run directories
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    key: str                 # full sha256 hex
    stage_dir: str
    dir: str                 # <stage_dir>/run-<key16>: the checkpoint directory
    parts: dict
    stale: list = field(default_factory=list)   # [(dir, "why")] other run dirs, left in place

    @property
    def key16(self) -> str:
        return self.key[:KEY_CHARS]


def _differs(mine: dict, other_dir: str) -> str:
    path = _join(other_dir, RUN_JSON)
    try:
        other = json.loads(_read_text(path))
        theirs = other["parts"]
    except (OSError, ValueError, KeyError, TypeError):
        return "no readable run.json"
    diff = [k for k in PART_NAMES if theirs.get(k) != mine.get(k)]
    created = other.get("created")
    return (f"differs in {', '.join(diff) or 'nothing (?)'}" + (f"; created {created}" if created else ""))


def open_run(stage_dir: str, parts: dict) -> Run:
    """The run directory for ``parts`` under ``stage_dir``: created with its run.json (or checked
    against an existing one); other run dirs are logged as stale and left alone."""
    stage_dir = str(stage_dir).rstrip("/") or "/"
    key = run_key(parts)
    run_dir = PATHS.run_dir.format(stage_dir=stage_dir, key16=key[:KEY_CHARS])
    meta_path = _join(run_dir, RUN_JSON)
    if _exists(meta_path):
        try:
            meta = json.loads(_read_text(meta_path))
        except ValueError as e:
            raise InputError(meta_path, f"invalid JSON: {e}") from None
        if meta.get("run_key") != key:
            raise InputError(meta_path, f"records run_key {meta.get('run_key')!r}, but this run's key is {key} "
                                        "(a key16 collision, or an edited run.json): move the directory away")
    else:
        if _remote(run_dir):
            _gfile().makedirs(run_dir)
        else:
            os.makedirs(run_dir, exist_ok=True)
        created = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        _write_json(meta_path, {"run_key": key, "backend": parts["backend"], "created": created,
                                "parts": parts})
    names = _listdir(stage_dir)
    stale = [(_join(stage_dir, n), _differs(parts, _join(stage_dir, n))) for n in names
             if n.startswith(RUN_PREFIX) and n != os.path.basename(run_dir) and _isdir(_join(stage_dir, n))]
    init = parts.get("init")
    LOG.info("run key %s (backend %s, code %s, config %s, %d training file(s), init %s): %s",
             key[:KEY_CHARS], parts["backend"], parts["code"][:12], parts["config"][:12], len(parts["data"]),
             f"run {init['run_key'][:KEY_CHARS]} {init['checkpoint']}" if init and "run_key" in init
             else (json.dumps(init, sort_keys=True) if init else "none"), run_dir)
    for d, why in stale:
        LOG.warning("stale run directory %s (%s): not used, not deleted; remove by hand if unneeded", d, why)
    legacy = [n for n in names if n.startswith("ckpt-") or n == "checkpoint"]
    if legacy:
        LOG.warning("%s holds checkpoints of the old layout (%s, ...): not used, not deleted; remove by hand",
                    stage_dir, legacy[0])
    return Run(key=key, stage_dir=stage_dir, dir=run_dir, parts=parts, stale=stale)


def log_start(run: Run, *, latest: str | None, step: int, train_steps: int,
              init: InitCheckpoint | None) -> str:
    """Log (in the words every backend uses) how the job starts; returns ``"resume"``,
    ``"done"`` (the marker was missing: nothing to train) or ``"fresh"``."""
    if latest and step > train_steps:
        raise InputError(latest, f"checkpoint at step {step}, beyond train_steps {train_steps}, in run "
                                 f"{run.key16}: the run directory does not match its key")
    if latest and step == train_steps:
        LOG.info("run %s: already at train_steps, nothing to train: %s is at step %d", run.key16, latest, step)
        return "done"
    if latest:
        LOG.info("run %s: resuming from %s at step %d (of %d)", run.key16, latest, step, train_steps)
        return "resume"
    LOG.info("run %s: starting fresh (init from %s)", run.key16, init.path if init else "random initialization")
    return "fresh"


def done_info(run: Run, *, checkpoint: str, final_step: int, init: InitCheckpoint | None = None) -> dict:
    """The run's fields of done.json (the backend adds its own: metrics, timings, devices)."""
    return {
        "run_key": run.key,
        "run_dir": run.dir,
        "model_dir": run.dir,
        "stage_dir": run.stage_dir,
        "checkpoint": checkpoint,
        "final_step": final_step,
        "init_checkpoint": init.path if init else None,
        "init_run_key": (init.part.get("run_key") if init else None),
    }
