"""Text cleaning and sentence splitting shared by the corpus stages.

Wikipedia (``clean_wiki_text`` + ``SentenceSplitter`` + ``filter_sentences``; ``cleaning.mode:
project``) follows the recipe's ``make_corpus_wiki.py`` in spirit and fixes its side effects (the
rule-for-rule reproduction is :mod:`scripts.corpus.recipeclean`, ``cleaning.mode: recipe``;
docs/cleaning.md compares the two):

1. NFKC normalisation.
2. Whitespace control characters (tab, CR, LF, VT, FF, U+0085, U+2028/2029, ...) become a space,
   then every other character that ``str.isprintable()`` rejects is dropped (zero-width spaces,
   BOMs, bidi marks, other controls).  *Decision:* the recipe drops tabs/newlines outright, which
   glues Latin words together; turning them into a space first is harmless for Japanese.
3. Runs of whitespace collapse to one space.
4. Reference markers ``[1]``, ``[注 2]``, ``[注釈 3]`` and annotations ``[要出典]``,
   ``[要ページ番号]``, ``[リンク切れ]``, ``[いつ?]`` are removed; ``{{...}}`` template remnants are
   removed (innermost first, so nested templates go too).
5. Navigation at the start of the text is removed: the "出典: フリー百科事典『ウィキペディア
   (Wikipedia)』" boilerplate, a breadcrumb ``Parent > Title`` (the recipe's rule, limited here to
   a short prefix without 。), and a leading run of hatnote sentences ("この項目では、…について
   説明しています。…については「…」をご覧ください。", "「…」はこの項目へ転送されています。").
6. Trailing apparatus is cut: everything from the first `` ^ `` (footnote list, as in the recipe)
   and, *decision beyond the recipe*, everything from a space-delimited section word 脚注, 注釈,
   出典, 参考文献, 関連項目, 外部リンク (these lists carry no sentences and would otherwise
   survive as one long pseudo-sentence).
7. Sentences are split with MeCab (unidic-lite) and filtered by length in characters; sentences
   containing ``\\displaystyle`` (rendered math) are dropped.

Sentence splitting (``SentenceSplitter``): a sentence ends after a token that MeCab tags as
句点 (``補助記号-句点``) whose surface is made of 。 ! ? (after NFKC, ！？ are ASCII).  So "3.14"
or "Yahoo!で" are not split: "." is never an end, and an ASCII ! or ? directly after a Latin
letter or digit and directly followed by more text is treated as part of a name.  After the end
token the sentence also takes any further end marks and closing brackets (``。」``, ``!?``,
``)``).  No split happens inside a matched bracket pair (「」『』()[]【】〈〉《》〔〕“”‘’) that spans
at most ``MAX_BRACKET_CHARS`` characters (longer spans are treated as unbalanced, so a stray
opening bracket cannot swallow a paragraph).  So ``彼は「行く。」と言った。`` stays one sentence,
while a quotation that is a sentence of its own (``…と言った。「明日は晴れる。」 次の…``,
``「はい。」「いいえ。」``) is split after its closing bracket: that happens when the bracket is
followed by a space, the end of the text or another opening bracket.  Long texts are fed to
MeCab in pieces of about ``MECAB_CHUNK_BYTES`` cut at spaces, so memory stays bounded on huge
pages.  (The recipe split with NEologd; this project's only dictionary is unidic-lite, whose
句点 tags 。！？ and also ．, hence the surface check.)

Also here: :class:`SkipLog` (per-reason skip counters with rate-limited file:line warnings),
shared by the corpus CLIs.

CC-100 (``clean_paragraph``): NFKC, whitespace controls to space, non-printables dropped,
whitespace collapsed; optionally sentence split and length-filtered (a length limit of 0 means
no limit).  The recipe itself shards CC-100 lines unchanged.
"""

from __future__ import annotations

import bisect
import re
import unicodedata
from collections import Counter

MAX_BRACKET_CHARS = 200
NAV_PREFIX_CHARS = 200
MECAB_CHUNK_BYTES = 1 << 16

