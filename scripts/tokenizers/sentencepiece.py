"""SentencePiece tokenizers: training, the shipped tokenizer files, and ids for the data stages.

Two styles, both trained with the ``sentencepiece`` library on the seeded tokenizer sample
(``corpus/<c>/corpus_sampled.txt``):

* ``mecab`` (LINE DistilBERT style): every line is split into words by MeCab (unidic-lite,
  NFKC first, literal special tokens split off), exactly as transformers'
  ``BertJapaneseTokenizer(word_tokenizer_type="mecab")`` splits at inference; SentencePiece is
  trained on the *words* (``input_format: tsv``, one distinct word a line with its count), with
  ``add_dummy_prefix: false`` and the ``identity`` normaliser. At inference
  ``BertJapaneseTokenizer(subword_tokenizer_type="sentencepiece", spm_file=...)`` encodes each
  MeCab word on its own with ``sp_model.encode(word)`` (after its ``preprocess_text``: whitespace
  collapsed, ``````/``''`` -> ``"``; and its digit-comma re-split), so pieces never cross a word
  and carry no ``▁``; :class:`MecabSentencePieceTokenizer` reproduces that per word. Special
  tokens take BERT's ids: ``[PAD]`` 0, ``[UNK]`` 1, ``[CLS]`` 2, ``[SEP]`` 3, ``[MASK]`` 4 (the
  WordPiece vocabularies' layout, which the pretraining-data stage and the BERT models assume).
* ``raw`` (rinna RoBERTa style): SentencePiece on the raw lines (``nmt_nfkc`` normaliser,
  ``add_dummy_prefix``), special tokens in RoBERTa's layout: ``[CLS]`` 0, ``[PAD]`` 1, ``[SEP]``
  2, ``[UNK]`` 3, ``[MASK]`` 4. It ships as a *fast* tokenizer (``tokenizer.json``: the same
  Unigram/BPE pieces and scores, the model's precompiled normaliser, a ``Metaspace``
  pre-tokenizer that prefixes ``▁`` to the first segment only, so text after a typed ``[MASK]``
  is segmented as it is inside a sentence; ``[CLS] ... [SEP]`` added by its post-processor), so
  offsets work and no remote code is needed. The data stages tokenise with that same
  ``tokenizer.json`` (:class:`RawSentencePieceTokenizer`), so what ships is what trained; the
  training job also records how often the ``sentencepiece`` processor agrees with it.

Decision -- determinism. The Unigram trainer's EM sums expected counts per thread (sentence
``i`` goes to thread ``i % num_threads``) in float, so the learned scores and even the kept
pieces depend on the trainer's thread count (measured on the demo sample: 1 vs 2 threads give
two different pieces and score differences of 6e-5; the same count always gives the same
model). So the trainer's thread count is a *setting* of the tokenizer (``train_threads`` in the
config, recorded in the model), never the number of cores a job happens to get; the job's own
threads only run the MeCab segmentation, whose word counts do not depend on them. The input is
used whole (``input_sentence_size: 0``: the sample is already a seeded sample, no second
sampling), the library's random generator is seeded, and the serialised model is made
canonical: the trainer spec's input paths and model prefix (which name temporary files) are
cleared, so the model's bytes depend only on the sample's content and the settings.

Files written by :func:`train` into the tokenizer directory: ``spiece.model`` (the canonical
model), ``vocab.txt`` (the pieces in id order: its line count is the model's vocabulary size,
as for WordPiece), ``tokenizer.json`` (``raw`` only) and ``train.stats.json`` (requested and
actual size, pieces by type, and on the sample: character coverage, ``[UNK]`` rate, tokens per
character).
"""

from __future__ import annotations

import collections
import hashlib
import io
import os
import re
import tempfile
import time
import unicodedata
from collections import Counter
import numpy as np

from scripts.shared.common import LOG, InputError, mecab_tagger, ordered_map, read_blocks
from scripts.tokenizers.wordpiece import JapaneseTokenizer

STYLES = ("mecab", "raw")
MODEL_TYPES = ("unigram", "bpe")
SPIECE_UNDERLINE = "\u2581"
BERT_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")      # ids 0..4 (mecab style)
ROBERTA_SPECIALS = ("[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]")   # ids 0..4 (raw style)
SPECIAL_NAMES = {"[PAD]": "pad", "[UNK]": "unk", "[CLS]": "bos", "[SEP]": "eos"}
_SPECIAL_RE = re.compile("(" + "|".join(re.escape(t) for t in BERT_SPECIALS) + ")")
_MEASURE_LINES = 1 << 20  # raw style: lines of the sample measured for the stats (the first ones)


