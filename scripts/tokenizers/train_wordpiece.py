"""Train the recipe's WordPiece vocabulary: MeCab (unidic-lite) words, then HF ``tokenizers``.

    python -m scripts.tokenizers.train_wordpiece --input corpus/wikipedia/corpus_sampled.txt \
        --output-dir tokenizers/wordpiece_unidic_lite --mecab-dic unidic_lite \
        --vocab-size 32768 --limit-alphabet 7012 \
        --initial-alphabet-file tokenizers/alphabet/unidic_lite.txt \
        --num-unused-tokens 10 --wordpieces-prefix '##' --threads 8

Writes ``<output-dir>/vocab.txt`` and ``<output-dir>/train.stats.json``.

How it differs from the reference script (same algorithm, faster and reproducible):

1. Word segmentation runs once, up front, in ``--threads`` worker processes: each line is NFKC-
   normalised and split by MeCab (wakati, unidic-lite), exactly what
   ``BertJapaneseTokenizer(word_tokenizer_type="mecab", mecab_kwargs={"mecab_dic": "unidic_lite"})``
   does at inference time (literal special tokens such as ``[SEP]`` split off first, then NFKC,
   fugashi/MeCab surfaces -- the same lattice as mecab-python3's wakati output -- and whitespace
   splitting in its WordPiece step). The word counts are summed, so they do not depend on the
   chunking or on ``--threads``. (The reference ran MeCab inside the trainer through a Python
   pre-tokenizer callback, serialised by the GIL.)
2. ``tokenizers``' WordPiece trainer (a BPE trainer with a ``##`` continuation prefix) is fed
   those words, with whitespace splitting only. Its Python API takes no word counts, so each
   word is fed ``count`` times, as 64 KB sequences of repeated words in (-count, word) order
   (about 0.5-1 us a word in the trainer, less than MeCab's ~2 us). Its merge order is fully determined by pair
   counts and token ids, but the ids it gives the ``##x`` continuation characters follow the
   iteration order of a randomly seeded hash map, so ties between equally frequent pairs broke
   differently from run to run (the reference produced different vocabularies on reruns; so does
   the plain library call here: three runs on a 1 MB corpus gave 23170-23174 tokens, differing
   in ~170 of them). Here
   every id the trainer assigns before merging is fixed up front: the special tokens, the
   ``[unusedN]`` tokens, the alphabet (file order) and the ``##x`` tokens the corpus needs
   (code-point order) are all passed as the trainer's ``special_tokens``. The learned vocabulary
   is then the same on every run, for any ``--threads``.
3. ``vocab.txt`` is written in an explicit order: specials, ``[unusedN]``, the alphabet in the
   alphabet file's order (so its first 5 + N + |alphabet| lines are the recipe's character
   vocabulary, ``head -n 7027``), then every other token in the trainer's id order (``##x``
   characters, then merges in the order they were learned).

As in the reference, ``vocab_size`` counts every token, but it is a request: the trainer keeps
every special, ``[unusedN]``, alphabet and ``##x`` token whatever the size, so when those alone
exceed it no merges are learned and the vocabulary is larger than asked for (on real text with
vocab_size 8192 and the 7012-character alphabet: 8633 entries). The job logs the requested and
the actual size and records both in ``train.stats.json`` (``vocab_size_requested``,
``vocab_size``, ``vocab_size_over_request``); every later stage takes the size from
``vocab.txt``. It fails only when the request is impossible: fewer entries than specials +
unused + alphabet (the config check in :mod:`scripts.shared.registry` rejects that before any
job; this is the same check on the actual alphabet).
"""

from __future__ import annotations

import argparse
import hashlib
import multiprocessing as mp
import os
import queue
import re
import time
import unicodedata
from collections import Counter
from pathlib import Path

from scripts.shared.common import (LOG, InputError, Progress, atomic_path, iter_lines, mecab_tagger, peak_rss_mb,
                            run_cli, write_json)
