"""What the report plots, read from the files earlier stages leave behind (plain data, no plots).

* **Training curves**: the TensorBoard event files under the directory of a stage's
  checkpoints (``train/``, ``validation/``), read by :mod:`scripts.training.events`. The
  directory is the one holding the checkpoint that the stage's ``done.json`` names.
* **Corpora**: ``corpus.stats.json`` (Wikipedia cleaning: pages, sentences, skips by reason) and
  ``shards.stats.json`` (documents, lines, per-shard counts, skips by reason) of each corpus; the
  length histogram (characters per line) is counted from the shards themselves (the stats carry
  none), at most ``max_lines`` lines per shard.
* **Tokenizers**: each ``vocab.txt`` sorted into kinds (special, ``[unusedN]``, single
  characters, ``##`` + one character, words, ``##`` subwords); ``train.stats.json`` where the
  tokenizer was trained; the ``[UNK]`` rate and tokens per instance from the
  ``pretraining_data_NN.stats.json`` of each (tokenizer, corpus).
* **Runtime and memory**: Snakemake's benchmark TSVs (``s``, ``max_rss`` in MB, ...) matched to
  their rules by the rules' benchmark patterns.
"""

from __future__ import annotations

import csv
import glob
import json
import os
import re
from collections import Counter

from scripts.shared.common import InputError, iter_lines
# The event-file reader is the training stage's (the model card reads the same files).
from scripts.training.events import TRAIN_TAGS, VALID_TAGS, read_events, stage_event_dir  # noqa: F401


# ---------------------------------------------------------------------------------------------
# TensorBoard events
# ---------------------------------------------------------------------------------------------


def training_curves(stages: list[tuple[str, str]]) -> list[dict]:
    """Per stage (name, done.json): ``{stage, dir, train: {tag: points}, validation: {...}}``."""
    out = []
    for name, done in stages:
        d = stage_event_dir(done)
        out.append({"stage": name, "dir": d, "train": read_events(os.path.join(d, "train")),
                    "validation": read_events(os.path.join(d, "validation"))})
    return out


# ---------------------------------------------------------------------------------------------
# Corpora
# ---------------------------------------------------------------------------------------------


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(path, f"cannot read: {e}") from None


def corpus_summary(name: str, shard_stats: str, wiki_stats: str | None = None) -> dict:
    """Counts and skip reasons of one corpus (its cleaning stats, when it has them, and shards)."""
    sh = _read_json(shard_stats)
    out = {"corpus": name, "documents": sh.get("documents", 0), "lines": sh.get("lines_written", 0),
           "num_shards": sh.get("num_shards"), "documents_per_shard": sh.get("documents_per_shard", []),
           "skipped": {}}
    skipped: Counter = Counter()
    for k, v in (sh.get("skipped") or {}).items():
        skipped[f"shards: {k}"] += v
    for k, v in (sh.get("lines_dropped") or {}).items():
        skipped[f"lines dropped: {k}"] += v
    if sh.get("documents_empty_after_cleaning"):
        skipped["documents empty after cleaning"] += sh["documents_empty_after_cleaning"]
    if wiki_stats:
        w = _read_json(wiki_stats)
        out.update(pages_read=w.get("pages_read", 0), pages_written=w.get("pages_written", 0),
                   sentences=w.get("sentences_written", 0))
        for k, v in (w.get("skipped") or {}).items():
            skipped[f"pages skipped: {k}"] += v
        for k, v in (w.get("sentences_dropped") or {}).items():
            skipped[f"sentences dropped: {k}"] += v
        if w.get("pages_empty_after_cleaning"):
            skipped["pages empty after cleaning"] += w["pages_empty_after_cleaning"]
    out["skipped"] = dict(sorted(skipped.items()))
    return out


def line_lengths(paths: list[str], max_lines: int = 0) -> list[int]:
    """Characters per non-empty line of the shards (``max_lines`` > 0: at most that many per shard)."""
    out = []
    for p in paths:
        n = 0
        for _, line in iter_lines(p):
            if not line:
                continue
            out.append(len(line))
            n += 1
            if max_lines and n >= max_lines:
                break
    return out