def specials(style: str) -> tuple[str, ...]:
    if style not in STYLES:
        raise ValueError(f"unknown SentencePiece style {style!r} ({', '.join(STYLES)})")
    return BERT_SPECIALS if style == "mecab" else ROBERTA_SPECIALS


def trainer_options(style: str, *, vocab_size: int, model_type: str = "unigram", character_coverage: float = 0.9995,
                    train_threads: int = 1, max_piece_length: int = 16) -> dict:
    """The ``SentencePieceTrainer`` options of a style (every option that shapes the model)."""
    if model_type not in MODEL_TYPES:
        raise ValueError(f"unknown model_type {model_type!r} ({', '.join(MODEL_TYPES)})")
    toks = specials(style)
    opts = {
        "model_type": model_type, "vocab_size": int(vocab_size), "character_coverage": float(character_coverage),
        "num_threads": int(train_threads), "max_sentencepiece_length": int(max_piece_length),
        # a request, as for WordPiece: a small sample may not support the size (the actual size
        # is vocab.txt's line count; both are in train.stats.json)
        "hard_vocab_limit": False,
        "input_sentence_size": 0, "shuffle_input_sentence": False, "byte_fallback": False,
        "split_digits": False, "allow_whitespace_only_pieces": False,
        "user_defined_symbols": ["[MASK]"], "minloglevel": 2,
    }
    for i, t in enumerate(toks):
        if t in SPECIAL_NAMES:
            opts[f"{SPECIAL_NAMES[t]}_id"] = i
            opts[f"{SPECIAL_NAMES[t]}_piece"] = t
    if toks.index("[MASK]") != len(toks) - 1:
        raise AssertionError("[MASK] must follow the control pieces")
    if style == "mecab":
        opts.update(input_format="tsv", normalization_rule_name="identity", add_dummy_prefix=False,
                    remove_extra_whitespaces=False, split_by_whitespace=True)
    else:
        opts.update(input_format="text", normalization_rule_name="nmt_nfkc", add_dummy_prefix=True,
                    remove_extra_whitespaces=True, split_by_whitespace=True)
    return opts


# ---------------------------------------------------------------------------------------------
# MeCab words of the sample (mecab style), as BertJapaneseTokenizer sees them
# ---------------------------------------------------------------------------------------------


def preprocess_word(word: str) -> str:
    """transformers' ``SentencepieceTokenizer.preprocess_text`` (remove_space, keep_accents, no
    lower-casing) on one MeCab surface."""
    return " ".join(word.strip().split()).replace("``", '"').replace("''", '"')


def line_words(tagger, line: str) -> list[str]:
    """The MeCab words of one line (literal special tokens split off and dropped, NFKC per piece,
    as BertJapaneseTokenizer's MecabTokenizer), each as its SentencePiece step receives it."""
    pieces = _SPECIAL_RE.split(line) if "[" in line else [line]
    out: list[str] = []
    for k, piece in enumerate(pieces):
        if k % 2 or not piece:
            continue
        for w in tagger.parse(unicodedata.normalize("NFKC", piece)).split():
            w = preprocess_word(w)
            if w:
                out.append(w)
    return out


_WORKER: dict = {}


def _count_init(mecab_dic: str) -> None:
    _WORKER["tagger"] = mecab_tagger(mecab_dic)


def _count_block(task) -> tuple[Counter, int, int]:
    first, data = task
    tagger = _WORKER["tagger"]
    try:
        text = data.replace(b"\0", b"").decode("utf-8")
    except UnicodeDecodeError as e:
        raise InputError("<sample>", f"invalid UTF-8 near byte {e.start} of the block starting at line {first}")
    counts: Counter = Counter()
    lines = 0
    for line in text.split("\n"):
        line = line.strip()
        if line:
            lines += 1
            counts.update(line_words(tagger, line))
    return counts, lines, len(data)