from scripts.shared.formats import read_alphabet  # noqa: F401  (also this module's API)

SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
_SPECIAL_RE = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")
CHUNK_BYTES = 1 << 18  # text per work item sent to a MeCab worker
# Text per sequence handed to the tokenizers trainer: its pre-tokenizer costs ~0.5-1 us a word,
# about half as much on 64 KB sequences as on 1 MB ones.
FEED_BYTES = 1 << 16


# ---------------------------------------------------------------------------------------------
# Word segmentation
# ---------------------------------------------------------------------------------------------


def split_words(tagger, line: str) -> list[str]:
    """The words of one line as BertJapaneseTokenizer (MeCab, NFKC) sees them.

    Like the tokenizer, literal special tokens (``[SEP]`` ...) are split off first and dropped
    (they are in the vocabulary already); each remaining piece is NFKC-normalised and segmented
    on its own; whitespace inside a MeCab surface splits it further, as the WordPiece step does.
    """
    if "[" in line:
        words: list[str] = []
        for piece in _SPECIAL_RE.split(line):
            if piece and piece not in SPECIAL_TOKENS:
                words.extend(tagger.parse(unicodedata.normalize("NFKC", piece)).split())
        return words
    return tagger.parse(unicodedata.normalize("NFKC", line)).split()


def _count_lines(tagger, lines: list[str], counts: Counter) -> int:
    n = 0
    for line in lines:
        words = split_words(tagger, line)
        n += len(words)
        counts.update(words)
    return n


def _worker(dic: str, tasks, results) -> None:
    """A MeCab worker process: count the words of every chunk, then send the totals once."""
    try:
        tagger = mecab_tagger(dic)
        counts: Counter = Counter()
        n_words = 0
        while True:
            lines = tasks.get()
            if lines is None:
                break
            n_words += _count_lines(tagger, lines, counts)
        results.put(("ok", n_words, counts))
    except BaseException as e:  # report instead of leaving the parent waiting
        import traceback

        results.put(("error", 0, f"{type(e).__name__}: {e}\n{traceback.format_exc()}"))


def _chunks(path, stats: dict, progress: Progress):
    """Lists of non-empty lines of about CHUNK_BYTES each."""
    chunk: list[str] = []
    size = 0
    for _, line in iter_lines(path, stats=stats):
        nbytes = len(line.encode("utf-8")) + 1
        progress.update(1, nbytes)
        if not line.strip():
            stats["empty_lines"] = stats.get("empty_lines", 0) + 1
            continue
        chunk.append(line)
        size += nbytes
        if size >= CHUNK_BYTES:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


class _Pool:
    """MeCab worker processes fed through a bounded queue; each returns its word counts once."""

    def __init__(self, dic: str, n: int):
        ctx = mp.get_context("spawn")  # no fork of a process that may hold Rust/rayon threads
        self.tasks = ctx.Queue(maxsize=2 * n)
        self.results = ctx.Queue()
        self.procs = [ctx.Process(target=_worker, args=(dic, self.tasks, self.results), daemon=True)
                      for _ in range(n)]
        for p in self.procs:
            p.start()
        self.pending = n

    def _check_alive(self) -> None:
        dead = [p for p in self.procs if p.exitcode not in (None, 0)]
        if dead:
            raise RuntimeError(f"MeCab worker died (exit code {dead[0].exitcode})")

    def put(self, lines: list[str]) -> None:
        while True:
            try:
                self.tasks.put(lines, timeout=1.0)
                return
            except queue.Full:
                self._get_nowait_error()
                self._check_alive()

    def _get_nowait_error(self) -> None:
        try:
            msg = self.results.get_nowait()
        except queue.Empty:
            return
        if msg[0] == "error":
            raise RuntimeError(f"MeCab worker failed: {msg[2]}")
        raise RuntimeError("MeCab worker finished early")

    def finish(self) -> list[tuple[int, Counter]]:
        for _ in self.procs:
            self.put(None)
        out = []
        while self.pending:
            try:
                status, n_words, payload = self.results.get(timeout=1.0)
            except queue.Empty:
                self._check_alive()
                continue
            if status == "error":
                raise RuntimeError(f"MeCab worker failed: {payload}")
            out.append((n_words, payload))
            self.pending -= 1
        for p in self.procs:
            p.join()
        return out

    def terminate(self) -> None:
        # Do not wait at exit for queued chunks that no worker will read any more.
        self.tasks.cancel_join_thread()
        for p in self.procs:
            if p.is_alive():
                p.terminate()
        for p in self.procs:
            p.join()


