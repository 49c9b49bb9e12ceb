"""Character spans of tokens, for tokenizers with and without offsets, and answer-span recovery.

Extractive QA needs, for every context token, the characters of the context it came from: the
answer's characters become start/end token labels, and a predicted token span becomes the answer
text (``context[start:end]``, the original characters, not the tokens joined back).

* Tokenizers that give offsets (``tokenizer.is_fast``): ``return_offsets_mapping``.
* Slow tokenizers (transformers' ``BertJapaneseTokenizer``: MeCab + WordPiece or characters, which
  NFKC-normalises the text first and may emit ``[UNK]`` for a whole word): :func:`align` matches
  the tokens, one after another, against the NFKC-normalised text. The normalised text keeps, for
  each of its characters, the index of the original character it came from (a base character and
  the combining marks after it are normalised together, so ``ｶﾞ`` -> ``ガ`` maps back to both), so a
  token's span is in the original text even when normalisation changed its length (``㍻`` ->
  ``平成``). Subword markers (``##``, SentencePiece's ``▁``) are stripped before matching; only
  whitespace and invisible characters may lie between two matched tokens. A token that cannot be
  matched there (``[UNK]``, or a token whose surface differs from the text) takes the characters
  between its matched neighbours; consecutive unmatched tokens share them one character, one
  whitespace-separated piece or one word of the tokenizer's own word splitter (MeCab) each,
  whichever count agrees, else the first takes them all.
"""

from __future__ import annotations

import unicodedata
from typing import Sequence

Span = tuple[int, int] | None

MARKERS = ("##", "\u2581")
_INVISIBLE = {"Cc", "Cf", "Zs", "Zl", "Zp", "Mn", "Me"}
MAX_GAP_PER_TOKEN = 64


def _clusters(text: str):
    """``(start, end)`` of base characters with the combining marks that follow them."""
    i, n = 0, len(text)
    while i < n:
        j = i + 1
        while j < n and (unicodedata.combining(text[j]) or text[j] in "\uff9e\uff9f\u3099\u309a"):
            j += 1
        yield i, j
        i = j


def normalized_with_map(text: str, lower: bool = False) -> tuple[str, list[int], list[int]]:
    """NFKC(text) built cluster by cluster, and for each of its characters the original
    characters ``[start, end)`` it came from (its own character when the cluster kept its length,
    else the whole cluster)."""
    out, starts, ends = [], [], []
    for i, j in _clusters(text):
        n = unicodedata.normalize("NFKC", text[i:j])
        if lower:
            n = n.lower()
        same = len(n) == j - i
        for k, ch in enumerate(n):
            out.append(ch)
            starts.append(i + k if same else i)
            ends.append(i + k + 1 if same else j)
    return "".join(out), starts, ends


def _surface(token: str, lower: bool) -> str:
    for m in MARKERS:
        if token.startswith(m):
            token = token[len(m):]
            break
    token = unicodedata.normalize("NFKC", token)
    return token.lower() if lower else token


def _blank(s: str) -> bool:
    return all(unicodedata.category(c) in _INVISIBLE for c in s)


def _trim(norm: str, a: int, b: int) -> tuple[int, int]:
    while a < b and _blank(norm[a]):
        a += 1
    while b > a and _blank(norm[b - 1]):
        b -= 1
    return a, b


def _locate(norm: str, pos: int, words: Sequence[str]) -> list[tuple[int, int]] | None:
    out = []
    for w in words:
        j = norm.find(w, pos)
        if j < 0 or not _blank(norm[pos:j]):
            return None
        out.append((j, j + len(w)))
        pos = j + len(w)
    return out


def align(text: str, tokens: Sequence[str], *, unk_token: str | None = "[UNK]", lower: bool = False,
          split_words=None) -> list[Span]:
    """The ``(start, end)`` characters of ``text`` each token covers (``None``: none found).

    ``split_words(text) -> words``: the tokenizer's word splitter (MeCab for
    ``BertJapaneseTokenizer``), used to share the characters of several consecutive unmatched
    tokens (one ``[UNK]`` per unknown word) when neither characters nor whitespace pieces match
    their count."""
    norm, starts, ends = normalized_with_map(text, lower)
    spans: list[Span] = [None] * len(tokens)

    def to_orig(a: int, b: int) -> Span:
        return (starts[a], ends[b - 1]) if b > a else None

    def settle(pending: list[int], a: int, b: int) -> None:
        a, b = _trim(norm, a, b)
        if not pending or b <= a:
            return
        gap = norm[a:b]
        chars = [k for k in range(a, b) if not _blank(norm[k])]
        if len(pending) == 1:
            spans[pending[0]] = to_orig(a, b)
        elif len(chars) == len(pending):
            for t, k in zip(pending, chars):
                spans[t] = to_orig(k, k + 1)
        else:
            pieces, k = [], a
            for part in gap.split():
                s = norm.index(part, k)
                pieces.append((s, s + len(part)))
                k = s + len(part)
            if len(pieces) != len(pending) and split_words is not None:
                pieces = _locate(norm, a, split_words(gap))
            if pieces is not None and len(pieces) == len(pending):
                for t, (s, e) in zip(pending, pieces):
                    spans[t] = to_orig(s, e)
            else:
                spans[pending[0]] = to_orig(a, b)

    pos = 0
    pending: list[int] = []
    for t, token in enumerate(tokens):
        if unk_token is not None and token == unk_token:
            pending.append(t)
            continue
        piece = _surface(token, lower)
        if not piece:
            continue  # a bare marker: covers no character
        j = norm.find(piece, pos)
        ok = j >= 0 and (_blank(norm[pos:j]) if not pending
                         else j - pos <= MAX_GAP_PER_TOKEN * len(pending))
        if not ok:
            pending.append(t)
            continue
        settle(pending, pos, j)
        pending = []
        spans[t] = to_orig(j, j + len(piece))
        pos = j + len(piece)
    settle(pending, pos, len(norm))
    return spans


def encode_with_spans(tokenizer, text: str) -> tuple[list[int], list[Span]]:
    """Token ids of ``text`` (no special tokens added) and each one's character span."""
    if getattr(tokenizer, "is_fast", False):
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return list(enc["input_ids"]), [tuple(o) if o[1] > o[0] else None for o in enc["offset_mapping"]]
    tokens = tokenizer.tokenize(text)
    lower = bool(getattr(tokenizer, "do_lower_case", False))
    words = getattr(tokenizer, "word_tokenizer", None)
    split = words.tokenize if words is not None and hasattr(words, "tokenize") else None
    return tokenizer.convert_tokens_to_ids(tokens), align(text, tokens, unk_token=tokenizer.unk_token, lower=lower,
                                                          split_words=split)


def token_span_of(spans: Sequence[Span], start: int, end: int) -> tuple[int, int] | None:
    """First and last token overlapping characters ``[start, end)`` (``None``: no token does)."""
    hit = [t for t, s in enumerate(spans) if s is not None and s[1] > start and s[0] < end]
    return (hit[0], hit[-1]) if hit else None


def recovery(context: str, spans: Sequence[Span], answer: str, start: int) -> tuple[str, tuple[int, int] | None]:
    """How well the tokens recover an answer: ``("exact" | "partial" | "lost", token span)``.

    exact: the covering tokens' characters are exactly the answer; partial: they cover it and
    more (a token straddles an answer boundary); lost: no token covers it.
    """
    end = start + len(answer)
    ts = token_span_of(spans, start, end)
    if ts is None:
        return "lost", None
    got = context[spans[ts[0]][0]:spans[ts[1]][1]]
    return ("exact" if got.strip() == answer.strip() else "partial"), ts
