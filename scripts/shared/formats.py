"""The files that pass between stages: their paths, and each format's reader beside its writer.

Every path pattern of the workflow is written here once (:data:`PATHS`); the rules and the stage
packages take them from here. The formats:

* **raw digest** ``corpus/<c>/raw.sha256.json`` (corpus stage; read by hf_model provenance):
  ``{"files": [{"path", "sha256", "size"}, ...]}``, one entry per raw input file, in read order.
* **sentence-per-line text** (``corpus.txt.gz``, ``corpus_NN.txt`` shards, the tokenizer sample):
  UTF-8, one sentence (or CC-100 paragraph) per line, a blank line between documents
  (:func:`iter_documents` / :func:`document_bytes`).
* **stats** ``*.stats.json`` (every data stage): one JSON object of counts and timings
  (:func:`write_stats` / :func:`read_stats`); :func:`is_timing_key` names the fields that vary
  between identical runs. A records' ``pretraining_data_NN.stats.json`` also holds the records'
  ``output_bytes`` and ``output_sha256`` (the digest training's run key uses).
* **pretraining records** ``pretraining_data_NN.tfrecord.gz``: gzip TFRecords of
  ``tf.train.Example`` with Model Garden's v2 BERT feature names (:func:`record_features`); framing
  and codec in :mod:`scripts.shared.tfrecord`.
* **done marker** ``model/<tok>/<arch>/training/<stage>/done.json`` (training stage): written last
  by a finished training job (:func:`write_done` / :func:`read_done`); names the ``run_key`` and
  the real ``checkpoint`` (under ``run_dir``), which the next stage and hf_model read from it
  (:mod:`scripts.training.runs`).
* **token shards** ``pretraining_data/<tok>/<c>/seq<L>/token_shard_NN.npy`` (+ ``.npy.stats.json``):
  packed MLM rows (:func:`read_token_shard`; :mod:`scripts.pretraining_data.token_shards`).
* **model directories** ``build/hf_model/<name>/`` (hf_model stage: weights, ``config.json``,
  tokenizer files, ``provenance.json``; read by evaluation) and ``hf_model/<name>/`` (release
  stage: the same files, hard-linked, plus ``README.md`` and ``card.json``, the model card and
  its facts).
* **vocabulary** ``tokenizers/<tok>/vocab.txt``: one token a line, id = line number;
  :func:`read_vocab` (its length is the model's vocab size). **alphabet**
  ``tokenizers/alphabet/<a>.txt``: one character a line (:func:`read_alphabet`).
"""

from __future__ import annotations

import json
import os
from types import SimpleNamespace
from typing import Iterable, Iterator

from scripts.shared.common import InputError, iter_lines, write_json

PATHS = SimpleNamespace(
    raw_digest="corpus/{corpus}/raw.sha256.json",
    wiki_text="corpus/{corpus}/corpus.txt.gz",
    wiki_stats="corpus/{corpus}/corpus.stats.json",
    shard="corpus/{corpus}/corpus_{shard}.txt",
    shard_stats="corpus/{corpus}/shards.stats.json",
    sample="corpus/{corpus}/corpus_sampled.txt",
    alphabet="tokenizers/alphabet/{alphabet}.txt",
    vocab="tokenizers/{tokenizer}/vocab.txt",
    vocab_stats="tokenizers/{tokenizer}/train.stats.json",
    records="pretraining_data/{tokenizer}/{corpus}/pretraining_data_{shard}.tfrecord.gz",
    records_stats="pretraining_data/{tokenizer}/{corpus}/pretraining_data_{shard}.stats.json",
    # MLM-only training data (RoBERTa FULL-SENTENCES rows, masked by the loader; see token_shard below)
    token_shard="pretraining_data/{tokenizer}/{corpus}/seq{seq}/token_shard_{shard}.npy",
    token_shard_stats="pretraining_data/{tokenizer}/{corpus}/seq{seq}/token_shard_{shard}.npy.stats.json",
    # SentencePiece tokenizers: the model beside vocab.txt, and the fast tokenizer (plain style)
    spm_model="tokenizers/{tokenizer}/spiece.model",
    tokenizer_json="tokenizers/{tokenizer}/tokenizer.json",
    stage_config="model/{tokenizer}/{arch}/training/{stage}.yaml",
    stage_done="model/{tokenizer}/{arch}/training/{stage}/done.json",
    stage_dir="{model_root}/{tokenizer}/{arch}/training/{stage}",
    run_dir="{stage_dir}/run-{key16}",
    # the same three for models with `backend: torch` (a model may share tokenizer and
    # architecture with a Model Garden one: the backend is part of the path)
    torch_stage_config="model/{tokenizer}/{arch}/training-torch/{stage}.yaml",
    torch_stage_done="model/{tokenizer}/{arch}/training-torch/{stage}/done.json",
    torch_stage_dir="{model_root}/{tokenizer}/{arch}/training-torch/{stage}",
    # the converted model (hf_model stage; evaluation reads it) and the released directory: the
    # converted files + the model card written after the evaluation (release stage)
    hf_build="build/hf_model/{model}",
    hf_model="hf_model/{model}",
    # evaluation (scripts/eval/summary.py describes the formats) and report plots
    jglue_run="eval/jglue/{model}/{task}/runs/{run}.json",
    jglue_metrics="eval/jglue/{model}/{task}/metrics.json",
    jglue_results_md="eval/jglue/results.md",
    jglue_results_json="eval/jglue/results.json",
    report_plot="plots/{name}.png",
    report_plot_data="plots/{name}.json",
    report_training="plots/training/{model}.png",
    report_training_data="plots/training/{model}.json",
    report_jglue="plots/jglue_results.html",
)

