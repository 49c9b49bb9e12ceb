"""The UniDic character set: every character of every entry surface, NFKC-normalised.

The recipe builds it from UniDic 2.1.2's ``lex.csv``. Without that file (no registry ships it),
the same set is derived from the compiled ``sys.dic`` of unidic-lite (built from UniDic 2.1.2),
whose trie holds every entry surface as a key (see :mod:`scripts.tokenizers.mecab_dic`).

Per character of a surface: apply NFKC; keep the result only if it is exactly one character and
``str.isprintable()``. In lex.csv an empty surface field stands for the double-quote character.
For unidic-lite both routes give 7012 characters (the recipe's ``limit_alphabet``).

    python -m scripts.tokenizers.alphabet --output tokenizers/alphabet/unidic_lite.txt \
        [--lex-file lex.csv] [--mecab-dic unidic_lite]
"""

from __future__ import annotations

import argparse
import csv
import unicodedata
from typing import Iterable

from scripts.shared.common import LOG, InputError, Progress, atomic_path, iter_lines, run_cli


def normalize_char(ch: str) -> str | None:
    """The alphabet character for one surface character, or None when it is dropped."""
    norm = unicodedata.normalize("NFKC", ch)
    if len(norm) != 1 or not norm.isprintable():
        return None
    return norm


def alphabet_of(surfaces: Iterable[str], stats: dict | None = None) -> set[str]:
    """The set of normalised characters of the given surfaces."""
    stats = {} if stats is None else stats
    seen: set[str] = set()
    for surface in surfaces:
        seen.update(surface)
    alphabet: set[str] = set()
    dropped = 0
    for ch in seen:
        norm = normalize_char(ch)
        if norm is None:
            dropped += 1
        else:
            alphabet.add(norm)
    stats["raw_characters"] = len(seen)
    stats["dropped_characters"] = dropped
    return alphabet


def surfaces_from_lex(path, stats: dict) -> Iterable[str]:
    """Entry surfaces of a UniDic ``lex.csv`` (possibly compressed); blank rows are skipped."""
    lines = (text for _, text in iter_lines(path, strip_newline=False))
    reader = csv.reader(lines)
    progress = Progress(f"read {path}", unit="entries")
    entries = blank = 0
    while True:
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as e:
            raise InputError(path, f"bad CSV row: {e}", reader.line_num) from None
        if not row:
            blank += 1
            continue
        entries += 1
        progress.update()
        # The recipe's rule: an empty surface field is the double-quote entry.
        yield row[0] if row[0] else '"'
    stats["entries"] = entries
    stats["blank_rows"] = blank
    LOG.info("read %s: %s", path, progress.summary())


def surfaces_from_dic(dic: str, stats: dict) -> Iterable[str]:
    """Entry surfaces of a compiled MeCab dictionary (each distinct surface once)."""
    from scripts.tokenizers.mecab_dic import MecabDictionary, dictionary_path

    path = dictionary_path(dic)
    progress = Progress(f"read {path}", unit="surfaces")
    d = MecabDictionary(path)
    n_entries = 0
    for surface, count in d.iter_surfaces():
        n_entries += count
        progress.update()
        yield surface
    stats["dictionary"] = str(path)
    stats["entries"] = n_entries
    stats["surfaces"] = progress.count
    LOG.info("read %s: %s distinct surfaces of %s entries (%.1f s)", path, f"{progress.count:,}",
             f"{n_entries:,}", progress.elapsed)


def build_alphabet(lex_file=None, mecab_dic: str = "unidic_lite", stats: dict | None = None) -> list[str]:
    stats = {} if stats is None else stats
    surfaces = surfaces_from_lex(lex_file, stats) if lex_file else surfaces_from_dic(mecab_dic, stats)
    return sorted(alphabet_of(surfaces, stats))


def write_alphabet(path, chars: list[str]) -> None:
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            for ch in chars:
                fh.write(ch + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--output", required=True, help="alphabet file to write (one character a line)")
    ap.add_argument("--lex-file", default=None, help="UniDic lex.csv (the recipe's source); "
                    "default: derive from the compiled dictionary")
    ap.add_argument("--mecab-dic", default="unidic_lite",
                    help="compiled dictionary: 'unidic_lite', a dictionary directory or a sys.dic path")
    args = ap.parse_args(argv)

    stats: dict = {}
    chars = build_alphabet(args.lex_file, args.mecab_dic, stats)
    merged = stats["raw_characters"] - stats["dropped_characters"] - len(chars)
    LOG.info("%s distinct surface characters: %s dropped by the NFKC/printable rule, %s merged into "
             "others by NFKC, %s kept", f"{stats['raw_characters']:,}", f"{stats['dropped_characters']:,}",
             f"{merged:,}", f"{len(chars):,}")
    write_alphabet(args.output, chars)
    LOG.info("built %s: %d characters", args.output, len(chars))
    return 0


if __name__ == "__main__":
    run_cli(main)
