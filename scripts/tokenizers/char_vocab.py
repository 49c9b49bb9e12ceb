"""The recipe's character vocabulary: specials, ``[unusedN]`` and the alphabet, from a WordPiece vocabulary.

    python -m scripts.tokenizers.char_vocab --input tokenizers/wordpiece_unidic_lite/vocab.txt \
        --alphabet-file tokenizers/alphabet/unidic_lite.txt --num-unused-tokens 10 \
        --output tokenizers/character_unidic_lite/vocab.txt [--vocab-size 7027]

The recipe takes ``head -n 7027`` of the WordPiece vocabulary: 5 special tokens, 10 ``[unusedN]``
and the 7012 UniDic characters, which :mod:`scripts.tokenizers.train_wordpiece` writes first.
Here the size is counted, not assumed: the head must be *exactly* ``[PAD] [UNK] [CLS] [SEP]
[MASK]``, ``[unused0]`` .. ``[unused<N-1>]`` and the alphabet file's characters, in that order
(5 + N + |alphabet| entries); anything else (another order, a missing or extra token, a
vocabulary trained on another alphabet) fails, naming the first line that differs. The
configured ``--vocab-size`` is only a request: when it differs from the counted size the job
logs both and writes the counted head (every later stage takes the size from the file).
"""

from __future__ import annotations

import argparse

from scripts.shared.common import LOG, InputError, atomic_path, iter_lines, run_cli
from scripts.shared.formats import read_alphabet
from scripts.shared.registry import SPECIAL_TOKENS


def expected_head(alphabet: list[str], num_unused: int) -> list[str]:
    """Specials, ``[unusedN]``, then the alphabet: the character vocabulary, in order."""
    return list(SPECIAL_TOKENS) + [f"[unused{i}]" for i in range(num_unused)] + list(alphabet)


def char_vocab(path, alphabet: list[str], num_unused: int) -> list[str]:
    """The first 5 + ``num_unused`` + |alphabet| entries of ``path``, checked entry by entry."""
    expect = expected_head(alphabet, num_unused)
    tokens: list[str] = []
    for lineno, text in iter_lines(path):
        if len(tokens) == len(expect):
            break
        if text != expect[lineno - 1]:
            i = lineno - 1
            part = ("special token" if i < len(SPECIAL_TOKENS) else
                    "[unusedN] token" if i < len(SPECIAL_TOKENS) + num_unused else
                    f"alphabet character {i - len(SPECIAL_TOKENS) - num_unused + 1}")
            raise InputError(path, f"entry {lineno} is {text!r}, expected {expect[i]!r} ({part}): the "
                             f"character vocabulary is the first {len(expect)} entries = "
                             f"{len(SPECIAL_TOKENS)} special tokens, {num_unused} [unusedN] and the "
                             f"{len(alphabet)}-character alphabet, in that order", lineno)
        tokens.append(text)
    if len(tokens) < len(expect):
        raise InputError(path, f"has only {len(tokens)} entries, fewer than the {len(expect)} of specials + "
                               "[unusedN] + alphabet")
    return tokens


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="WordPiece vocab.txt (specials, unused, alphabet first)")
    ap.add_argument("--alphabet-file", required=True, help="the alphabet the WordPiece vocabulary was trained with")
    ap.add_argument("--num-unused-tokens", type=int, required=True, help="[unusedN] tokens after the specials")
    ap.add_argument("--output", required=True, help="character vocab.txt to write")
    ap.add_argument("--vocab-size", type=int, help="the configured size (a request; the size is counted)")
    args = ap.parse_args(argv)
    if args.num_unused_tokens < 0:
        ap.error("--num-unused-tokens must be >= 0")
    alphabet = read_alphabet(args.alphabet_file)
    tokens = char_vocab(args.input, alphabet, args.num_unused_tokens)
    if args.vocab_size is not None and args.vocab_size != len(tokens):
        LOG.warning("vocab size: requested %d, actual %d (%d specials + %d [unusedN] + %d alphabet characters); "
                    "writing %d", args.vocab_size, len(tokens), len(SPECIAL_TOKENS), args.num_unused_tokens,
                    len(alphabet), len(tokens))
    else:
        LOG.info("vocab size: requested %s, actual %d", args.vocab_size, len(tokens))
    with atomic_path(args.output) as tmp:
        with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
            fh.writelines(t + "\n" for t in tokens)
    LOG.info("built %s: %d tokens (%d special, %d unused, %d characters)", args.output, len(tokens),
             len(SPECIAL_TOKENS), args.num_unused_tokens, len(alphabet))
    return 0


if __name__ == "__main__":
    run_cli(main)
