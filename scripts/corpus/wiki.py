"""Wikipedia CirrusSearch content dump(s) -> cleaned sentence-per-line corpus (``corpus.txt.gz``).

Usage::

    python -m scripts.corpus.wiki --input DUMP.json.gz [DUMP2.json.gz ...] \\
        --output corpus/<c>/corpus.txt.gz --stats corpus/<c>/corpus.stats.json \\
        [--mode recipe|project] [--min-sentence-length 10] [--max-sentence-length 200] \\
        [--split-sentences | --no-split-sentences] [--threads N] \\
        [--drop-disambiguation | --keep-disambiguation]

Several ``--input`` files (a dump in parts) are read in the order given, as one dump; a record
never spans two files.  The dump is the Elasticsearch bulk format: an action line
``{"index":{"_type":"_doc","_id":"…"}}`` followed by the page's JSON.  *Decision on action
types:* ``_type`` ``_doc`` (Elasticsearch 7+, every recent dump, e.g. 2023), a missing ``_type``
(typeless bulk format) and ``page`` (older dumps) are page records; an ``index`` action with any
other ``_type``, or a ``create``/``update`` action, is counted as ``non_page_action``, logged with
the action line's file:line and the page after it is skipped (its meaning is unknown, so its text
is not mixed into the corpus); a ``delete`` action (which has no page line) is counted the same
way.  The dump is streamed (never held in memory); pages go in chunks to ``--threads`` worker
processes through a bounded, ordered map, so the output is byte-identical for every thread count.

Cleaning (``--mode``):

* ``recipe``: :mod:`scripts.corpus.recipeclean`, the cleaning of the recipe's
  ``make_corpus_wiki.py`` rule for rule (the mode of the recipe corpora); disambiguation pages
  are kept, as the recipe keeps them (``--drop-disambiguation`` drops them).
* ``project`` (the default here): :mod:`scripts.corpus.textclean`, this project's cleaning and
  bracket-aware sentence splitter; disambiguation pages are dropped (``--keep-disambiguation``
  keeps them).

Each page's surviving sentences are written one per line followed by one blank line (a page with
no surviving sentence writes nothing).  The gzip output is deterministic: no file name and mtime
0 in the header, compression level 6.

Bad input policy (each counted by reason in the stats and logged with file:line, the first 20 of
each reason):

* a line that is not a JSON object -> ``bad_json``;
* a line with invalid UTF-8 -> ``bad_utf8_lines`` (the pairing of that record is dropped too);
* NUL bytes in a line are removed; the line is kept, counted (``nul_lines``, ``nul_bytes_removed``)
  and logged with file:line;
* a page line without a preceding action line -> ``page_without_action``; an action line not
  followed by a page -> ``action_without_page``; see above for ``non_page_action``;
* a page without a string ``text`` -> ``no_text``;
* *decisions:* a page whose ``namespace`` is present and not 0 -> ``non_article_namespace``; a
  disambiguation page (category 曖昧さ回避 or template Aimai) -> ``disambiguation`` (counted,
  not logged).

Stats (``--stats``): ``inputs``; ``lines_read``; ``pages_read`` (page lines seen); ``pages_cleaned``
(pages that reached the cleaning); ``pages_written``; ``pages_empty_after_cleaning``;
``sentences_written``; ``sentences_dropped`` by reason (``too_short``, ``too_long``, ``math``,
``empty``); ``skipped`` by reason and ``skipped_total``; ``bytes_in`` / ``bytes_out`` (files on
disk) and their ``_uncompressed`` counterparts; ``seconds``; the settings used.

A truncated or corrupt gzip raises :class:`~scripts.shared.common.InputError` and leaves no output; so
do a dump with zero usable pages and a dump where no sentence survives cleaning.
"""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import time
from collections import Counter
from typing import Iterator

