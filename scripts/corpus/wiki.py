"""Wikipedia CirrusSearch content dump -> cleaned sentence-per-line corpus (``corpus.txt.gz``).

Usage::

    python -m scripts.corpus.wiki --input DUMP.json.gz --output corpus/<c>/corpus.txt.gz \\
        --stats corpus/<c>/corpus.stats.json [--min-sentence-length 10] \\
        [--max-sentence-length 200] [--split-sentences | --no-split-sentences] [--threads N] \\
        [--drop-disambiguation | --keep-disambiguation]

The dump is the Elasticsearch bulk format: an action line (``{"index":{"_type":"page",
"_id":"…"}}``; newer dumps omit ``_type``) followed by the page's JSON.  It is streamed (never held
in memory); pages go in chunks to ``--threads`` worker processes through a bounded, ordered map,
so the output is byte-identical for every thread count.  Each page is cleaned and split by
:mod:`scripts.corpus.textclean`; its surviving sentences are written one per line followed by one blank
line (a page with no surviving sentence writes nothing).  The gzip output is deterministic: no
file name and mtime 0 in the header, compression level 6.

Bad input policy (each counted by reason in the stats and logged with file:line, the first 20 of
each reason):

* a line that is not a JSON object -> ``bad_json``;
* a line with invalid UTF-8 -> ``bad_utf8_lines`` (the pairing of that record is dropped too);
* a page line without a preceding action line -> ``page_without_action``; an action line not
  followed by a page -> ``action_without_page``; an action other than ``index`` of ``_type``
  page -> ``non_page_action``;
* a page without a string ``text`` -> ``no_text``;
* *decisions:* a page whose ``namespace`` is present and not 0 -> ``non_article_namespace``; a
  disambiguation page (category 曖昧さ回避 or template Aimai) -> ``disambiguation`` (counted,
  not logged; ``--keep-disambiguation`` keeps them).

Stats (``--stats``): ``lines_read``; ``pages_read`` (page lines seen); ``pages_cleaned`` (pages
that reached the cleaning); ``pages_written``; ``pages_empty_after_cleaning``;
``sentences_written``; ``sentences_dropped`` by reason (``too_short``, ``too_long``, ``math``);
``skipped`` by reason and ``skipped_total``; ``bytes_in`` / ``bytes_out`` (files on disk) and their
``_uncompressed`` counterparts; ``seconds``; the settings used.

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
from scripts.corpus.textclean import SentenceSplitter, SkipLog, human_bytes, wiki_sentences

LOG = logging.getLogger("bertja.corpus_wiki")

CHUNK_PAGES = 128
CHUNK_CHARS = 1 << 21
GZIP_LEVEL = 6
_ACTIONS = ("index", "create", "update", "delete")
_DISAMBIGUATION_TEMPLATES = {"Template:Aimai", "Template:曖昧さ回避"}


def _is_action(obj: dict) -> bool:
    return len(obj) == 1 and next(iter(obj)) in _ACTIONS and isinstance(next(iter(obj.values())), dict)


def _is_disambiguation(page: dict) -> bool:
    cats = page.get("category") or []
    temps = page.get("template") or []
    return (isinstance(cats, list) and "曖昧さ回避" in cats) or \
        (isinstance(temps, list) and any(t in _DISAMBIGUATION_TEMPLATES for t in temps))


def iter_pages(path, skip: SkipLog, counters: Counter, io_stats: dict,
               drop_disambiguation: bool = True, progress: Progress | None = None
               ) -> Iterator[tuple[str | None, str]]:
    """Yield ``(title, text)`` for every usable page of a CirrusSearch bulk dump."""
    pending: int | None = None  # line number of an action line waiting for its page
    pending_ok = True
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
            pending = lineno
            pending_ok = op == "index" and meta.get("_type", "page") == "page"
            continue
        counters["pages_read"] += 1
        if progress is not None:
            progress.update(1, nbytes)
        if pending is None:
            skip("page_without_action", path, lineno)
            continue
        pending = None
        if not pending_ok:
            skip("non_page_action", path, lineno)
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


def _chunks(pages, max_pages: int = 0, max_chars: int = 0):
    return chunked(pages, max_pages or CHUNK_PAGES, max_chars or CHUNK_CHARS, size=lambda page: len(page[1]))


_WORKER: dict = {}


def _init_worker(split: bool, min_length: int, max_length: int) -> None:
    _WORKER["splitter"] = SentenceSplitter() if split else None
    _WORKER["min"], _WORKER["max"] = min_length, max_length


def _process_chunk(chunk) -> tuple[list[tuple[int, str]], dict]:
    """Clean a chunk of pages: ``[(n_sentences, text_block)]`` and drop counts."""
    counts: Counter = Counter()
    out = []
    for title, text in chunk:
        sents = wiki_sentences(text, title, _WORKER["splitter"], _WORKER["min"], _WORKER["max"],
                               counts)
        out.append((len(sents), "\n".join(sents) + "\n\n" if sents else ""))
    return out, dict(counts)


def build_wiki_corpus(input_path, output_path, stats_path=None, *, min_length: int = 10,
                      max_length: int = 200, split_sentences: bool = True, threads: int = 1,
                      drop_disambiguation: bool = True) -> dict:
    """Stream ``input_path`` into ``output_path`` (gzip); return (and write) the stats."""
    t0 = time.monotonic()
    if not os.path.exists(input_path):
        raise InputError(input_path, "input dump not found")
    skip = SkipLog(LOG)
    counters: Counter = Counter()
    dropped: Counter = Counter()
    io_stats: dict = {}
    progress = Progress(f"corpus_wiki {input_path}", unit="pages")
    pages = iter_pages(input_path, skip, counters, io_stats, drop_disambiguation, progress)
    results = ordered_map(_process_chunk, _chunks(pages), threads, _init_worker,
                          (split_sentences, min_length, max_length))
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
        "input": str(input_path),
        "output": str(output_path),
        "settings": {"min_sentence_length": min_length, "max_sentence_length": max_length,
                     "split_sentences": split_sentences, "threads": threads,
                     "drop_disambiguation": drop_disambiguation},
        "lines_read": counters["lines_read"],
        "pages_read": counters["pages_read"],
        "pages_cleaned": counters["pages_cleaned"],
        "pages_written": counters["pages_written"],
        "pages_empty_after_cleaning": counters["pages_empty_after_cleaning"],
        "sentences_written": counters["sentences_written"],
        "sentences_dropped": dict(sorted(dropped.items())),
        "skipped": dict(sorted(skips.items())),
        "skipped_total": sum(skips.values()),
        "nul_bytes_removed": io_stats.get("nul_bytes", 0),
        "bytes_in": os.path.getsize(input_path),
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
    p.add_argument("--input", required=True, help="CirrusSearch content dump (.json.gz)")
    p.add_argument("--output", required=True, help="output corpus (.txt.gz)")
    p.add_argument("--stats", help="stats JSON to write")
    p.add_argument("--min-sentence-length", type=int, default=10, help="in characters (0: none)")
    p.add_argument("--max-sentence-length", type=int, default=200, help="in characters (0: none)")
    p.add_argument("--split-sentences", action=argparse.BooleanOptionalAction, default=True,
                   help="split pages into sentences with MeCab (default: yes)")
    p.add_argument("--threads", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--drop-disambiguation", dest="drop_disambiguation", action="store_true",
                   default=True, help="skip disambiguation pages (default)")
    p.add_argument("--keep-disambiguation", dest="drop_disambiguation", action="store_false",
                   help="keep disambiguation pages")
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
                      drop_disambiguation=args.drop_disambiguation)
    return 0


if __name__ == "__main__":
    run_cli(main)
