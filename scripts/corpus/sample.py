"""Deterministic sample of non-empty lines from corpus shards (the tokenizer-training sample).

Usage::

    python -m scripts.corpus.sample --input SHARD [SHARD ...] --output corpus/<c>/corpus_sampled.txt \\
        --num-lines N [--seed S] [--stats corpus/<c>/corpus_sampled.stats.json]

The recipe does ``cat corpus_*.txt | grep -v '^$' | shuf | head -n N``.  Here, with bounded
memory: a first pass counts the non-empty lines ``T`` of all inputs (in the order given); a second
pass keeps each line with probability ``(N - kept) / (T - seen)`` (selection sampling, Knuth's
Algorithm S, driven by ``random.Random(seed)``), which picks exactly ``min(N, T)`` lines, every
subset of that size equally likely.  If ``N >= T`` every non-empty line is written.

*Order decision:* selected lines are written in corpus order (input order, then line order), not
shuffled as ``shuf`` would: the consumer (WordPiece training) only counts words, so order does not
matter, and keeping it avoids holding the sample in memory.  Lines are written as read (UTF-8, LF);
the output is renamed into place only when complete.
"""

from __future__ import annotations

import argparse
import logging
import os
import random
import time

from scripts.shared.common import InputError, Progress, atomic_path, iter_lines, run_cli, write_json

LOG = logging.getLogger("bertja.corpus_sample")


def count_lines(inputs) -> list[int]:
    """Non-empty lines per input."""
    counts = []
    for path in inputs:
        if not os.path.exists(path):
            raise InputError(path, "input not found")
        n = 0
        for _, line in iter_lines(path):
            if line:
                n += 1
        counts.append(n)
    return counts


def sample_lines(inputs, output_path, num_lines: int, seed: int = 0, stats_path=None) -> dict:
    t0 = time.monotonic()
    inputs = [str(p) for p in inputs]
    per_input = count_lines(inputs)
    total = sum(per_input)
    if total == 0:
        raise InputError(", ".join(inputs), "no non-empty lines to sample from")
    want = min(num_lines, total)
    rng = random.Random(seed)
    kept = seen = 0
    progress = Progress(f"corpus_sample {output_path}", unit="lines")
    with atomic_path(output_path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n", buffering=1 << 20) as out:
            for path in inputs:
                for _, line in iter_lines(path):
                    if not line:
                        continue
                    if kept < want and (want >= total or rng.random() * (total - seen) < want - kept):
                        out.write(line + "\n")
                        kept += 1
                    seen += 1
                    progress.update(1, len(line) + 1)
        if kept != want or seen != total:
            raise InputError(", ".join(inputs), f"inputs changed while sampling ({seen} lines on the "
                                                f"second pass, {total} on the first)")
    seconds = time.monotonic() - t0
    stats = {"inputs": inputs, "output": str(output_path), "seed": seed, "num_lines": num_lines,
             "lines_available": total, "lines_per_input": per_input, "lines_written": kept,
             "seconds": round(seconds, 3)}
    if stats_path:
        write_json(stats_path, stats)
    LOG.info("built %s: %s of %s non-empty lines (seed %d; %.1f s)", output_path, f"{kept:,}",
             f"{total:,}", seed, seconds)
    return stats


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m scripts.corpus.sample",
                                description=__doc__.split("\n")[0])
    p.add_argument("--input", nargs="+", action="extend", required=True, help="shard files")
    p.add_argument("--output", required=True)
    p.add_argument("--num-lines", type=int, required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--stats", help="stats JSON to write")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.num_lines < 1:
        raise SystemExit("--num-lines must be >= 1")
    sample_lines(args.input, args.output, args.num_lines, args.seed, args.stats)
    return 0


if __name__ == "__main__":
    run_cli(main)
