"""Split corpora into document-level shards ``corpus_01.txt`` … ``corpus_NN.txt``.

Usage::

    python -m scripts.corpus_shard --input FILE [--input FILE ...] --format cc100|sentences \\
        --output-dir corpus/<c> --num-shards N [--seed S] [--stats corpus/<c>/shards.stats.json] \\
        [--split-sentences | --no-split-sentences] [--min-sentence-length L] \\
        [--max-sentence-length L] [--threads N]

Both formats hold one line per paragraph (``cc100``, raw CC-100) or per sentence (``sentences``,
the cleaned Wikipedia corpus), with documents separated by a blank line.  Inputs are read in the
order given (``.xz``/``.gz``/plain, streamed); a document never spans two input files.

* ``cc100``: every line goes through :func:`scripts.textclean.clean_paragraph` (NFKC, control and
  non-printable characters dropped, whitespace collapsed; optional MeCab sentence split and length
  filters, 0 = no limit).  Cleaning runs in ``--threads`` processes through a bounded, ordered
  map, so shards are identical for every thread count.
* ``sentences``: lines are copied as they are.

Assignment: each document that has at least one surviving line is sent whole to one shard drawn
with ``random.Random(seed).randrange(num_shards)`` (one draw per written document, in input
order), like the recipe's ``merge_split_corpora.py`` but seeded per run.  *Decision:* the
standard-library Mersenne Twister is used because its stream is stable across Python and numpy
versions, so a seed names the same shards everywhere.  Each shard is UTF-8 with LF line ends:
lines of a document, then one blank line; never a leading blank line.  Memory is bounded by one
chunk of lines per worker (documents are not buffered).

Stats (``--stats``): ``documents`` (written), ``documents_per_shard``, ``lines_per_shard``,
``lines_in`` / ``lines_written``, ``lines_dropped`` by reason (``empty`` after cleaning,
``too_short``, ``too_long``), ``documents_empty_after_cleaning``, ``skipped`` by reason, bytes in
and out, ``seconds``, the seed and settings.

Bad input: a line with invalid UTF-8 or with NUL bytes is skipped, counted (``bad_utf8_lines``,
``nul_lines``) and logged with file:line; CRLF line ends are accepted.  A truncated archive raises
:class:`~scripts.common.InputError`.  If any shard would be empty (too few documents for
``--num-shards``) an :class:`~scripts.common.InputError` says how many documents were found.  In
every error case no shard is left behind: all shards are written under temporary names and
renamed together only on success.  Whitespace-only lines are not document separators; in
``cc100`` they clean to nothing and are dropped.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import time
from collections import Counter

from scripts.common import AtomicFiles, InputError, chunked, Progress, iter_lines, run_cli, write_json
from scripts.textclean import SentenceSplitter, SkipLog, clean_paragraph, ordered_map

LOG = logging.getLogger("bertja.corpus_shard")

CHUNK_LINES = 4096
CHUNK_CHARS = 1 << 21
FORMATS = ("cc100", "sentences")


def shard_name(i: int) -> str:
    """File name of shard ``i`` (1-based): ``corpus_01.txt``."""
    return f"corpus_{i:02d}.txt"


def iter_raw_lines(inputs, skip: SkipLog, counters: Counter, progress: Progress | None = None):
    """Yield each input line as a string, and ``None`` at a document boundary (a blank line and
    the end of every input)."""
    for path in inputs:
        if not os.path.exists(path):
            raise InputError(path, "input not found")
        LOG.info("reading %s", path)
        io_stats: dict = {}
        nul_seen = 0
        n_lines = n_bytes = 0  # progress is updated in batches: this loop runs per line
        for lineno, line in iter_lines(path, on_bad_utf8="skip", stats=io_stats):
            n_lines += 1
            n_bytes += len(line.encode("utf-8")) + 1
            if n_lines == 4096:
                counters["lines_in"] += n_lines
                counters["bytes_in_uncompressed"] += n_bytes
                if progress is not None:
                    progress.update(n_lines, n_bytes)
                n_lines = n_bytes = 0
            nul = io_stats.get("nul_bytes", 0)
            if nul != nul_seen:
                nul_seen = nul
                skip("nul_lines", path, lineno, "line contains NUL bytes")
                continue
            yield None if line == "" else line
        counters["lines_in"] += n_lines
        counters["bytes_in_uncompressed"] += n_bytes
        if progress is not None:
            progress.update(n_lines, n_bytes)
        counters["bad_utf8_lines"] += io_stats.get("bad_utf8_lines", 0)
        counters["nul_bytes"] += io_stats.get("nul_bytes", 0)
        yield None


def _chunks(items, max_lines: int = 0, max_chars: int = 0):
    return chunked(items, max_lines or CHUNK_LINES, max_chars or CHUNK_CHARS,
                   size=lambda item: len(item) if item is not None else 0)


_WORKER: dict = {}


def _init_worker(fmt: str, split: bool, min_length: int, max_length: int) -> None:
    _WORKER["fmt"] = fmt
    _WORKER["splitter"] = SentenceSplitter() if (fmt == "cc100" and split) else None
    _WORKER["min"], _WORKER["max"] = min_length, max_length


def _clean_chunk(chunk) -> tuple[list, dict]:
    """Per item: ``None`` (document boundary) or the list of output lines for that input line."""
    if _WORKER["fmt"] == "sentences":
        return [None if item is None else [item] for item in chunk], {}
    counts: Counter = Counter()
    splitter, lo, hi = _WORKER["splitter"], _WORKER["min"], _WORKER["max"]
    out = [None if item is None else clean_paragraph(item, splitter, lo, hi, counts)
           for item in chunk]
    return out, dict(counts)


def shard_corpus(inputs, output_dir, num_shards: int, *, fmt: str = "cc100", seed: int = 0,
                 stats_path=None, split_sentences: bool = False, min_length: int = 0,
                 max_length: int = 0, threads: int = 1) -> dict:
    """Write ``num_shards`` shards of ``inputs`` into ``output_dir``; return (and write) stats."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r} (expected one of {FORMATS})")
    if num_shards < 1:
        raise ValueError("num_shards must be >= 1")
    t0 = time.monotonic()
    inputs = [str(p) for p in inputs]
    skip = SkipLog(LOG)
    counters: Counter = Counter()
    dropped: Counter = Counter()
    docs_per_shard = [0] * num_shards
    lines_per_shard = [0] * num_shards
    bytes_per_shard = [0] * num_shards
    rng = random.Random(seed)
    progress = Progress(f"corpus_shard {', '.join(inputs)}", unit="lines")
    items = iter_raw_lines(inputs, skip, counters, progress)
    workers = threads if fmt == "cc100" else 1
    results = ordered_map(_clean_chunk, _chunks(items), workers, _init_worker,
                          (fmt, split_sentences, min_length, max_length))
    paths = [os.path.join(output_dir, shard_name(i + 1)) for i in range(num_shards)]
    with AtomicFiles() as af:
        files = [af.open(p, "w", encoding="utf-8", newline="\n", buffering=1 << 20) for p in paths]
        cur = None        # shard of the current document, drawn at its first output line
        raw_in_doc = False
        for out, counts in results:
            dropped.update(counts)
            for lines in out:
                if lines is None:
                    if cur is not None:
                        files[cur].write("\n")
                        bytes_per_shard[cur] += 1
                        docs_per_shard[cur] += 1
                        cur = None
                    elif raw_in_doc:
                        counters["documents_empty_after_cleaning"] += 1
                    raw_in_doc = False
                    continue
                raw_in_doc = True
                if not lines:
                    continue
                if cur is None:
                    cur = rng.randrange(num_shards)
                text = "\n".join(lines) + "\n"
                files[cur].write(text)
                lines_per_shard[cur] += len(lines)
                bytes_per_shard[cur] += len(text.encode("utf-8"))
        documents = sum(docs_per_shard)
        empty = [shard_name(i + 1) for i, n in enumerate(docs_per_shard) if n == 0]
        if empty:
            raise InputError(", ".join(inputs),
                             f"found {documents:,} documents but {num_shards} shards were requested "
                             f"({len(empty)} shard(s) would be empty, e.g. {empty[0]}); lower "
                             f"num_shards")
    skips = dict(skip.counts)
    if counters["bad_utf8_lines"]:
        skips["bad_utf8_lines"] = counters["bad_utf8_lines"]
    seconds = time.monotonic() - t0
    stats = {
        "inputs": inputs,
        "format": fmt,
        "output_dir": str(output_dir),
        "num_shards": num_shards,
        "seed": seed,
        "settings": {"split_sentences": split_sentences, "min_sentence_length": min_length,
                     "max_sentence_length": max_length, "threads": threads},
        "documents": documents,
        "documents_empty_after_cleaning": counters["documents_empty_after_cleaning"],
        "documents_per_shard": docs_per_shard,
        "lines_in": counters["lines_in"],
        "lines_written": sum(lines_per_shard),
        "lines_per_shard": lines_per_shard,
        "lines_dropped": dict(sorted(dropped.items())),
        "skipped": dict(sorted(skips.items())),
        "skipped_total": sum(skips.values()),
        "nul_bytes": counters["nul_bytes"],
        "bytes_in": sum(os.path.getsize(p) for p in inputs),
        "bytes_in_uncompressed": counters["bytes_in_uncompressed"],
        "bytes_out": sum(bytes_per_shard),
        "seconds": round(seconds, 3),
    }
    if stats_path:
        write_json(stats_path, stats)
    LOG.info("built %d shards in %s: %s documents, %s lines (%s lines read, %s skipped; %.1f s)",
             num_shards, output_dir, f"{documents:,}", f"{stats['lines_written']:,}",
             f"{stats['lines_in']:,}", f"{stats['skipped_total']:,}", seconds)
    return stats


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.corpus_shard",
                                description=__doc__.split("\n")[0])
    p.add_argument("--input", action="append", required=True,
                   help="input corpus (.xz/.gz/plain); repeat for several, read in order")
    p.add_argument("--format", choices=FORMATS, required=True,
                   help="cc100: raw paragraphs, cleaned; sentences: already clean, copied")
    p.add_argument("--output-dir", required=True)
    p.add_argument("--num-shards", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stats", help="stats JSON to write")
    p.add_argument("--split-sentences", action=argparse.BooleanOptionalAction, default=False,
                   help="cc100 only: split paragraphs into sentences with MeCab (default: no)")
    p.add_argument("--min-sentence-length", type=int, default=0, help="cc100 only; 0: no limit")
    p.add_argument("--max-sentence-length", type=int, default=0, help="cc100 only; 0: no limit")
    p.add_argument("--threads", type=int, default=1, help="cleaning processes (cc100)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.num_shards < 1:
        raise SystemExit("--num-shards must be >= 1")
    if args.threads < 1:
        raise SystemExit("--threads must be >= 1")
    if args.min_sentence_length < 0 or args.max_sentence_length < 0:
        raise SystemExit("sentence length limits must be >= 0")
    shard_corpus(args.input, args.output_dir, args.num_shards, fmt=args.format, seed=args.seed,
                 stats_path=args.stats, split_sentences=args.split_sentences,
                 min_length=args.min_sentence_length, max_length=args.max_sentence_length,
                 threads=args.threads)
    return 0


if __name__ == "__main__":
    run_cli(main)