def count_words(path, mecab_dic: str = "unidic_lite", threads: int = 1, stats: dict | None = None) -> Counter:
    """Word counts of a text file, MeCab in ``threads`` processes (the counts do not depend on it)."""
    stats = {} if stats is None else stats
    total: Counter = Counter()
    n_lines = n_bytes = 0
    t0 = time.monotonic()
    for counts, lines, nbytes in ordered_map(_count_block, read_blocks(path, 1 << 18), threads,
                                             _count_init, (mecab_dic,)):
        total.update(counts)
        n_lines += lines
        n_bytes += nbytes
    stats.update(lines=n_lines, bytes=n_bytes, words=sum(total.values()), unique_words=len(total),
                 segment_seconds=round(time.monotonic() - t0, 3))
    LOG.info("segmented %s: %s lines, %s words, %s distinct (%.1f s)", path, f"{n_lines:,}",
             f"{stats['words']:,}", f"{len(total):,}", time.monotonic() - t0)
    return total


def write_word_tsv(counts: Counter, path) -> None:
    """``word<TAB>count`` lines, most frequent first (ties by the word): the trainer's input."""
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for w, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
            fh.write(f"{w}\t{c}\n")


def read_lines(path, limit: int | None = None) -> tuple[list[str], int]:
    """The first ``limit`` (all: None) stripped non-empty lines of a text file, and how many
    non-empty lines it has in all."""
    out: list[str] = []
    n = 0
    for first, data in read_blocks(path, 1 << 22):
        try:
            lines = [s for s in map(str.strip, data.decode("utf-8").split("\n")) if s]
        except UnicodeDecodeError as e:
            raise InputError(path, f"invalid UTF-8 near byte {e.start} of the block starting at line {first}") from None
        n += len(lines)
        if limit is None or len(out) < limit:
            out.extend(lines if limit is None else lines[:limit - len(out)])
    return out, n


# ---------------------------------------------------------------------------------------------
# Training and the canonical model
# ---------------------------------------------------------------------------------------------


def _model_pb2():
    from sentencepiece import sentencepiece_model_pb2

    return sentencepiece_model_pb2


def canonical_model(model: bytes) -> bytes:
    """The model without what names the training run's files (input paths, model prefix)."""
    proto = _model_pb2().ModelProto()
    proto.ParseFromString(model)
    del proto.trainer_spec.input[:]
    proto.trainer_spec.model_prefix = ""
    return proto.SerializeToString(deterministic=True)


def train_model(input_path, style: str, options: dict, seed: int = 0) -> bytes:
    """Train on ``input_path`` (a word TSV for ``mecab``, lines for ``raw``); the canonical model."""
    import sentencepiece as spm

    spm.set_random_generator_seed(int(seed))
    out = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(input=str(input_path), model_writer=out, **options)
    except RuntimeError as e:
        raise InputError(str(input_path), f"SentencePiece training failed: {e}") from None
    return canonical_model(out.getvalue())


def pieces(model: bytes) -> list[tuple[str, float, int]]:
    """``(piece, score, type)`` in id order (types: 1 normal, 2 unknown, 3 control, 4 user defined)."""
    proto = _model_pb2().ModelProto()
    proto.ParseFromString(model)
    return [(p.piece, p.score, p.type) for p in proto.pieces]


def check_specials(model: bytes, style: str) -> None:
    got = [p for p, _, _ in pieces(model)[:5]]
    want = list(specials(style))
    if got != want:
        raise RuntimeError(f"the trained model's first pieces are {got}, expected {want}")


# ---------------------------------------------------------------------------------------------
# The fast tokenizer (raw style)
# ---------------------------------------------------------------------------------------------


def fast_tokenizer(model: bytes):
    """A ``tokenizers.Tokenizer`` equal to the SentencePiece model (raw style, module docstring)."""
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

    proto = _model_pb2().ModelProto()
    proto.ParseFromString(model)
    vocab = [(p.piece, p.score) for p in proto.pieces]
    if proto.trainer_spec.model_type != proto.trainer_spec.UNIGRAM:
        raise ValueError("only a Unigram SentencePiece model ships as a fast tokenizer (raw style: model_type unigram)")
    tok = Tokenizer(models.Unigram(vocab, unk_id=proto.trainer_spec.unk_id, byte_fallback=False))
    norm = []
    if proto.normalizer_spec.precompiled_charsmap:
        norm.append(normalizers.Precompiled(proto.normalizer_spec.precompiled_charsmap))
    if proto.normalizer_spec.remove_extra_whitespaces:
        norm += [normalizers.Replace(Regex(" {2,}"), " "), normalizers.Strip(left=False, right=True)]
    tok.normalizer = normalizers.Sequence(norm)
    scheme = "first" if proto.normalizer_spec.add_dummy_prefix else "never"
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme=scheme, split=True)
    tok.decoder = decoders.Metaspace(replacement=SPIECE_UNDERLINE, prepend_scheme=scheme, split=True)
    special = [p for p, _, t in pieces(model) if t in (2, 3, 4)]
    tok.add_special_tokens([AddedToken(s, special=True, normalized=False) for s in special])
    cls, sep = "[CLS]", "[SEP]"
    tok.post_processor = processors.TemplateProcessing(
        single=f"{cls} $A {sep}", pair=f"{cls} $A {sep} {sep} $B {sep}",
        special_tokens=[(cls, tok.token_to_id(cls)), (sep, tok.token_to_id(sep))])
    return tok