# ---------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------

VOCAB_KINDS = ("special", "unused", "character", "##character", "word", "##subword")


def vocab_kinds(vocab_path: str) -> dict[str, int]:
    counts = Counter({k: 0 for k in VOCAB_KINDS})
    with open(vocab_path, encoding="utf-8") as fh:
        for line in fh:
            tok = line.rstrip("\n")
            if re.fullmatch(r"\[unused\d+\]", tok):
                counts["unused"] += 1
            elif re.fullmatch(r"\[[A-Z]+\]", tok):
                counts["special"] += 1
            elif tok.startswith("##"):
                counts["##character" if len(tok) == 3 else "##subword"] += 1
            else:
                counts["character" if len(tok) == 1 else "word"] += 1
    return dict(counts)


def pretraining_summary(stats_paths: list[str]) -> dict:
    """Token-weighted ``[UNK]`` rate and mean tokens per instance over a corpus's shards."""
    tokens = unk = instances = inst_tokens = 0
    for p in stats_paths:
        s = _read_json(p)
        tokens += s.get("tokens", 0)
        unk += s.get("unk_tokens", 0)
        instances += s.get("instances", 0)
        inst_tokens += s.get("instance_tokens", 0)
    return {"shards": len(stats_paths), "tokens": tokens, "unk_rate": unk / tokens if tokens else 0.0,
            "instances": instances, "mean_tokens_per_instance": inst_tokens / instances if instances else 0.0}


# ---------------------------------------------------------------------------------------------
# Benchmarks
# ---------------------------------------------------------------------------------------------


def pattern_regex(pattern: str) -> re.Pattern:
    """A benchmark path pattern (``logs/benchmarks/x/{a}/{b,\\d{2,3}}.tsv``: wildcards, maybe
    with constraints that hold braces themselves) as a regex; a wildcard matches one path part."""
    out, i, n = [], 0, len(pattern)
    while i < n:
        if pattern[i] == "{":
            depth, j = 1, i + 1
            while j < n and depth:
                depth += {"{": 1, "}": -1}.get(pattern[j], 0)
                j += 1
            out.append("[^/]+")
            i = j
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("^" + "".join(out) + "$")


def read_benchmarks(patterns: dict[str, str], root: str = "logs/benchmarks") -> list[dict]:
    """One row per benchmark file: ``{rule, path, s, max_rss}`` (a file no pattern matches is
    attributed to its directory)."""
    regexes = sorted(((r, pattern_regex(p)) for r, p in patterns.items()), key=lambda x: -len(x[1].pattern))
    rows = []
    for path in sorted(glob.glob(os.path.join(root, "**", "*.tsv"), recursive=True)):
        rel = os.path.relpath(path)
        rule = next((r for r, rx in regexes if rx.match(rel)), os.path.dirname(os.path.relpath(path, root)))
        with open(path, encoding="utf-8") as fh:
            recs = list(csv.DictReader(fh, delimiter="\t"))
        if not recs:
            continue
        last = recs[-1]

        def num(key):
            try:
                return float(last.get(key, "nan"))
            except ValueError:
                return float("nan")

        rows.append({"rule": rule, "path": rel, "s": num("s"), "max_rss": num("max_rss")})
    return rows


def per_rule(rows: list[dict]) -> list[dict]:
    """``{rule, jobs, total_s, max_s, max_rss}`` per rule, longest total first."""
    agg: dict[str, dict] = {}
    for r in rows:
        a = agg.setdefault(r["rule"], {"rule": r["rule"], "jobs": 0, "total_s": 0.0, "max_s": 0.0, "max_rss": 0.0})
        a["jobs"] += 1
        if r["s"] == r["s"]:
            a["total_s"] += r["s"]
            a["max_s"] = max(a["max_s"], r["s"])
        if r["max_rss"] == r["max_rss"]:
            a["max_rss"] = max(a["max_rss"], r["max_rss"])
    return sorted(agg.values(), key=lambda a: -a["total_s"])