from scripts.shared.common import InputError, Progress, atomic_path, chunked, iter_lines, ordered_map, run_cli, write_json
from scripts.corpus.recipeclean import RecipeSentenceSplitter, recipe_wiki_sentences
from scripts.corpus.textclean import SentenceSplitter, SkipLog, human_bytes, wiki_sentences

LOG = logging.getLogger("bertja.corpus_wiki")

CHUNK_PAGES = 128
CHUNK_CHARS = 1 << 21
GZIP_LEVEL = 6
_ACTIONS = ("index", "create", "update", "delete")
PAGE_TYPES = ("_doc", "page")  # index _type of a page record (besides no _type at all)
MODES = ("recipe", "project")
_DISAMBIGUATION_TEMPLATES = {"Template:Aimai", "Template:曖昧さ回避"}


def _is_action(obj: dict) -> bool:
    return len(obj) == 1 and next(iter(obj)) in _ACTIONS and isinstance(next(iter(obj.values())), dict)


def _is_disambiguation(page: dict) -> bool:
    cats = page.get("category") or []
    temps = page.get("template") or []
    return (isinstance(cats, list) and "曖昧さ回避" in cats) or \
        (isinstance(temps, list) and any(t in _DISAMBIGUATION_TEMPLATES for t in temps))


def _action_problem(op: str, meta: dict) -> str | None:
    """None for an action that introduces a page record, else what is wrong with it."""
    kind = meta.get("_type")
    if op == "index" and (kind is None or kind in PAGE_TYPES):
        return None
    if op != "index":
        return f"{op} action (only index actions carry pages)"
    return f"index action with _type {kind!r} (page records: {', '.join(PAGE_TYPES)} or no _type)"


def iter_pages(path, skip: SkipLog, counters: Counter, io_stats: dict,
               drop_disambiguation: bool = True, progress: Progress | None = None
               ) -> Iterator[tuple[str | None, str]]:
    """Yield ``(title, text)`` for every usable page of a CirrusSearch bulk dump."""
    pending: int | None = None  # line number of an action line waiting for its page
    problem: str | None = None  # why the pending action's page is not a page record
    prev = 0
    for lineno, line in iter_lines(path, on_bad_utf8="skip", stats=io_stats):
        counters["lines_read"] += 1
        nbytes = len(line.encode("utf-8")) + 1
        counters["bytes_in_uncompressed"] += nbytes
        if lineno != prev + 1:
            pending = None  # the skipped invalid-UTF-8 line broke this record; already counted
        prev = lineno
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except ValueError as e:
            obj, err = None, str(e)
        else:
            err = "not a JSON object"
        if not isinstance(obj, dict):
            skip("bad_json", path, lineno, err)
            pending = None
            continue
        if _is_action(obj):
            if pending is not None:
                skip("action_without_page", path, pending)
            op, meta = next(iter(obj.items()))
            problem = _action_problem(op, meta)
            pending = lineno
            if op == "delete":  # a bulk delete has no page line
                skip("non_page_action", path, lineno, problem)
                pending = None
            continue
        counters["pages_read"] += 1
        if progress is not None:
            progress.update(1, nbytes)
        if pending is None:
            skip("page_without_action", path, lineno)
            continue
        action_line, pending = pending, None
        if problem is not None:
            skip("non_page_action", path, action_line, f"{problem}; its page on line {lineno} is skipped")
            continue
        text = obj.get("text")
        if not isinstance(text, str):
            skip("no_text", path, lineno, f"title={obj.get('title')!r}")
            continue
        ns = obj.get("namespace", 0)
        if ns != 0:
            skip("non_article_namespace", path, lineno, f"namespace={ns!r}")
            continue
        if drop_disambiguation and _is_disambiguation(obj):
            skip("disambiguation", path, lineno, quiet=True)
            continue
        title = obj.get("title")
        yield (title if isinstance(title, str) else None), text
    if pending is not None:
        skip("action_without_page", path, pending)