# Fields of *.stats.json that measure the run (time, memory, throughput), not the data.
TIMING_KEYS = frozenset({"seconds", "peak_rss_mb", "peak_rss_mb_by_phase", "threads", "wall_s", "cpu_s"})
TIMING_SUFFIXES = ("_seconds", "_per_s", "_per_cpu_s", "_per_thread", "_rss_mb", "_mb_by_phase")
TIMING_PREFIXES = ("peak_rss",)


def is_timing_key(key: str) -> bool:
    return key in TIMING_KEYS or key.endswith(TIMING_SUFFIXES) or key.startswith(TIMING_PREFIXES)


# ---------------------------------------------------------------------------------------------
# raw.sha256.json
# ---------------------------------------------------------------------------------------------


def write_raw_digest(path: str | os.PathLike, files: list[dict]) -> None:
    for f in files:
        if set(f) != {"path", "sha256", "size"}:
            raise ValueError(f"raw digest entry must have path, sha256, size: {f}")
    write_json(path, {"files": files})


def read_raw_digest(path: str | os.PathLike) -> list[dict]:
    """The digested files, in read order (also reads the single-file form of earlier versions)."""
    obj = _read_json(path)
    if "files" in obj:
        return obj["files"]
    if {"path", "sha256", "size"} <= set(obj):
        return [{k: obj[k] for k in ("path", "sha256", "size")}]
    raise InputError(str(path), "not a raw digest (no 'files')")


# ---------------------------------------------------------------------------------------------
# Sentence-per-line text
# ---------------------------------------------------------------------------------------------


def document_bytes(sentences: Iterable[str]) -> bytes:
    """One document: its lines, then the blank line that ends it."""
    return "".join(f"{s}\n" for s in sentences).encode("utf-8") + b"\n"


def iter_documents(path: str | os.PathLike) -> Iterator[list[str]]:
    """The documents of a sentence-per-line file (plain or compressed), as lists of lines."""
    doc: list[str] = []
    for line in iter_lines(path):
        if line:
            doc.append(line)
        elif doc:
            yield doc
            doc = []
    if doc:
        yield doc


# ---------------------------------------------------------------------------------------------
# *.stats.json
# ---------------------------------------------------------------------------------------------


def write_stats(path: str | os.PathLike, stats: dict) -> None:
    write_json(path, stats)


def read_stats(path: str | os.PathLike) -> dict:
    return _read_json(path)


def data_fields(stats: dict) -> dict:
    """The stats without the fields that measure the run (for byte-identity comparisons)."""
    out = {}
    for k, v in stats.items():
        if is_timing_key(k):
            continue
        out[k] = data_fields(v) if isinstance(v, dict) else v
    return out


# ---------------------------------------------------------------------------------------------
# Pretraining records
# ---------------------------------------------------------------------------------------------

SEQ_FEATURES = ("input_word_ids", "input_mask", "input_type_ids")
PRED_FEATURES = ("masked_lm_positions", "masked_lm_ids", "masked_lm_weights")
NSP_FEATURE = "next_sentence_labels"


