"""MeCab + WordPiece / character tokenisation to ids, equal to transformers' BertJapaneseTokenizer.

``BertJapaneseTokenizer(vocab_file, word_tokenizer_type="mecab", mecab_kwargs={"mecab_dic":
"unidic_lite"}, subword_tokenizer_type="wordpiece" | "character", do_lower_case=False)`` does, for
one text (facts read from transformers 5.x, re-implemented here):

1. split the raw text on the literal special tokens ([PAD] [UNK] [CLS] [SEP] [MASK]; no
   stripping around them); each special token becomes its own id;
2. every other piece: Unicode NFKC, then MeCab (unidic-lite) surfaces, one parse per piece;
3. every MeCab word:
   * wordpiece: whitespace-split (``str.split()``); a part longer than 100 characters is
     ``[UNK]``; else greedy longest-match-first with ``##`` continuations, and a part with an
     unmatchable position is a single ``[UNK]``;
   * character: NFKC of the word again, then one token per character, ``[UNK]`` when not in the
     vocabulary.

Vocabulary: one token per line, read as transformers reads it (universal newlines, a repeated
token keeps its last line number).

For speed, :class:`JapaneseTokenizer` segments with mecab-python3 in wakati mode (the same MeCab
lattice as fugashi's surfaces: a surface never contains a space, which MeCab treats as a
separator) and memoises word -> ids in a bounded cache kept as numpy CSR arrays, so a batch of
lines becomes ids with one dict lookup per word and numpy gathers. :meth:`encode_lines` also
returns which token starts a MeCab word (whole-word masking) and the token count per line.
"""

from __future__ import annotations

import re
import unicodedata
from itertools import repeat

import numpy as np

from scripts.shared.common import InputError, mecab_tagger

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MAX_INPUT_CHARS_PER_WORD = 100
_SPECIAL_RE = re.compile("(" + "|".join(re.escape(t) for t in SPECIAL_TOKENS) + ")")


def load_vocab(path) -> dict[str, int]:
    """Token -> id as transformers' ``load_vocab`` builds it."""
    vocab: dict[str, int] = {}
    try:
        with open(path, "r", encoding="utf-8") as fh:
            lines = fh.readlines()
    except UnicodeDecodeError as e:
        raise InputError(path, f"vocabulary is not UTF-8 ({e.reason})") from None
    except OSError as e:
        raise InputError(path, f"cannot read the vocabulary: {e.strerror}") from None
    for index, token in enumerate(lines):
        vocab[token.rstrip("\n")] = index
    missing = [t for t in ("[UNK]", "[CLS]", "[SEP]", "[MASK]") if t not in vocab]
    if missing:
        raise InputError(path, f"vocabulary lacks special tokens {missing}")
    return vocab


