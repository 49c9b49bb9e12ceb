"""Split corpora into document-level shards ``corpus_01.txt`` … ``corpus_NN.txt``.

Usage::

    python -m scripts.corpus.shard --input FILE [FILE ...] --format cc100|sentences \\
        --output-dir corpus/<c> --num-shards N [--seed S] [--stats corpus/<c>/shards.stats.json] \\
        [--split-sentences | --no-split-sentences] [--min-sentence-length L] \\
        [--max-sentence-length L] [--threads N]

Both formats hold one line per paragraph (``cc100``, raw CC-100) or per sentence (``sentences``,
the cleaned Wikipedia corpus), with documents separated by a blank line.  Inputs are read in the
order given (``.xz``/``.gz``/plain, streamed); a document never spans two input files.

* ``cc100``: every line goes through :func:`scripts.corpus.textclean.clean_paragraph` (NFKC, control and
  non-printable characters dropped, whitespace collapsed; optional MeCab sentence split and length
  filters, 0 = no limit).
* ``sentences``: lines are copied as they are.

Parallelism: the main process only decompresses and cuts the stream into blocks of whole lines
(~1 MB, :func:`scripts.shared.common.read_blocks`); ``--threads`` worker processes decode, clean and split them into
per-document pieces of output bytes, through a bounded, ordered map; the main process then draws
a shard per document and writes the pieces.  Shards are identical for every thread count.

Assignment: each document that has at least one surviving line is sent whole to one shard drawn
with ``random.Random(seed).randrange(num_shards)`` (one draw per written document, in input
order), like the recipe's ``merge_split_corpora.py`` but seeded per run.  *Decision:* the
standard-library Mersenne Twister is used because its stream is stable across Python and numpy
versions, so a seed names the same shards everywhere.  Each shard is UTF-8 with LF line ends:
lines of a document, then one blank line; never a leading blank line.  Memory is bounded by
a few blocks per worker (documents are not buffered).

Stats (``--stats``): ``documents`` (written), ``documents_per_shard``, ``lines_per_shard``,
``lines_in`` (every line read, skipped ones included) / ``lines_written``, ``lines_dropped`` by reason (``empty`` after cleaning,
``too_short``, ``too_long``), ``documents_empty_after_cleaning``, ``skipped`` by reason, bytes in
and out, ``seconds``, the seed and settings.

Bad input: a line with invalid UTF-8 or with NUL bytes is skipped, counted (``bad_utf8_lines``,
``nul_lines``) and logged with file:line; CRLF line ends are accepted.  A truncated archive raises
:class:`~scripts.shared.common.InputError`.  If any shard would be empty (too few documents for
``--num-shards``) an :class:`~scripts.shared.common.InputError` says how many documents were found; an
empty or blank-only input says that the input is empty, and one where nothing survives the
cleaning says so with the drop counts.  In
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

from scripts.shared.common import AtomicFiles, InputError, Progress, ordered_map, read_blocks, run_cli, write_json
from scripts.corpus.textclean import SentenceSplitter, SkipLog, clean_paragraph

LOG = logging.getLogger("bertja.corpus_shard")

BLOCK_BYTES = 1 << 20  # uncompressed bytes of whole lines per worker task
FORMATS = ("cc100", "sentences")


def shard_name(i: int) -> str:
    """File name of shard ``i`` (1-based): ``corpus_01.txt``."""
    return f"corpus_{i:02d}.txt"


_WORKER: dict = {}


def _init_worker(fmt: str, split: bool, min_length: int, max_length: int) -> None:
    _WORKER["fmt"] = fmt
    _WORKER["splitter"] = SentenceSplitter() if (fmt == "cc100" and split) else None
    _WORKER["min"], _WORKER["max"] = min_length, max_length


def _decode_lines(block: bytes, first: int, skips: list, stats: Counter) -> list:
    """The block's lines as ``(line_number, text)`` pairs, CR stripped; a line with NUL bytes or
    invalid UTF-8 is left out and recorded in ``skips`` as ``(reason, line_number, detail)``."""
    if b"\0" not in block:
        try:
            lines = block.decode("utf-8").split("\n")
        except UnicodeDecodeError:
            lines = None
        else:
            if lines[-1] == "":
                lines.pop()
            return list(enumerate((line.rstrip("\r") for line in lines), first))
    raw_lines = block.split(b"\n")
    if raw_lines[-1] == b"":
        raw_lines.pop()
    out = []
    for lineno, raw in enumerate(raw_lines, first):
        if b"\0" in raw:
            stats["nul_bytes"] += raw.count(b"\0")
            skips.append(("nul_lines", lineno, "line contains NUL bytes"))
            continue
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            skips.append(("bad_utf8_lines", lineno, f"invalid UTF-8 at byte {e.start} ({e.reason})"))
            continue
        out.append((lineno, text.rstrip("\r")))
    return out


def _clean_block(task) -> tuple[str, list, dict, list, int, int]:
    """Clean one block of lines into document pieces.

    ``task``: ``(path, first line number, bytes, ends_input)``; the end of an input ends its last
    document. Returns ``(path, pieces, dropped, skips, lines, nul_bytes)``: each piece is ``(text,
    n_lines, raw_seen, ends)`` -- the UTF-8 output lines of one document within this block, how
    many, whether any input line of the document was seen (even if cleaned away), and whether
    the document ends here (else it goes on in the next block).
    """
    path, first, block, ends_input = task
    fmt, splitter = _WORKER["fmt"], _WORKER["splitter"]
    lo, hi = _WORKER["min"], _WORKER["max"]
    skips: list = []
    stats: Counter = Counter()
    dropped: Counter = Counter()
    lines = _decode_lines(block, first, skips, stats)
    pieces = []
    out: list[str] = []
    raw_seen = False
    for _, line in lines:
        if line == "":
            pieces.append((("\n".join(out) + "\n").encode("utf-8") if out else b"", len(out), raw_seen, True))
            out, raw_seen = [], False
            continue
        raw_seen = True
        if fmt == "sentences":
            out.append(line)
        else:
            out.extend(clean_paragraph(line, splitter, lo, hi, dropped))
    if out or raw_seen or ends_input:
        pieces.append((("\n".join(out) + "\n").encode("utf-8") if out else b"", len(out), raw_seen, ends_input))
    n_lines = block.count(b"\n") + (bool(block) and not block.endswith(b"\n"))
    return path, pieces, dict(dropped), skips, n_lines, stats["nul_bytes"]


def _blocks(inputs, counters: Counter, progress: Progress | None = None):
    """``_clean_block`` tasks: all inputs' blocks in order, and an empty one that ends each input
    (a document never spans two inputs)."""
    for path in inputs:
        if not os.path.exists(path):
            raise InputError(path, "input not found")
        LOG.info("reading %s", path)
        for first, block in read_blocks(path, BLOCK_BYTES):
            counters["bytes_in_uncompressed"] += len(block)
            if progress is not None:
                progress.update(0, len(block))
            yield path, first, block, False
        yield path, 0, b"", True


def _no_documents(lines_in: int, dropped: Counter, skipped: Counter) -> str:
    """Why no document was written: an empty or blank-only input, or everything skipped or
    cleaned away."""
    if lines_in == 0:
        return "the input is empty (no lines): nothing to shard"
    if skipped:
        return (f"no document: {lines_in:,} lines read, skipped: {dict(sorted(skipped.items()))}, "
                f"dropped: {dict(sorted(dropped.items()))}: nothing to shard")
    if set(dropped) <= {"empty"}:
        return f"the input is empty: its {lines_in:,} line(s) are all blank (no text): nothing to shard"
    return (f"no document survived cleaning ({lines_in:,} lines read, dropped: "
            f"{dict(sorted(dropped.items()))}): nothing to shard")


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
    results = ordered_map(_clean_block, _blocks(inputs, counters, progress), threads, _init_worker,
                          (fmt, split_sentences, min_length, max_length))
    paths = [os.path.join(output_dir, shard_name(i + 1)) for i in range(num_shards)]
    with AtomicFiles() as af:
        files = [af.open(p, "wb", buffering=1 << 20) for p in paths]
        cur = None        # shard of the current document, drawn at its first output line
        raw_in_doc = False
        for path, pieces, counts, skips, n_lines, nul in results:
            dropped.update(counts)
            counters["lines_in"] += n_lines
            counters["nul_bytes"] += nul
            progress.update(n_lines)
            for reason, lineno, detail in skips:
                skip(reason, path, lineno, detail)
            for text, n_out, raw_seen, ends in pieces:
                raw_in_doc |= raw_seen
                if n_out:
                    if cur is None:
                        cur = rng.randrange(num_shards)
                    files[cur].write(text)
                    lines_per_shard[cur] += n_out
                    bytes_per_shard[cur] += len(text)
                if ends:  # a blank line or the end of an input
                    if cur is not None:
                        files[cur].write(b"\n")
                        bytes_per_shard[cur] += 1
                        docs_per_shard[cur] += 1
                        cur = None
                    elif raw_in_doc:
                        counters["documents_empty_after_cleaning"] += 1
                    raw_in_doc = False
        documents = sum(docs_per_shard)
        empty = [shard_name(i + 1) for i, n in enumerate(docs_per_shard) if n == 0]
        if documents == 0:
            raise InputError(", ".join(inputs), _no_documents(counters["lines_in"], dropped, skip.counts))
        if empty:
            raise InputError(", ".join(inputs),
                             f"found {documents:,} documents but {num_shards} shards were requested "
                             f"({len(empty)} shard(s) would be empty, e.g. {empty[0]}); lower "
                             f"num_shards")
    skips = dict(skip.counts)
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
        "mb_per_s": round(counters["bytes_in_uncompressed"] / 1e6 / max(seconds, 1e-9), 2),
    }
    if stats_path:
        write_json(stats_path, stats)
    LOG.info("built %d shards in %s: %s documents, %s lines (%s lines read, %s skipped; %.1f s, %.1f MB/s)",
             num_shards, output_dir, f"{documents:,}", f"{stats['lines_written']:,}",
             f"{stats['lines_in']:,}", f"{stats['skipped_total']:,}", seconds, stats["mb_per_s"])
    return stats


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.corpus.shard",
                                description=__doc__.split("\n")[0])
    p.add_argument("--input", nargs="+", action="extend", required=True,
                   help="input corpus (.xz/.gz/plain); several (or a repeated --input): read in order")
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