def tokenizer_json(model: bytes) -> str:
    return fast_tokenizer(model).to_str(pretty=True)


# ---------------------------------------------------------------------------------------------
# Stats on the sample
# ---------------------------------------------------------------------------------------------


def _processor(model: bytes):
    import sentencepiece as spm

    return spm.SentencePieceProcessor(model_proto=model)


def measure_words(model: bytes, counts: Counter) -> dict:
    """Coverage, [UNK] rate and tokens per character over the sample's words (mecab style),
    each word encoded once and weighted by its count (exactly what the data stages produce)."""
    sp = _processor(model)
    unk = sp.unk_id()
    alphabet = _alphabet(model)
    tokens = chars = unks = covered = 0
    for w, c in counts.items():
        ids = _word_ids(sp, w)
        tokens += c * len(ids)
        unks += c * sum(1 for i in ids if i == unk)
        chars += c * len(w)
        covered += c * sum(1 for ch in w if ch in alphabet)
    return _rates(tokens, chars, unks, covered)


def measure_lines(model: bytes, lines: list[str]) -> dict:
    """The same rates over lines (raw style), and how often the fast tokenizer agrees with the
    ``sentencepiece`` processor (ids per line)."""
    sp = _processor(model)
    fast = fast_tokenizer(model)
    unk = sp.unk_id()
    alphabet = _alphabet(model)
    tokens = chars = unks = covered = mismatched = 0
    for k in range(0, len(lines), 4096):
        part = lines[k:k + 4096]
        slow = sp.encode(part)
        quick = [e.ids for e in fast.encode_batch(part, add_special_tokens=False)]
        for line, a, b in zip(part, slow, quick):
            mismatched += a != b
            norm = sp.normalize(line)
            tokens += len(b)
            unks += sum(1 for i in b if i == unk)
            text = norm.replace(SPIECE_UNDERLINE, "")
            chars += len(text)
            covered += sum(1 for ch in text if ch in alphabet)
    out = _rates(tokens, chars, unks, covered)
    out.update(measured_lines=len(lines), fast_vs_sentencepiece_mismatched_lines=mismatched)
    return out


def _alphabet(model: bytes) -> set[str]:
    return {ch for p, _, t in pieces(model) if t == 1 for ch in p if ch != SPIECE_UNDERLINE}


def _rates(tokens: int, chars: int, unks: int, covered: int) -> dict:
    return {"tokens": tokens, "characters": chars, "unk_tokens": unks, "unk_rate": unks / max(tokens, 1),
            "character_coverage_measured": covered / max(chars, 1),
            "tokens_per_character": tokens / max(chars, 1)}


