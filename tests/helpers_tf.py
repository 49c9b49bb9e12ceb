"""Fixture builders for the training and conversion tests (TensorFlow imported lazily).

* :func:`write_vocab`: a small BERT vocabulary (specials, [unusedN], kana, some kanji and their
  ``##`` continuations) that MeCab-tokenised Japanese maps onto.
* :func:`write_pretraining_data`: random but valid BERT pretraining examples (v2 feature names)
  as GZIP TFRecords, the layout ``create_pretraining_data`` produces.
* :func:`stage_spec` / :func:`write_stage_config`: a tiny-model spec for ``scripts.training.config``.
"""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `import scripts.*` also under a bare `pytest` (no rootdir on sys.path)
    sys.path.insert(0, str(ROOT))
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

TINY_ARCH = {
    "hidden_size": 64, "num_layers": 2, "num_attention_heads": 2, "intermediate_size": 256,
    "max_position_embeddings": 128, "type_vocab_size": 2, "hidden_activation": "gelu",
    "dropout_rate": 0.1, "attention_dropout_rate": 0.1, "initializer_range": 0.02,
}
TINY_STAGE = {
    "name": "cc-100", "corpus": "sample-cc-100", "global_batch_size": 32, "train_steps": 20,
    "learning_rate": 1.0e-3, "end_learning_rate": 0.0, "warmup_steps": 5,
    "checkpoint_interval": 10, "max_to_keep": 3, "steps_per_loop": 5, "summary_interval": 5,
    "validation_interval": 1000, "validation_steps": 2,
}
TINY_DATA = {"max_seq_length": 64, "max_predictions_per_seq": 10}
CPU_RUNTIME = {"distribution_strategy": "one_device", "tpu": "", "mixed_precision_dtype": "float32",
               "num_gpus": 0}


def vocab_tokens(size: int | None = None) -> list[str]:
    """Specials, 10 [unused], a few words, kana and CJK ideographs, then ``##`` forms."""
    words = ["東京", "日本", "首都", "です", "ます", "した", "する", "こと", "大学", "研究"]
    chars = [chr(c) for c in range(0x3041, 0x3097)]            # hiragana
    chars += [chr(c) for c in range(0x30A1, 0x30FB)]           # katakana
    chars += list("。、「」（）・ー！？")
    chars += [chr(0x4E00 + i) for i in range(0, 20902, 97)]     # a spread of kanji
    chars += list("東京日本首都大学研究語文字")
    seen: set[str] = set()
    base = [t for t in words + chars if not (t in seen or seen.add(t))]
    toks = SPECIALS + [f"[unused{i}]" for i in range(10)] + base + ["##" + c for c in base if len(c) == 1]
    if size is not None:
        if size > len(toks):
            extra = [chr(0x4E00 + i) for i in range(20902) if chr(0x4E00 + i) not in seen]
            toks += extra[: size - len(toks)]
        toks = toks[:size]
    return toks


def write_vocab(path: Path, size: int | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(t + "\n" for t in vocab_tokens(size)), encoding="utf-8")
    return path


def random_example(rng: np.random.Generator, vocab_size: int, seq_length: int, max_pred: int) -> dict:
    """One valid instance: [CLS] A [SEP] B [SEP] [PAD]..., whole features as numpy arrays."""
    first = 15  # ids below this are specials / [unusedN]
    n_real = int(rng.integers(8, seq_length + 1))
    len_a = int(rng.integers(1, n_real - 3))  # 1 .. n_real - 4, so that B has >= 1 token
    len_b = n_real - 3 - len_a
    ids = ([2] + list(rng.integers(first, vocab_size, len_a)) + [3]
           + list(rng.integers(first, vocab_size, len_b)) + [3])
    types = [0] * (len_a + 2) + [1] * (len_b + 1)
    cand = [i for i in range(n_real) if ids[i] not in (2, 3)]
    n_pred = min(max_pred, max(1, int(round(len(cand) * 0.15))))
    pos = sorted(rng.choice(cand, size=n_pred, replace=False).tolist())
    masked_ids = [int(ids[p]) for p in pos]
    for p in pos:
        ids[p] = 4  # [MASK]
    pad = seq_length - n_real
    return {
        "input_word_ids": np.array(ids + [0] * pad, np.int64),
        "input_mask": np.array([1] * n_real + [0] * pad, np.int64),
        "input_type_ids": np.array(types + [0] * pad, np.int64),
        "masked_lm_positions": np.array(pos + [0] * (max_pred - n_pred), np.int64),
        "masked_lm_ids": np.array(masked_ids + [0] * (max_pred - n_pred), np.int64),
        "masked_lm_weights": np.array([1.0] * n_pred + [0.0] * (max_pred - n_pred), np.float32),
        "next_sentence_labels": np.array([int(rng.integers(0, 2))], np.int64),
    }


