"""Train a SentencePiece tokenizer: MeCab + SentencePiece (LINE style) or plain SentencePiece (rinna style).

    python -m scripts.tokenizers.train_sentencepiece --input corpus/wikipedia/corpus_sampled.txt \\
        --output-dir tokenizers/sentencepiece_unidic_lite --style mecab --mecab-dic unidic_lite \\
        --vocab-size 32768 --model-type unigram --character-coverage 0.9995 --train-threads 16 \\
        --threads 8 --seed 0

Writes ``spiece.model``, ``vocab.txt``, ``tokenizer.json`` (``--style raw`` only) and
``train.stats.json`` into ``--output-dir``. ``--threads`` runs the MeCab segmentation (any value
gives the same model); ``--train-threads`` is the SentencePiece trainer's thread count, which
shapes the model (:mod:`scripts.tokenizers.sentencepiece` explains why it is a setting).
"""

from __future__ import annotations

import argparse

from scripts.shared.common import run_cli
from scripts.tokenizers.sentencepiece import MODEL_TYPES, STYLES, train


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="training text, one sentence a line (the seeded sample)")
    ap.add_argument("--output-dir", required=True)
    ap.add_argument("--style", required=True, choices=STYLES, help="mecab: MeCab words first; raw: the lines as they are")
    ap.add_argument("--mecab-dic", default="unidic_lite", help="MeCab dictionary (mecab style)")
    ap.add_argument("--vocab-size", type=int, required=True, help="requested vocabulary size (all pieces)")
    ap.add_argument("--model-type", default="unigram", choices=MODEL_TYPES)
    ap.add_argument("--character-coverage", type=float, default=0.9995)
    ap.add_argument("--max-piece-length", type=int, default=16)
    ap.add_argument("--train-threads", type=int, default=1, help="SentencePiece trainer threads (shapes the model)")
    ap.add_argument("--threads", type=int, default=1, help="MeCab worker processes (no effect on the model)")
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args(argv)
    if a.vocab_size < 8:
        ap.error("--vocab-size must be at least 8")
    if not 0 < a.character_coverage <= 1:
        ap.error("--character-coverage must be in (0, 1]")
    if a.threads < 1 or a.train_threads < 1:
        ap.error("--threads and --train-threads must be at least 1")
    if a.style == "raw" and a.model_type != "unigram":
        ap.error("--style raw ships a fast tokenizer, which needs --model-type unigram")
    train(a.input, a.output_dir, style=a.style, vocab_size=a.vocab_size, model_type=a.model_type,
          character_coverage=a.character_coverage, train_threads=a.train_threads,
          mecab_dic=a.mecab_dic if a.style == "mecab" else None, threads=a.threads, seed=a.seed,
          max_piece_length=a.max_piece_length)
    return 0


if __name__ == "__main__":
    run_cli(main)