def train(input_path, output_dir, *, style: str, vocab_size: int, model_type: str = "unigram",
          character_coverage: float = 0.9995, train_threads: int = 1, mecab_dic: str | None = "unidic_lite",
          threads: int = 1, seed: int = 0, max_piece_length: int = 16) -> dict:
    """Train and write ``spiece.model``, ``vocab.txt`` (+ ``tokenizer.json`` for raw) and
    ``train.stats.json`` into ``output_dir`` (each atomically); returns the stats."""
    from scripts.shared.common import atomic_path, write_json

    t0 = time.monotonic()
    opts = trainer_options(style, vocab_size=vocab_size, model_type=model_type,
                           character_coverage=character_coverage, train_threads=train_threads,
                           max_piece_length=max_piece_length)
    stats: dict = {"input": str(input_path), "style": style, "mecab_dic": mecab_dic if style == "mecab" else None,
                   "threads": threads, "seed": seed,
                   "trainer_options": {k: v for k, v in sorted(opts.items()) if k != "minloglevel"}}
    out_dir = os.fspath(output_dir)
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bertja-spm-") as tmp:
        if style == "mecab":
            if not mecab_dic:
                raise ValueError("the mecab style needs a MeCab dictionary")
            counts = count_words(input_path, mecab_dic, threads, stats)
            if not counts:
                raise InputError(str(input_path), "no words in the training text")
            train_input = os.path.join(tmp, "words.tsv")
            write_word_tsv(counts, train_input)
            lines = None
        else:  # the sample as it is (the trainer skips empty lines; its normaliser strips)
            lines, n_lines = read_lines(input_path, _MEASURE_LINES)
            if not n_lines:
                raise InputError(str(input_path), "no text in the training sample")
            stats.update(lines=n_lines)
            train_input = os.fspath(input_path)
        t1 = time.monotonic()
        model = train_model(train_input, style, opts, seed)
        stats["train_seconds"] = round(time.monotonic() - t1, 3)
    check_specials(model, style)
    table = pieces(model)
    kinds = collections.Counter({1: "normal", 2: "unknown", 3: "control", 4: "user_defined"}[t] for _, _, t in table)
    stats.update(vocab_size_requested=int(vocab_size), vocab_size=len(table),
                 vocab_size_over_request=max(0, len(table) - int(vocab_size)),
                 vocab_size_under_request=max(0, int(vocab_size) - len(table)), pieces_by_type=dict(sorted(kinds.items())),
                 special_tokens=list(specials(style)), model_sha256=hashlib.sha256(model).hexdigest())
    if len(table) != vocab_size:
        LOG.warning("vocab size: requested %s, actual %s (the sample does not support more pieces; later stages "
                    "use the actual size)", f"{vocab_size:,}", f"{len(table):,}")
    stats.update(measure_words(model, counts) if style == "mecab" else measure_lines(model, lines))
    files = {"spiece.model": model,
             "vocab.txt": "".join(p + "\n" for p, _, _ in table).encode("utf-8")}
    if style == "raw":
        files["tokenizer.json"] = tokenizer_json(model).encode("utf-8")
        if stats["fast_vs_sentencepiece_mismatched_lines"]:
            LOG.warning("the fast tokenizer and sentencepiece disagree on %d of %d sample lines (the data stages "
                        "and the shipped model both use the fast tokenizer)",
                        stats["fast_vs_sentencepiece_mismatched_lines"], stats["measured_lines"])
    for name, data in files.items():
        with atomic_path(os.path.join(out_dir, name)) as tmp_path:
            with open(tmp_path, "wb") as fh:
                fh.write(data)
        stats[f"{name.replace('.', '_')}_sha256"] = hashlib.sha256(data).hexdigest()
    stats["seconds"] = round(time.monotonic() - t0, 3)
    write_json(os.path.join(out_dir, "train.stats.json"), stats)
    LOG.info("built %s: %s pieces (%s requested), unk rate %.4f%%, %.3f tokens per character, coverage %.5f",
             out_dir, f"{len(table):,}", f"{vocab_size:,}", 100 * stats["unk_rate"], stats["tokens_per_character"],
             stats["character_coverage_measured"])
    return stats


# ---------------------------------------------------------------------------------------------
# Ids for the data stages (the interface of scripts.tokenizers.wordpiece.JapaneseTokenizer:
# encode_lines -> (ids, word_start, tokens_per_line), vocab, vocab_size, unk_id, clear_cache)
# ---------------------------------------------------------------------------------------------


def _word_ids(sp, word: str) -> list[int]:
    """transformers' ``SentencepieceTokenizer.tokenize`` + ``PieceToId`` on one MeCab word."""
    text = preprocess_word(word)
    out: list[int] = []
    for piece in sp.encode(text, out_type=str):
        if len(piece) > 1 and piece[-1] == "," and piece[-2].isdigit():
            cur = sp.encode(piece[:-1].replace(SPIECE_UNDERLINE, ""), out_type=str)
            if piece[0] != SPIECE_UNDERLINE and cur and cur[0][0] == SPIECE_UNDERLINE:
                if len(cur[0]) == 1:
                    cur = cur[1:]
                else:
                    cur[0] = cur[0][1:]
            cur.append(piece[-1])
            out.extend(sp.piece_to_id(p) for p in cur)
        else:
            out.append(sp.piece_to_id(piece))
    return out