class JapaneseTokenizer:
    """Ids for lines of text, as BertJapaneseTokenizer would produce them (see module doc)."""

    def __init__(self, vocab_file, subword: str = "wordpiece", mecab_dic: str = "unidic_lite",
                 cache_words: int = 500_000):
        if subword not in ("wordpiece", "character"):
            raise ValueError(f"unknown subword tokenizer {subword!r} (wordpiece or character)")
        self.vocab_file = str(vocab_file)
        self.subword = subword
        self.mecab_dic = mecab_dic
        self.vocab = load_vocab(vocab_file)
        self.vocab_size = max(self.vocab.values()) + 1
        self.unk_id = self.vocab["[UNK]"]
        self.special_ids = {t: self.vocab.get(t, self.unk_id) for t in SPECIAL_TOKENS}
        self.cache_words = cache_words
        self._tagger = None
        self._reset_cache()

    # -- pickling: workers rebuild the MeCab tagger and start with an empty cache -------------
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_tagger"] = None
        for k in ("_index", "_np_flat", "_np_off", "_n_types"):
            state.pop(k, None)
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._reset_cache()

    @property
    def tagger(self):
        if self._tagger is None:
            self._tagger = mecab_tagger(self.mecab_dic)
        return self._tagger

    def _reset_cache(self) -> None:
        self._index: dict = {}
        self._np_flat = np.zeros(1 << 16, np.int64)  # ids of all cached words, concatenated
        self._np_off = np.zeros(1 << 14, np.int64)   # word type t: _np_flat[off[t]:off[t + 1]]
        self._n_types = 0
        self._add_words([b"\n"])  # type 0: the line end marker, no tokens

    _NEWLINE = 0

    def clear_cache(self) -> None:
        """Drop the word -> ids cache (frees its memory; results never depend on it)."""
        self._reset_cache()

    # -- reference-equivalent word -> subword ids ---------------------------------------------
    def word_ids(self, word: str) -> list[int]:
        """Subword ids of one MeCab surface."""
        vocab = self.vocab
        if self.subword == "character":
            unk = self.unk_id
            return [vocab.get(c, unk) for c in unicodedata.normalize("NFKC", word)]
        out: list[int] = []
        for part in word.split():
            if len(part) > MAX_INPUT_CHARS_PER_WORD:
                out.append(self.unk_id)
                continue
            tid = vocab.get(part)
            if tid is not None:
                out.append(tid)
                continue
            start, n, pieces = 0, len(part), []
            while start < n:
                end = n
                found = None
                while start < end:
                    sub = part[start:end] if start == 0 else "##" + part[start:end]
                    found = vocab.get(sub)
                    if found is not None:
                        break
                    end -= 1
                if found is None:
                    pieces = [self.unk_id]
                    break
                pieces.append(found)
                start = end
            out.extend(pieces)
        return out

    def words(self, text: str) -> list[str | int]:
        """MeCab words of one line; a literal special token appears as its id (an int)."""
        if "[" in text and _SPECIAL_RE.search(text):
            out: list[str | int] = []
            for k, piece in enumerate(_SPECIAL_RE.split(text)):
                if k % 2:
                    out.append(self.special_ids[piece])
                elif piece:
                    out.extend(self._mecab(piece))
            return out
        return self._mecab(text)

    def _wakati_with_specials(self, text: str) -> str:
        parts = []
        for k, piece in enumerate(_SPECIAL_RE.split(text)):
            if k % 2:
                parts.append("\0" + piece + " ")
            elif piece:
                wakati = self.tagger.parse(unicodedata.normalize("NFKC", piece))
                parts.append(wakati[:-1])  # drop "\n"; words end with " "
        return "".join(parts) + "\n"

    def _mecab(self, text: str) -> list[str]:
        words = self.tagger.parse(unicodedata.normalize("NFKC", text)).split(" ")
        words.pop()  # the trailing "\n"
        return words

    def tokenize(self, text: str) -> list[int]:
        """Ids of one text (no [CLS]/[SEP] added), for tests and tools."""
        out: list[int] = []
        for w in self.words(text):
            out.extend([w] if isinstance(w, int) else self.word_ids(w))
        return out

    # -- fast batch path ----------------------------------------------------------------------
    def _word_ids_cached(self, word: bytes) -> list[int]:
        if word == b"\n":
            return []
        text = word.decode("utf-8")
        if text[:1] == "\0":
            return [self.special_ids[text[1:]]]
        return self.word_ids(text)

    def _add_words(self, new_words: list) -> None:
        """Append word types (in order) to the cache's CSR arrays."""
        pieces = [self._word_ids_cached(w) for w in new_words]
        lens = np.fromiter(map(len, pieces), np.int64, count=len(pieces))
        flat = np.fromiter((i for p in pieces for i in p), np.int64, count=int(lens.sum()))
        t0, f0 = self._n_types, int(self._np_off[self._n_types])
        t1, f1 = t0 + len(pieces), f0 + flat.size
        if t1 + 1 > self._np_off.size:
            self._np_off = np.resize(self._np_off, max(2 * self._np_off.size, t1 + 1))
        if f1 > self._np_flat.size:
            self._np_flat = np.resize(self._np_flat, max(2 * self._np_flat.size, f1))
        self._np_off[t0 + 1:t1 + 1] = f0 + np.cumsum(lens)
        self._np_flat[f0:f1] = flat
        index = self._index
        for t, w in enumerate(new_words, t0):
            index[w] = t
        self._n_types = t1

    def encode_lines(self, lines: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(ids int64, word_start bool, tokens_per_line int64)`` for a batch of lines.

        The wakati outputs of all lines are joined, encoded and split once (bytes words); each
        line's trailing "\n" becomes a word of its own that maps to the zero-token type
        ``_NEWLINE`` and marks the line ends. Literal special tokens become the words
        ``"\0[SEP]"`` etc. (NUL never reaches MeCab: corpus lines have it removed, and such
        words map to the special ids).
        """
        parse = self.tagger.parse
        normalize = unicodedata.normalize
        is_normalized = unicodedata.is_normalized
        special = _SPECIAL_RE.search
        outs = []
        out = outs.append
        for line in lines:
            if "[" in line and special(line):
                out(self._wakati_with_specials(line))
                continue
            if not is_normalized("NFKC", line):
                line = normalize("NFKC", line)
            out(parse(line))
        # bytes: cheaper to split into and to hash than str (the cache is keyed by UTF-8 bytes)
        words = " ".join(outs).encode("utf-8").split(b" ")
        del outs
        get = self._index.get
        types = np.fromiter(map(get, words, repeat(-1)), np.int64, count=len(words))
        missing = np.flatnonzero(types < 0)
        if missing.size:
            new_words = list(dict.fromkeys([words[i] for i in missing.tolist()]))
            self._add_words(new_words)
            missed = [words[i] for i in missing.tolist()]
            types[missing] = np.fromiter(map(self._index.__getitem__, missed), np.int64, count=len(missed))
        del words
        starts = self._np_off[types]
        lens = self._np_off[types + 1] - starts
        ends = np.cumsum(lens)
        total = int(ends[-1]) if lens.size else 0
        first = ends - lens
        ids = self._np_flat[np.repeat(starts - first, lens) + np.arange(total)]
        word_start = np.zeros(total, bool)
        word_start[first[lens > 0]] = True
        line_ends = ends[types == self._NEWLINE]  # tokens up to and including each line
        if line_ends.size != len(lines):
            raise AssertionError("MeCab output lines do not match the input lines")
        per_line = np.diff(line_ends, prepend=0)
        if self._n_types > self.cache_words:
            self._reset_cache()  # bounded memory; ids never depend on the cache
        return ids, word_start, per_line