def record_features(seq_length: int, max_predictions: int, vocab_size: int) -> list[tuple[str, str, int, int]]:
    """``[(name, kind, length, max_value)]`` of one record (Model Garden v2 BERT names)."""
    L, P = seq_length, max_predictions
    return [
        ("input_word_ids", "int64", L, vocab_size - 1),
        ("input_mask", "int64", L, 1),
        ("input_type_ids", "int64", L, 1),
        ("masked_lm_positions", "int64", P, L - 1),
        ("masked_lm_ids", "int64", P, vocab_size - 1),
        ("masked_lm_weights", "float", P, 0),
        (NSP_FEATURE, "int64", 1, 1),
    ]


# ---------------------------------------------------------------------------------------------
# Token shards (MLM-only training data; written by scripts.pretraining_data.token_shards)
# ---------------------------------------------------------------------------------------------

TOKEN_SHARD_FORMAT = "bertja-token-shard-1"


def token_shard_stats_path(path: str | os.PathLike) -> str:
    """The stats file beside a token shard (``X.npy`` -> ``X.npy.stats.json``)."""
    return f"{os.fspath(path)}.stats.json"


def read_token_shard(path: str | os.PathLike):
    """``(rows, meta)``: the shard's ``(sequences, seq_length)`` array, memory-mapped (token ids with
    the "continues a word" bit ``meta["continuation_bit"]``), and its stats (the format's facts)."""
    import numpy as np

    meta = read_stats(token_shard_stats_path(path))
    if meta.get("format") != TOKEN_SHARD_FORMAT:
        raise InputError(str(path), f"not a {TOKEN_SHARD_FORMAT} token shard (stats format {meta.get('format')!r})")
    try:
        rows = np.load(os.fspath(path), mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(str(path), f"cannot map the token shard: {e}") from None
    if rows.ndim != 2 or rows.shape[1] != meta["seq_length"] or str(rows.dtype) != meta["dtype"]:
        raise InputError(str(path), f"array {rows.dtype}{list(rows.shape)} does not match its stats "
                                    f"({meta['dtype']}, seq_length {meta['seq_length']})")
    return rows, meta


# ---------------------------------------------------------------------------------------------
# done.json
# ---------------------------------------------------------------------------------------------

DONE_KEYS = ("final_step", "checkpoint", "model_dir", "run_key")


def write_done(path: str | os.PathLike, info: dict) -> None:
    missing = [k for k in DONE_KEYS if k not in info]
    if missing:
        raise ValueError(f"done.json needs {missing}")
    write_json(path, info)


def read_done(path: str | os.PathLike) -> dict:
    info = _read_json(path)
    missing = [k for k in DONE_KEYS if k not in info]
    if missing:
        raise InputError(str(path), f"not a done marker: missing {', '.join(missing)}")
    return info


# ---------------------------------------------------------------------------------------------
# vocab.txt and the alphabet
# ---------------------------------------------------------------------------------------------


def read_vocab(path: str | os.PathLike) -> list[str]:
    """The tokens of a ``vocab.txt`` in id order (one a line; a token may be a single space)."""
    try:
        with open(path, encoding="utf-8", newline="\n") as fh:
            tokens = [line[:-1] if line.endswith("\n") else line for line in fh]
    except FileNotFoundError:
        raise InputError(str(path), "vocabulary not found") from None
    except UnicodeDecodeError as e:
        raise InputError(str(path), f"vocabulary is not UTF-8 ({e.reason})") from None
    if not tokens:
        raise InputError(str(path), "empty vocabulary")
    return tokens


def read_alphabet(path: str | os.PathLike) -> list[str]:
    """An alphabet file: one character a line (a line may be a single space), no duplicates."""
    chars: list[str] = []
    seen: set[str] = set()
    for lineno, text in iter_lines(path):
        if len(text) != 1:
            raise InputError(path, f"expected exactly one character, got {text!r}", lineno)
        if text in seen:
            raise InputError(path, f"duplicate character {text!r}", lineno)
        seen.add(text)
        chars.append(text)
    if not chars:
        raise InputError(path, "empty alphabet")
    return chars


def _read_json(path) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except FileNotFoundError:
        raise InputError(str(path), "not found") from None
    except json.JSONDecodeError as e:
        raise InputError(str(path), f"invalid JSON at line {e.lineno}: {e.msg}") from None
    if not isinstance(obj, dict):
        raise InputError(str(path), "expected a JSON object")
    return obj