def _vocab_of(model: bytes) -> dict[str, int]:
    return {p: i for i, (p, _, _) in enumerate(pieces(model))}


class MecabSentencePieceTokenizer(JapaneseTokenizer):
    """MeCab words, then SentencePiece per word: ids as ``BertJapaneseTokenizer(word_tokenizer_type=
    "mecab", subword_tokenizer_type="sentencepiece")`` gives them, with the fast batch path of
    :class:`~scripts.tokenizers.wordpiece.JapaneseTokenizer` (one MeCab parse per line, a word ->
    ids cache, ``word_start`` at the first piece of every MeCab word)."""

    def __init__(self, spm_file, mecab_dic: str = "unidic_lite", cache_words: int = 500_000):
        # not JapaneseTokenizer.__init__ (it reads a WordPiece vocab.txt): the same attributes
        with open(spm_file, "rb") as fh:
            self._model = fh.read()
        self.vocab_file = str(spm_file)
        self.subword = "sentencepiece"
        self.mecab_dic = mecab_dic
        self.vocab = _vocab_of(self._model)
        for t in BERT_SPECIALS:
            if t not in self.vocab:
                raise InputError(spm_file, f"SentencePiece model lacks special token {t}")
        self.vocab_size = len(self.vocab)
        self.unk_id = self.vocab["[UNK]"]
        self.special_ids = {t: self.vocab[t] for t in BERT_SPECIALS}
        self.cache_words = cache_words
        self._tagger = None
        self._sp = None
        self._reset_cache()

    @property
    def sp(self):
        if self._sp is None:
            self._sp = _processor(self._model)
        return self._sp

    def __getstate__(self):
        state = super().__getstate__()
        state["_sp"] = None
        return state

    def word_ids(self, word: str) -> list[int]:
        return _word_ids(self.sp, word)


class RawSentencePieceTokenizer:
    """Ids of whole lines by the shipped fast tokenizer (raw style); every piece starts a "word"
    (no MeCab words: masking is per token)."""

    subword = "sentencepiece"
    mecab_dic = None

    def __init__(self, tokenizer_file):
        with open(tokenizer_file, encoding="utf-8") as fh:
            self._json = fh.read()
        self.vocab_file = str(tokenizer_file)
        self._tok = None
        vocab = self.tokenizer.get_vocab(with_added_tokens=True)
        self.vocab = dict(sorted(vocab.items(), key=lambda kv: kv[1]))
        for t in ROBERTA_SPECIALS:
            if t not in self.vocab:
                raise InputError(tokenizer_file, f"tokenizer lacks special token {t}")
        self.vocab_size = max(self.vocab.values()) + 1
        self.unk_id = self.vocab["[UNK]"]

    @property
    def tokenizer(self):
        if self._tok is None:
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")  # used in forked workers
            from tokenizers import Tokenizer

            self._tok = Tokenizer.from_str(self._json)
        return self._tok

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_tok"] = None
        return state

    def clear_cache(self) -> None:
        pass

    def tokenize(self, text: str) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def encode_lines(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        enc = self.tokenizer.encode_batch(lines, add_special_tokens=False)
        per_line = np.fromiter((len(e.ids) for e in enc), np.int64, count=len(enc))
        ids = np.fromiter((i for e in enc for i in e.ids), np.int64, count=int(per_line.sum()))
        return ids, np.ones(ids.size, bool), per_line


def data_tokenizer(vocab_file, subword: str, mecab_dic: str | None = "unidic_lite", spm_file=None,
                   tokenizer_file=None):
    """The data stages' tokenizer for a tokenizer directory's files: WordPiece/character
    (:class:`JapaneseTokenizer`), MeCab + SentencePiece, or plain SentencePiece (fast tokenizer)."""
    if subword in ("wordpiece", "character"):
        return JapaneseTokenizer(vocab_file, subword, mecab_dic)
    if subword != "sentencepiece":
        raise ValueError(f"unknown subword tokenizer {subword!r}")
    if mecab_dic in (None, "", "none", "None"):
        if not tokenizer_file:
            raise InputError("--tokenizer-json", "plain SentencePiece needs its tokenizer.json")
        return RawSentencePieceTokenizer(tokenizer_file)
    if not spm_file:
        raise InputError("--spm-file", "MeCab + SentencePiece needs its spiece.model")
    return MecabSentencePieceTokenizer(spm_file, mecab_dic)


def file_sha256(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