# ---------------------------------------------------------------------------------------------
# Character-level normalisation
# ---------------------------------------------------------------------------------------------

_WS_RE = re.compile(r"\s+")  # str.isspace(): also tab/CR/LF/VT/FF, U+001C-001F, U+0085, U+2028/9


def normalize_text(text: str) -> str:
    """NFKC, whitespace controls to spaces, non-printables dropped, whitespace collapsed."""
    text = _WS_RE.sub(" ", unicodedata.normalize("NFKC", text))
    if not text.isprintable():  # C-level check; the filter below runs on few texts
        text = _WS_RE.sub(" ", "".join(filter(str.isprintable, text)))
    return text.strip()


# ---------------------------------------------------------------------------------------------
# Wikipedia-specific cleaning
# ---------------------------------------------------------------------------------------------

# [1] [23] [注 1] [注釈 2] [† 3] [a 1]; [要出典] [要ページ番号] [要検証 – ノート]; [リンク切れ]; [いつ?]
_MARKER_RE = re.compile(
    r"\[(?:[^\[\]\s\d]{0,4} ?)?\d{1,4}\]"
    r"|\[要[^\[\]]{0,40}\]"
    r"|\[(?:リンク切れ|信頼性要検証|疑問点[^\[\]]{0,20})\]"
    r"|\[[^\[\]]{1,20}\?\]"
)
_TEMPLATE_RE = re.compile(r"\{\{[^{}]*\}\}")
_BOILERPLATE_RE = re.compile(r"^出典: ?フリー百科事典『ウィキペディア ?\(Wikipedia\)』 ?")
_HATNOTE_RE = re.compile(
    r"^(?:[^。]{0,200}?(?:説明しています|記述しています|をご覧ください|を参照してください"
    r"|転送されています)。 ?)+"
)
_TRAILER_RE = re.compile(r" \^ | (?:脚注|注釈|出典|参考文献|関連項目|外部リンク)(?= |$)")


def remove_markers(text: str) -> str:
    """Drop footnote markers, [要…] annotations and {{template}} remnants."""
    if "[" in text:
        text = _MARKER_RE.sub("", text)
    while "{{" in text:
        new = _TEMPLATE_RE.sub("", text)
        if new == text:
            break
        text = new
    return text


def remove_navigation(text: str, title: str | None = None) -> str:
    """Remove boilerplate, a ``Parent > Title`` breadcrumb and hatnotes at the start of ``text``."""
    text = _BOILERPLATE_RE.sub("", text)
    if title:
        idx = text.find(" > " + title, 0, NAV_PREFIX_CHARS + len(title) + 3)
        if idx > 0 and "。" not in text[:idx]:
            text = text[idx + 3 + len(title):].lstrip()
    return _HATNOTE_RE.sub("", text)


def remove_trailer(text: str) -> str:
    """Cut the footnote list (`` ^ ``) and trailing reference/link sections."""
    m = _TRAILER_RE.search(text)
    return text[:m.start()] if m else text


def clean_wiki_text(text: str, title: str | None = None) -> str:
    """The full Wikipedia cleaning of one page's ``text`` (a single line, no sentence split)."""
    text = normalize_text(text)
    text = remove_markers(text)
    if title:
        title = normalize_text(title)
    text = _WS_RE.sub(" ", text).strip()
    text = remove_navigation(text, title)
    text = remove_trailer(text)
    return _WS_RE.sub(" ", text).strip()


# ---------------------------------------------------------------------------------------------
# Sentence splitting
# ---------------------------------------------------------------------------------------------

_ENDERS = "。!?"
_OPEN_TO_CLOSE = {"「": "」", "『": "』", "(": ")", "[": "]", "【": "】", "〈": "〉", "《": "》",
                  "〔": "〕", "“": "”", "‘": "’"}