def count_words(path, mecab_dic: str = "unidic_lite", threads: int = 1, stats: dict | None = None) -> Counter:
    """Word frequencies of a corpus, segmented by MeCab in ``threads`` processes.

    The result is the same for any ``threads`` (counts are summed; callers that iterate it must
    sort, as :func:`train_wordpiece` does).
    """
    stats = {} if stats is None else stats
    progress = Progress(f"segment {path}", unit="lines")
    total: Counter = Counter()
    n_words = 0
    if threads <= 1:
        tagger = mecab_tagger(mecab_dic)
        for chunk in _chunks(path, stats, progress):
            n_words += _count_lines(tagger, chunk, total)
    else:
        pool = _Pool(mecab_dic, threads)
        try:
            for chunk in _chunks(path, stats, progress):
                pool.put(chunk)
            parts = pool.finish()
        except BaseException:
            pool.terminate()
            raise
        parts.sort(key=lambda p: -len(p[1]))  # merge the smaller ones into the largest
        for i, (n, part) in enumerate(parts):
            n_words += n
            if i == 0:
                total = part
            else:
                total.update(part)
    LOG.info("segment %s: %s", path, progress.summary())
    stats.update(lines=progress.count, bytes=progress.nbytes, words=n_words, unique_words=len(total),
                 segment_seconds=round(progress.elapsed, 3),
                 segment_mb_per_s=round(progress.nbytes / 1e6 / progress.elapsed, 3))
    LOG.info("%s words, %s distinct", f"{n_words:,}", f"{len(total):,}")
    return total


# ---------------------------------------------------------------------------------------------
# WordPiece training
# ---------------------------------------------------------------------------------------------


def _sorted_counts(counts: Counter) -> list[tuple[str, int]]:
    return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))


def _kept_alphabet(alphabet: list[str], limit: int, items: list[tuple[str, int]]) -> list[str]:
    """The trainer's alphabet: the whole initial alphabet, plus the most frequent other corpus
    characters up to ``limit`` (ties by code point, where the library's order is arbitrary)."""
    if limit < len(alphabet):
        raise ValueError(f"--limit-alphabet {limit} is smaller than the initial alphabet ({len(alphabet)} "
                         "characters): the trainer would drop initial characters arbitrarily")
    if limit == len(alphabet):
        return list(alphabet)
    in_alphabet = set(alphabet)
    char_counts: Counter = Counter()
    for word, count in items:
        for ch in word:
            if ch not in in_alphabet:
                char_counts[ch] += count
    extra = sorted(char_counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit - len(alphabet)]
    return list(alphabet) + sorted(ch for ch, _ in extra)