def iter_dumps(paths, skip: SkipLog, counters: Counter, io_stats: dict,
               drop_disambiguation: bool = True, progress: Progress | None = None):
    """:func:`iter_pages` over several dump files, in order."""
    for path in paths:
        if len(paths) > 1:
            LOG.info("reading %s", path)
        yield from iter_pages(path, skip, counters, io_stats, drop_disambiguation, progress)


def _chunks(pages, max_pages: int = 0, max_chars: int = 0):
    return chunked(pages, max_pages or CHUNK_PAGES, max_chars or CHUNK_CHARS, size=lambda page: len(page[1]))


_WORKER: dict = {}


def _init_worker(mode: str, split: bool, min_length: int, max_length: int) -> None:
    if mode == "recipe":
        _WORKER["splitter"] = RecipeSentenceSplitter() if split else None
        _WORKER["clean"] = recipe_wiki_sentences
    else:
        _WORKER["splitter"] = SentenceSplitter() if split else None
        _WORKER["clean"] = wiki_sentences
    _WORKER["min"], _WORKER["max"] = min_length, max_length


def _process_chunk(chunk) -> tuple[list[tuple[int, str]], dict]:
    """Clean a chunk of pages: ``[(n_sentences, text_block)]`` and drop counts."""
    counts: Counter = Counter()
    out = []
    clean = _WORKER["clean"]
    for title, text in chunk:
        sents = clean(text, title, _WORKER["splitter"], _WORKER["min"], _WORKER["max"], counts)
        out.append((len(sents), "\n".join(sents) + "\n\n" if sents else ""))
    return out, dict(counts)


