"""The recipe's character vocabulary: the first N entries of a WordPiece vocabulary.

    python -m scripts.tokenizers.char_vocab --input tokenizers/wordpiece_unidic_lite/vocab.txt \
        --output tokenizers/character_unidic_lite/vocab.txt --vocab-size 7027

The recipe takes ``head -n 7027``: 5 special tokens, 10 ``[unusedN]`` and the 7012 UniDic
characters, which :mod:`scripts.tokenizers.train_wordpiece` writes first. This stage checks that the head
really is that: leading bracketed tokens (``[PAD]``, ``[unused0]``, ...), then only single
characters, no duplicates, and ``[UNK]`` among the specials (BertJapaneseTokenizer needs it).
"""

from __future__ import annotations

import argparse
import re

from scripts.shared.common import LOG, InputError, atomic_path, iter_lines, run_cli

SPECIAL_RE = re.compile(r"\[[A-Za-z]+[0-9]*\]")


def char_vocab(path, size: int) -> list[str]:
    """The first ``size`` entries of ``path``, checked to be specials then single characters."""
    tokens: list[str] = []
    for lineno, text in iter_lines(path):
        if len(tokens) == size:
            break
        tokens.append(text)
    if len(tokens) < size:
        raise InputError(path, f"has only {len(tokens)} entries, fewer than --vocab-size {size}")
    n_special = 0
    while n_special < size and SPECIAL_RE.fullmatch(tokens[n_special]):
        n_special += 1
    if "[UNK]" not in tokens[:n_special]:
        raise InputError(path, "no [UNK] among the leading special tokens")
    seen: set[str] = set()
    for i, tok in enumerate(tokens):
        if tok in seen:
            raise InputError(path, f"duplicate entry {tok!r}", i + 1)
        seen.add(tok)
        if i >= n_special and len(tok) != 1:
            raise InputError(path, f"entry {i + 1} is {tok!r}, not a single character: the first {size} "
                             f"entries must be the {n_special} special tokens followed by the alphabet "
                             "(is the vocabulary's order wrong, or --vocab-size too large?)", i + 1)
    LOG.info("%s: %d special tokens, %d characters", path, n_special, size - n_special)
    return tokens


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="WordPiece vocab.txt (specials, unused, alphabet first)")
    ap.add_argument("--output", required=True, help="character vocab.txt to write")
    ap.add_argument("--vocab-size", type=int, default=7027, help="entries to keep (recipe: 7027)")
    args = ap.parse_args(argv)
    if args.vocab_size < 1:
        ap.error("--vocab-size must be positive")
    tokens = char_vocab(args.input, args.vocab_size)
    with atomic_path(args.output) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(t + "\n" for t in tokens)
    LOG.info("built %s: %d tokens", args.output, len(tokens))
    return 0


if __name__ == "__main__":
    run_cli(main)