def _feed(items: list[tuple[str, int]], progress: Progress):
    """Sequences of space-separated words, each word repeated by its count, in a fixed order."""
    buf: list[str] = []
    size = 0
    for word, count in items:
        step = len(word.encode("utf-8")) + 1
        max_repeat = max(1, FEED_BYTES // step)
        left = count
        while left:
            k = min(left, max_repeat)
            left -= k
            buf.append(" ".join([word] * k) if k > 1 else word)
            size += step * k
            progress.update(k, step * k)
            if size >= FEED_BYTES:
                yield " ".join(buf)
                buf, size = [], 0
    if buf:
        yield " ".join(buf)


def train_wordpiece(counts: Counter, alphabet: list[str], *, vocab_size: int, limit_alphabet: int,
                    num_unused_tokens: int = 10, prefix: str = "##", stats: dict | None = None) -> list[str]:
    """The vocabulary (in output order) trained by tokenizers' WordPieceTrainer on word counts."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    stats = {} if stats is None else stats
    unused = [f"[unused{i}]" for i in range(num_unused_tokens)]
    head_specials = SPECIAL_TOKENS + unused
    items = _sorted_counts(counts)
    kept = _kept_alphabet(alphabet, limit_alphabet, items)
    kept_set = set(kept)
    clash = [t for t in head_specials if t in kept_set]
    if clash:
        raise ValueError(f"alphabet contains special token(s) {clash}")
    check_request(vocab_size, num_unused_tokens, len(kept))

    # The continuation characters the trainer will create: alphabet characters seen after the
    # first character of a word (the first character counts even when it is not in the alphabet).
    first: set[str] = set()
    later: set[str] = set()
    for word, _ in items:
        first.add(word[0])
        later.update(word[1:])
    cont = [prefix + ch for ch in sorted(later & kept_set)] if prefix else []
    fixed = head_specials + kept + cont
    if len(set(fixed)) != len(fixed):
        raise ValueError("special tokens, alphabet and continuation characters overlap")

    trainer = trainers.WordPieceTrainer(
        vocab_size=vocab_size, min_frequency=0, show_progress=False, special_tokens=fixed,
        limit_alphabet=len(kept), initial_alphabet=kept,
        continuing_subword_prefix=prefix if prefix else None)
    tokenizer = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    total_words = sum(c for _, c in items)
    progress = Progress("feed trainer", unit="words")
    LOG.info("training WordPiece: %s fixed tokens (%d special, %d unused, %s alphabet, %s continuation), "
             "vocab_size %s", f"{len(fixed):,}", len(SPECIAL_TOKENS), len(unused), f"{len(kept):,}",
             f"{len(cont):,}", f"{vocab_size:,}")
    t0 = time.monotonic()
    tokenizer.train_from_iterator(_feed(items, progress), trainer=trainer)
    train_s = time.monotonic() - t0
    if progress.count != total_words:
        raise RuntimeError(f"fed {progress.count} words, expected {total_words}")

    vocab = tokenizer.get_vocab(with_added_tokens=False)
    by_id = sorted(vocab.items(), key=lambda kv: kv[1])
    ids = [i for _, i in by_id]
    if ids != list(range(len(ids))):
        raise RuntimeError("trainer returned non-contiguous token ids")
    trained = [tok for tok, _ in by_id]
    missing = [t for t in fixed if t not in vocab]
    if missing:
        raise RuntimeError(f"trainer dropped fixed tokens, e.g. {missing[:5]}")
    library_order = trained[:len(fixed)] == fixed
    if not library_order:
        LOG.warning("trainer did not keep the fixed tokens first in order; reordering explicitly")
    head = head_specials + kept
    head_set = set(head)
    out = head + [t for t in trained if t not in head_set]
    if len(out) != len(trained) or len(set(out)) != len(out):
        raise RuntimeError("vocabulary reordering lost or duplicated tokens")

    n_merged = len(out) - len(fixed)
    if len(out) > vocab_size:
        LOG.warning("vocab size: requested %s, actual %s (+%s): specials, unused, alphabet and ##continuation "
                    "characters alone take %s, and the trainer keeps them all; later stages use the actual size",
                    f"{vocab_size:,}", f"{len(out):,}", f"{len(out) - vocab_size:,}", f"{len(fixed):,}")
    else:
        LOG.info("vocab size: requested %s, actual %s", f"{vocab_size:,}", f"{len(out):,}")
    stats.update(
        vocab_size_requested=vocab_size, vocab_size=len(out),
        vocab_size_over_request=max(0, len(out) - vocab_size), special_tokens=len(SPECIAL_TOKENS),
        unused_tokens=len(unused), alphabet=len(kept), alphabet_from_file=len(alphabet),
        continuation_chars=len(cont), learned_subwords=n_merged,
        corpus_chars_outside_alphabet=len((first | later) - kept_set),
        train_seconds=round(train_s, 3), library_order_matched=library_order,
        character_vocab_size=len(head))
    LOG.info("trained in %.1f s: %s tokens (%s learned subwords)", train_s, f"{len(out):,}", f"{n_merged:,}")
    return out


def check_request(vocab_size: int, num_unused_tokens: int, alphabet_size: int) -> None:
    """An impossible request: fewer entries than specials + unused + alphabet (ValueError)."""
    floor = len(SPECIAL_TOKENS) + num_unused_tokens + alphabet_size
    if vocab_size < floor:
        raise ValueError(f"--vocab-size {vocab_size} is impossible: the vocabulary always holds the "
                         f"{len(SPECIAL_TOKENS)} special tokens, {num_unused_tokens} [unusedN] and the "
                         f"{alphabet_size}-character alphabet = {floor} entries")


def write_vocab(path, tokens: list[str]) -> str:
    data = "".join(t + "\n" for t in tokens).encode("utf-8")
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            fh.write(data)
    return hashlib.sha256(data).hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="training text, one sentence a line (may be compressed)")
    ap.add_argument("--output-dir", required=True, help="writes vocab.txt and train.stats.json here")
    ap.add_argument("--mecab-dic", default="unidic_lite", choices=["unidic_lite"], help="MeCab dictionary")
    ap.add_argument("--vocab-size", type=int, default=32768)
    ap.add_argument("--limit-alphabet", type=int, default=7012)
    ap.add_argument("--initial-alphabet-file", required=True, help="one character a line")
    ap.add_argument("--num-unused-tokens", type=int, default=10)
    ap.add_argument("--wordpieces-prefix", default="##")
    ap.add_argument("--threads", type=int, default=1, help="MeCab worker processes and trainer threads")
    args = ap.parse_args(argv)
    if args.threads < 1:
        ap.error("--threads must be at least 1")
    if args.vocab_size < 1 or args.limit_alphabet < 1 or args.num_unused_tokens < 0:
        ap.error("--vocab-size and --limit-alphabet must be positive, --num-unused-tokens >= 0")
    # The trainer's thread pool (rayon) reads this when it first starts.
    os.environ.setdefault("RAYON_RS_NUM_CPUS", str(args.threads))

    t0 = time.monotonic()
    out_dir = Path(args.output_dir)
    alphabet = read_alphabet(args.initial_alphabet_file)
    try:
        check_request(args.vocab_size, args.num_unused_tokens, len(alphabet))  # before the slow part
    except ValueError as e:
        ap.error(str(e))
    stats: dict = {"input": str(args.input), "mecab_dic": args.mecab_dic, "threads": args.threads,
                   "wordpieces_prefix": args.wordpieces_prefix,
                   "initial_alphabet_file": str(args.initial_alphabet_file)}
    counts = count_words(args.input, args.mecab_dic, args.threads, stats)
    if not counts:
        raise InputError(args.input, "no words in the training text")
    try:
        tokens = train_wordpiece(counts, alphabet, vocab_size=args.vocab_size,
                                 limit_alphabet=args.limit_alphabet,
                                 num_unused_tokens=args.num_unused_tokens,
                                 prefix=args.wordpieces_prefix, stats=stats)
    except ValueError as e:
        ap.error(str(e))
    vocab_path = out_dir / "vocab.txt"
    stats["vocab_sha256"] = write_vocab(vocab_path, tokens)
    stats["seconds"] = round(time.monotonic() - t0, 3)
    stats["peak_rss_mb"] = round(peak_rss_mb(), 1)
    write_json(out_dir / "train.stats.json", stats)
    LOG.info("built %s: %d tokens", vocab_path, len(tokens))
    return 0


if __name__ == "__main__":
    run_cli(main)