def build_wiki_corpus(input_path, output_path, stats_path=None, *, min_length: int = 10,
                      max_length: int = 200, split_sentences: bool = True, threads: int = 1,
                      drop_disambiguation: bool | None = None, mode: str = "project") -> dict:
    """Stream ``input_path`` (a dump, or a list of dump parts read in order) into
    ``output_path`` (gzip); return (and write) the stats.  ``drop_disambiguation`` defaults to
    the mode's choice (recipe: keep, project: drop)."""
    t0 = time.monotonic()
    if mode not in MODES:
        raise ValueError(f"unknown cleaning mode {mode!r} (expected one of {MODES})")
    if drop_disambiguation is None:
        drop_disambiguation = mode == "project"
    inputs = [str(p) for p in input_path] if isinstance(input_path, (list, tuple)) else [str(input_path)]
    if not inputs:
        raise ValueError("no input dump given")
    for path in inputs:
        if not os.path.exists(path):
            raise InputError(path, "input dump not found")
    input_path = ", ".join(inputs)  # for messages
    skip = SkipLog(LOG)
    counters: Counter = Counter()
    dropped: Counter = Counter()
    io_stats: dict = {}
    progress = Progress(f"corpus_wiki {input_path}", unit="pages")
    pages = iter_dumps(inputs, skip, counters, io_stats, drop_disambiguation, progress)
    results = ordered_map(_process_chunk, _chunks(pages), threads, _init_worker,
                          (mode, split_sentences, min_length, max_length))
    with atomic_path(output_path) as tmp:
        with open(tmp, "wb") as raw, \
                gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                              compresslevel=GZIP_LEVEL) as gz:
            for page_results, counts in results:
                dropped.update(counts)
                for n, block in page_results:
                    counters["pages_cleaned"] += 1
                    if n == 0:
                        counters["pages_empty_after_cleaning"] += 1
                        continue
                    data = block.encode("utf-8")
                    gz.write(data)
                    counters["pages_written"] += 1
                    counters["sentences_written"] += n
                    counters["bytes_out_uncompressed"] += len(data)
        skips = dict(skip.counts)
        if io_stats.get("bad_utf8_lines"):
            skips["bad_utf8_lines"] = io_stats["bad_utf8_lines"]
        if counters["pages_cleaned"] == 0:
            raise InputError(input_path, f"no usable pages in the dump ({counters['lines_read']:,} "
                                         f"lines read, skipped: {skips or 'none'})")
        if counters["sentences_written"] == 0:
            raise InputError(input_path, f"no sentence survived cleaning in "
                                         f"{counters['pages_cleaned']:,} pages "
                                         f"(dropped: {dict(dropped)})")
    seconds = time.monotonic() - t0
    stats = {
        "inputs": inputs,
        "output": str(output_path),
        "settings": {"mode": mode, "min_sentence_length": min_length,
                     "max_sentence_length": max_length, "split_sentences": split_sentences,
                     "threads": threads, "drop_disambiguation": drop_disambiguation},
        "lines_read": counters["lines_read"],
        "pages_read": counters["pages_read"],
        "pages_cleaned": counters["pages_cleaned"],
        "pages_written": counters["pages_written"],
        "pages_empty_after_cleaning": counters["pages_empty_after_cleaning"],
        "sentences_written": counters["sentences_written"],
        "sentences_dropped": dict(sorted(dropped.items())),
        "skipped": dict(sorted(skips.items())),
        "skipped_total": sum(skips.values()),
        "nul_lines": io_stats.get("nul_lines", 0),
        "nul_bytes_removed": io_stats.get("nul_bytes", 0),
        "bytes_in": sum(os.path.getsize(p) for p in inputs),
        "bytes_in_uncompressed": counters["bytes_in_uncompressed"],
        "bytes_out": os.path.getsize(output_path),
        "bytes_out_uncompressed": counters["bytes_out_uncompressed"],
        "seconds": round(seconds, 3),
    }
    if stats_path:
        write_json(stats_path, stats)
    LOG.info("built %s: %s sentences from %s pages (%s pages read, %s skipped, %s empty after "
             "cleaning; %s in, %s out; %.1f s)", output_path,
             f"{stats['sentences_written']:,}", f"{stats['pages_written']:,}",
             f"{stats['pages_read']:,}", f"{stats['skipped_total']:,}",
             f"{stats['pages_empty_after_cleaning']:,}", human_bytes(stats["bytes_in"]),
             human_bytes(stats["bytes_out"]), seconds)
    return stats


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.corpus.wiki", description=__doc__.split("\n")[0])
    p.add_argument("--input", required=True, nargs="+", action="extend",
                   help="CirrusSearch content dump (.json.gz); several: the parts of one dump, in order")
    p.add_argument("--output", required=True, help="output corpus (.txt.gz)")
    p.add_argument("--stats", help="stats JSON to write")
    p.add_argument("--mode", choices=MODES, default="project",
                   help="recipe: make_corpus_wiki.py's cleaning; project: this project's (default)")
    p.add_argument("--min-sentence-length", type=int, default=10, help="in characters (0: none)")
    p.add_argument("--max-sentence-length", type=int, default=200, help="in characters (0: none)")
    p.add_argument("--split-sentences", action=argparse.BooleanOptionalAction, default=True,
                   help="split pages into sentences with MeCab (default: yes)")
    p.add_argument("--threads", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--drop-disambiguation", dest="drop_disambiguation", action="store_true",
                   default=None, help="skip disambiguation pages (default in project mode)")
    p.add_argument("--keep-disambiguation", dest="drop_disambiguation", action="store_false",
                   help="keep disambiguation pages (default in recipe mode)")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.threads < 1:
        raise SystemExit("--threads must be >= 1")
    if args.min_sentence_length < 0 or args.max_sentence_length < 0:
        raise SystemExit("sentence length limits must be >= 0")
    build_wiki_corpus(args.input, args.output, args.stats,
                      min_length=args.min_sentence_length, max_length=args.max_sentence_length,
                      split_sentences=args.split_sentences, threads=args.threads,
                      drop_disambiguation=args.drop_disambiguation, mode=args.mode)
    return 0


if __name__ == "__main__":
    run_cli(main)