def write_pretraining_data(out_dir: Path, *, vocab_size: int, seq_length: int = 64, max_pred: int = 10,
                           num_files: int = 2, per_file: int = 160, seed: int = 0,
                           gzip: bool = True) -> list[Path]:
    """``pretraining_data_NN.tfrecord.gz`` files of random valid examples (GZIP unless told)."""
    import tensorflow as tf

    out_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    opts = tf.io.TFRecordOptions(compression_type="GZIP" if gzip else "")
    for n in range(1, num_files + 1):
        path = out_dir / (f"pretraining_data_{n:02d}.tfrecord" + (".gz" if gzip else ""))
        with tf.io.TFRecordWriter(str(path), options=opts) as w:
            for _ in range(per_file):
                ex = random_example(rng, vocab_size, seq_length, max_pred)
                feats = {}
                for k, v in ex.items():
                    if v.dtype == np.float32:
                        feats[k] = tf.train.Feature(float_list=tf.train.FloatList(value=v.tolist()))
                    else:
                        feats[k] = tf.train.Feature(int64_list=tf.train.Int64List(value=v.tolist()))
                w.write(tf.train.Example(features=tf.train.Features(feature=feats)).SerializeToString())
        paths.append(path)
    return paths


def stage_spec(vocab_size: int, arch: dict | None = None, runtime: dict | None = None,
               data: dict | None = None, **stage) -> dict:
    s = copy.deepcopy(TINY_STAGE)
    s.update(stage)
    return {"architecture": copy.deepcopy(arch or TINY_ARCH), "vocab_size": vocab_size, "stage": s,
            "data": copy.deepcopy(data or TINY_DATA), "runtime": copy.deepcopy(runtime or CPU_RUNTIME)}


def write_stage_config(path: Path, spec: dict) -> Path:
    from scripts.training.config import write_override

    write_override(spec, str(path))
    return path


def env() -> dict:
    e = dict(os.environ)
    e["PYTHONPATH"] = os.pathsep.join([str(ROOT), e.get("PYTHONPATH", "")])
    e.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    e["CUDA_VISIBLE_DEVICES"] = ""
    return e


def run_module(module: str, *args, cwd: Path | None = None, check: bool = True,
               timeout: int = 600) -> subprocess.CompletedProcess:
    """``python -m <module> args`` with this interpreter (as a Snakemake rule runs it)."""
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=cwd or ROOT, env=env(),
                          text=True, capture_output=True, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"python -m {module} failed ({proc.returncode}):\n"
                             f"{proc.stdout[-3000:]}\n{proc.stderr[-8000:]}")
    return proc


def read_json(path: Path) -> dict:
    return json.loads(Path(path).read_text(encoding="utf-8"))


_CACHE: dict = {}
TINY_VOCAB = 1000


def tiny_stage1(tmp_path_factory) -> dict:
    """One CLI training run shared by the test modules of a session (do not modify its files).

    Vocabulary of 1000, 2 GZIP files x 160 examples (seq 64, 10 predictions), 20 steps of the tiny
    model with batch 32, checkpoints at steps 5, 15, 20 (Orbit saves after the first loop, then
    every ``checkpoint_interval``), mode ``train_and_eval``. ``stage_dir`` holds ``done.json``
    and the run directory ``model_dir`` (``run-<key16>/``, read from done.json) the checkpoints.
    """
    if "stage1" not in _CACHE:
        root = tmp_path_factory.mktemp("stage1")
        vocab = write_vocab(root / "vocab.txt", TINY_VOCAB)
        files = write_pretraining_data(root / "pretraining_data", vocab_size=TINY_VOCAB, num_files=2, per_file=160)
        cfg = write_stage_config(root / "cc-100.yaml", stage_spec(TINY_VOCAB, train_steps=20))
        pattern = str(root / "pretraining_data" / "pretraining_data_*.tfrecord.gz")
        stage_dir = root / "model" / "cc-100"
        t0 = time.monotonic()
        proc = run_module("scripts.training.model_garden", "--config", cfg, "--train-files", pattern, "--stage-dir",
                          stage_dir, "--threads", "2", "--mode", "train_and_eval", "--done", stage_dir / "done.json")
        model_dir = Path(read_json(stage_dir / "done.json")["run_dir"])
        _CACHE["stage1"] = {"root": root, "vocab": vocab, "files": files, "pattern": pattern, "cfg": cfg,
                            "stage_dir": stage_dir, "done": stage_dir / "done.json", "model_dir": model_dir,
                            "proc": proc, "wall": time.monotonic() - t0}
    return _CACHE["stage1"]