_CLOSE_TO_OPEN = {v: k for k, v in _OPEN_TO_CLOSE.items()}
_BRACKET_RE = re.compile("[" + re.escape("".join(_OPEN_TO_CLOSE) + "".join(_CLOSE_TO_OPEN)) + "]")
_END_RUN_RE = re.compile("[" + re.escape(_ENDERS + "".join(_CLOSE_TO_OPEN)) + "]*")
_HAS_ENDER_RE = re.compile("[。!?]")
_ENDER_SURFACE_RE = re.compile(rb"(?:\xe3\x80\x82|!|\?)+")  # 。 ! ?
_MECAB_FMT = "%f[1]@%ps@%pe;"
_MECAB_HIT_RE = re.compile(r"句点@(\d+)@(\d+);")
_ASCII_ALNUM = frozenset(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def _make_tagger(dic: str = "unidic_lite"):
    import os

    import MeCab

    if dic != "unidic_lite":
        raise ValueError(f"unknown MeCab dictionary: {dic!r} (supported: unidic_lite)")
    import unidic_lite

    dicdir = unidic_lite.DICDIR
    rc = os.path.join(dicdir, "mecabrc")
    # The dictionary's dicrc selects its own output format; clear it so ours applies.
    return MeCab.Tagger(f'-r "{rc}" -d "{dicdir}" --output-format-type= --node-format={_MECAB_FMT} '
                        f'--unk-format={_MECAB_FMT} --bos-format= --eos-format=')


def _bracket_spans(text: str) -> tuple[list[int], list[int]]:
    """Disjoint (outermost) spans ``[open, close_end)`` of matched, short-enough bracket pairs."""
    stack: list[tuple[str, int]] = []
    spans: list[tuple[int, int]] = []
    for m in _BRACKET_RE.finditer(text):
        ch, pos = m.group(), m.start()
        if ch in _OPEN_TO_CLOSE:
            stack.append((ch, pos))
            continue
        want = _CLOSE_TO_OPEN[ch]
        for k in range(len(stack) - 1, max(len(stack) - 4, -1), -1):
            if stack[k][0] == want:
                start = stack[k][1]
                del stack[k:]
                if pos + 1 - start <= MAX_BRACKET_CHARS:
                    spans.append((start, pos + 1))
                break
    if not spans:
        return [], []
    spans.sort()
    starts, ends = [], []
    for s, e in spans:
        if starts and s < ends[-1]:
            ends[-1] = max(ends[-1], e)
        else:
            starts.append(s)
            ends.append(e)
    return starts, ends


class SentenceSplitter:
    """Split cleaned text into sentences at MeCab 句点 tokens (see the module docstring)."""

    def __init__(self, dic: str = "unidic_lite"):
        self.tagger = _make_tagger(dic)

    def _end_tokens(self, text: str) -> list[tuple[int, int]]:
        """Character offsets ``(start, end)`` of 。!? tokens that MeCab tags as 句点."""
        data = text.encode("utf-8")
        byte_hits: list[tuple[int, int]] = []
        base = 0
        n = len(data)
        while base < n:
            stop = min(base + MECAB_CHUNK_BYTES, n)
            if stop < n:
                cut = data.rfind(b" ", base + 1, stop)
                if cut <= base:
                    cut = stop
                    while cut > base and (data[cut] & 0xC0) == 0x80:
                        cut -= 1
                stop = cut
            piece = data[base:stop].decode("utf-8")
            for m in _MECAB_HIT_RE.finditer(self.tagger.parse(piece)):
                ps, pe = base + int(m.group(1)), base + int(m.group(2))
                if _ENDER_SURFACE_RE.fullmatch(data, ps, pe) is None:
                    continue
                if data[ps] in b"!?" and ps > 0 and data[ps - 1] in _ASCII_ALNUM \
                        and pe < n and data[pe] not in b" )]\"'":
                    continue  # "Yahoo!で", "Jeopardy!の": part of a name
                byte_hits.append((ps, pe))
            base = stop
        # byte offsets -> character offsets, incrementally
        hits = []
        bpos = cpos = 0
        for ps, pe in byte_hits:
            cpos += len(data[bpos:ps].decode("utf-8"))
            cs = cpos
            cpos += len(data[ps:pe].decode("utf-8"))
            bpos = pe
            hits.append((cs, cpos))
        return hits

    def split(self, text: str) -> list[str]:
        text = text.strip()
        if not text:
            return []
        if _HAS_ENDER_RE.search(text) is None:
            return [text]
        starts, ends = _bracket_spans(text)
        n = len(text)
        out = []
        start = 0
        for cs, ce in self._end_tokens(text):
            if ce <= start:
                continue  # already consumed by a previous end run
            cut = _END_RUN_RE.match(text, ce).end()
            k = bisect.bisect_right(starts, cs) - 1
            if k >= 0 and cs < ends[k]:
                # inside a bracket span: split only when the quotation ends the sentence
                if cut < ends[k]:
                    continue
                if cut < n and text[cut] != " " and text[cut] not in _OPEN_TO_CLOSE:
                    continue
            sentence = text[start:cut].strip()
            if sentence:
                out.append(sentence)
            start = cut
        tail = text[start:].strip()
        if tail:
            out.append(tail)
        return out

    __call__ = split


def filter_sentences(sentences, min_length: int = 0, max_length: int = 0,
                     drop_math: bool = True, counts: Counter | None = None) -> list[str]:
    """Keep sentences with ``min_length <= len <= max_length`` characters (0: no limit) and, with
    ``drop_math``, without ``\\displaystyle``; dropped ones are counted by reason in ``counts``."""
    kept = []
    for s in sentences:
        n = len(s)
        if min_length and n < min_length:
            reason = "too_short"
        elif max_length and n > max_length:
            reason = "too_long"
        elif drop_math and "\\displaystyle" in s:
            reason = "math"
        else:
            kept.append(s)
            continue
        if counts is not None:
            counts[reason] += 1
    return kept


def wiki_sentences(text: str, title: str | None, splitter: SentenceSplitter | None,
                   min_length: int = 0, max_length: int = 0,
                   counts: Counter | None = None) -> list[str]:
    """Clean one Wikipedia page and return its surviving sentences (or the whole cleaned text as
    one unit when ``splitter`` is None)."""
    cleaned = clean_wiki_text(text, title)
    if not cleaned:
        return []
    units = splitter.split(cleaned) if splitter is not None else [cleaned]
    return filter_sentences(units, min_length, max_length, drop_math=True, counts=counts)


def clean_paragraph(line: str, splitter: SentenceSplitter | None = None, min_length: int = 0,
                    max_length: int = 0, counts: Counter | None = None) -> list[str]:
    """Clean one CC-100 paragraph; returns 0..n output lines (sentences when ``splitter``)."""
    text = normalize_text(line)
    if not text:
        if counts is not None:
            counts["empty"] += 1
        return []
    units = splitter.split(text) if splitter is not None else [text]
    return filter_sentences(units, min_length, max_length, drop_math=False, counts=counts)


# ---------------------------------------------------------------------------------------------
# Parallel helper shared by the corpus stages
# ---------------------------------------------------------------------------------------------


class SkipLog:
    """Count skipped input by reason; log the first ``limit`` of each reason with file:line."""

    def __init__(self, logger, limit: int = 20):
        self.log = logger
        self.limit = limit
        self.counts: Counter = Counter()

    def __call__(self, reason: str, path, line: int | None, detail: str = "", quiet: bool = False):
        self.counts[reason] += 1
        if quiet:
            return
        n = self.counts[reason]
        if n <= self.limit:
            where = f"{path}:{line}" if line is not None else str(path)
            self.log.warning("%s: skipped (%s)%s", where, reason, f": {detail}" if detail else "")
            if n == self.limit:
                self.log.warning("further '%s' skips are counted but not logged", reason)


def human_bytes(n: float) -> str:
    """``1234567`` -> ``'1.2 MB'`` (for log lines)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "B" else f"{n:,.1f} {unit}"
        n /= 1000
    return f"{n:,.1f} GB"
