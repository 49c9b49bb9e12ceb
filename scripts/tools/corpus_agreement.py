"""Sentence-level agreement of two sentence-per-line corpora (e.g. the recipe's output and ours).

Usage::

    python -m scripts.tools.corpus_agreement A.txt.gz B.txt.gz [--show N]

Reads both files (plain or compressed), takes their non-empty lines as multisets and prints how
many lines they share: as a share of A's lines and of B's lines (the agreement "both ways"), the
characters in each, how many pages (blank-line-separated blocks, in order) are identical, and
with ``--show`` the first N lines that only one side has.  Used for docs/cleaning.md.
"""

from __future__ import annotations

import argparse
from collections import Counter

from scripts.shared.common import iter_lines, run_cli


def pages(path) -> list[list[str]]:
    out: list[list[str]] = [[]]
    for _, line in iter_lines(path):
        if line:
            out[-1].append(line)
        elif out[-1]:
            out.append([])
    return [p for p in out if p]


def agreement(a_path, b_path) -> dict:
    pa, pb = pages(a_path), pages(b_path)
    a = Counter(s for p in pa for s in p)
    b = Counter(s for p in pb for s in p)
    common = sum((a & b).values())
    na, nb = sum(a.values()), sum(b.values())
    return {
        "a_sentences": na, "b_sentences": nb,
        "a_chars": sum(len(s) * n for s, n in a.items()), "b_chars": sum(len(s) * n for s, n in b.items()),
        "common": common,
        "share_of_a": common / na if na else 1.0, "share_of_b": common / nb if nb else 1.0,
        "a_pages": len(pa), "b_pages": len(pb),
        "identical_pages": sum(x == y for x, y in zip(pa, pb)),
        "only_a": list((a - b).elements()), "only_b": list((b - a).elements()),
    }


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.tools.corpus_agreement", description=__doc__.split("\n")[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--show", type=int, default=0, help="print the first N lines only one side has")
    args = p.parse_args(argv)
    r = agreement(args.a, args.b)
    print(f"A {args.a}: {r['a_sentences']:,} sentences, {r['a_chars']:,} characters, {r['a_pages']:,} pages")
    print(f"B {args.b}: {r['b_sentences']:,} sentences, {r['b_chars']:,} characters, {r['b_pages']:,} pages")
    print(f"shared sentences: {r['common']:,} = {100 * r['share_of_a']:.2f}% of A, {100 * r['share_of_b']:.2f}% of B; "
          f"identical pages: {r['identical_pages']:,} of {max(r['a_pages'], r['b_pages']):,}")
    for side in ("a", "b"):
        for s in r[f"only_{side}"][:args.show]:
            print(f"  only {side.upper()}: {s}")
    return 0


if __name__ == "__main__":
    run_cli(main)
