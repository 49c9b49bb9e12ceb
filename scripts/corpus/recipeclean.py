"""The recipe's Wikipedia cleaning, rule for rule (``cleaning.mode: recipe``).

This is an independent implementation of what cl-tohoku/bert-japanese's ``make_corpus_wiki.py``
does to one CirrusSearch page, so that the recipe corpora can be rebuilt as the recipe built them
(docs/cleaning.md measures the agreement on real text and lists the remaining differences).  The
project's own cleaning (:mod:`scripts.corpus.textclean`, ``cleaning.mode: project``) fixes several
of these rules' side effects; here they are kept on purpose.

Cleaning of the page ``text`` (:func:`recipe_clean_text`), in this order:

1. NFKC normalisation.
2. Every character that ``str.isprintable()`` rejects is deleted (tabs and line breaks too: they
   are *not* turned into spaces, so words around them are glued).
3. Reference markers ``[`` digits ``]`` are deleted (``\\d``: any Unicode decimal digit).
4. ``[要`` … ``]`` is deleted, up to the first ``]`` that follows at least one character after
   ``要`` (so ``[要]`` reaches to the next ``]``).
5. Templates: two or more ``{``, one or more characters that are not braces, two or more ``}``
   are deleted, in one left-to-right pass (of nested templates only the innermost goes; the
   closing braces run of the inner one is consumed whole).
6. Navigation: when the page has a title, everything from the start of the text up to and
   including the first `` > <title>`` that starts at offset 1 or later is deleted.  The title is
   the raw one from the dump (not NFKC-normalised), and the match may be anywhere in the text.
7. Footnotes: from the first `` ^ `` that has at least one character after it, the rest of the
   text is deleted.
8. Annotations: ``[要出典]``, ``[リンク切れ]`` and ``[`` … ``?]`` (the shortest span from a
   ``[`` to the next ``?]``, which may cross other brackets) are deleted.
9. Runs of whitespace become one space; the text is stripped.

Sentence splitting (:class:`RecipeSentenceSplitter`): MeCab with unidic-lite in the output
format its ``dicrc`` selects (``unidic``); a sentence ends after every token whose output fields
after the surface contain both ``記号`` and ``句点`` (in unidic-lite: the part of speech
``補助記号-句点``, which tags 。 ． ! ? and also an ASCII ``.``, so ``40.6`` or ``U.S.A.`` are
split as the recipe splits them with this dictionary).  The text between the last such token and
the end is the last sentence.  Each sentence is then stripped and kept when ``min <= len <= max``
characters and it does not contain ``\\displaystyle``.

Where the recipe would stop (a page without ``title``/``text``, an empty sentence with
``min_sentence_length: 0``) this module skips instead.  Pages longer than
``RECIPE_MECAB_CHUNK_BYTES`` are given to MeCab in pieces cut after a sentence end followed by a
space (the recipe gives MeCab the whole page, which for multi-megabyte pages needs gigabytes and
makes MeCab fail outright at about 4 MB; see docs/cleaning.md).
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter

from scripts.corpus.textclean import filter_sentences

RECIPE_MECAB_CHUNK_BYTES = 1 << 18

# --- text cleaning -----------------------------------------------------------------------------

_REF_NUMBER = re.compile(r"\[\d+\]")
_REF_YOU = re.compile(r"\[要.+?\]")
_TEMPLATE = re.compile(r"\{\{+[^{}]+\}\}+")
_ANNOTATION = re.compile(r"\[(?:要出典|リンク切れ|.+?\?)\]")
_SPACES = re.compile(r"\s+")


def recipe_clean_text(text: str, title: str | None = None) -> str:
    """The recipe's cleaning of one page's text (steps 1-9 of the module docstring)."""
    text = unicodedata.normalize("NFKC", text)
    if not text.isprintable():
        text = "".join(filter(str.isprintable, text))
    if "[" in text:
        text = _REF_YOU.sub("", _REF_NUMBER.sub("", text))
    if "{{" in text:
        text = _TEMPLATE.sub("", text)
    if title is not None:
        crumb = " > " + title
        at = text.find(crumb, 1)
        if at > 0:
            text = text[at + len(crumb):]
    at = text.find(" ^ ")
    if at >= 0 and at + 3 < len(text):
        text = text[:at]
    if "[" in text:
        text = _ANNOTATION.sub("", text)
    return _SPACES.sub(" ", text).strip()


# --- sentence splitting ------------------------------------------------------------------------

# The fields after the surface in unidic-lite's own output format (dicrc: node-format-unidic and
# unk-format-unidic), prefixed by the token's byte offsets.  The end-of-sentence test is made on
# exactly these fields, as the recipe makes it on the tagger's default output.
_NODE_FIELDS = r"%f[9]\t%f[6]\t%f[7]\t%F-[0,1,2,3]\t%f[4]\t%f[5]\t%f[23]"
_UNK_FIELDS = r"%m\t%m\t%m\t%F-[0,1,2,3]\t%f[4]\t%f[5]\t0"
_CUT_AFTER = re.compile(rb"(?:\xe3\x80\x82|[.!?]) ")  # 。 . ! ? then a space: a safe piece end


def _recipe_tagger():
    import os

    import MeCab
    import unidic_lite

    dicdir = unidic_lite.DICDIR
    rc = os.path.join(dicdir, "mecabrc")
    return MeCab.Tagger(f'-r "{rc}" -d "{dicdir}" --output-format-type= '
                        f'"--node-format=%ps,%pe\\t{_NODE_FIELDS}\\n" '
                        f'"--unk-format=%ps,%pe\\t{_UNK_FIELDS}\\n" --bos-format= --eos-format=')


def _pieces(data: bytes, limit: int):
    """Byte ranges of ``data`` of at most ``limit`` bytes where possible, cut after a sentence end
    and a space, else after a space, else at a character boundary."""
    base, n = 0, len(data)
    while base < n:
        stop = min(base + limit, n)
        if stop < n:
            cut = -1
            for m in _CUT_AFTER.finditer(data, base + 1, stop):
                cut = m.end()
            if cut <= base:
                cut = data.rfind(b" ", base + 1, stop) + 1
            if cut <= base:
                cut = stop
                while cut > base and (data[cut] & 0xC0) == 0x80:
                    cut -= 1
            stop = cut
        yield base, stop
        base = stop


class RecipeSentenceSplitter:
    """Split text after every MeCab token whose fields contain 記号 and 句点 (the recipe's rule)."""

    def __init__(self):
        self.tagger = _recipe_tagger()

    def end_offsets(self, text: str) -> list[int]:
        """Character offsets just after each sentence-ending token."""
        data = text.encode("utf-8")
        ends: list[int] = []
        for base, stop in _pieces(data, RECIPE_MECAB_CHUNK_BYTES):
            out = self.tagger.parse(data[base:stop].decode("utf-8"))
            if out is None:
                raise RuntimeError(f"MeCab failed on a piece of {stop - base} bytes")
            at = out.find("句点")
            while at >= 0:
                start = out.rfind("\n", 0, at) + 1
                end = out.find("\n", at)
                head, _, fields = out[start:end].partition("\t")
                if "記号" in fields:
                    ends.append(base + int(head.partition(",")[2]))
                at = out.find("句点", end)
        # byte offsets -> character offsets, incrementally
        chars, last, pos = [], 0, 0
        for b in ends:
            pos += len(data[last:b].decode("utf-8"))
            last = b
            chars.append(pos)
        return chars

    def split(self, text: str) -> list[str]:
        out, start = [], 0
        for end in self.end_offsets(text):
            out.append(text[start:end])
            start = end
        if text[start:]:
            out.append(text[start:])
        return out

    __call__ = split


def recipe_filter(sentences, min_length: int = 0, max_length: int = 0,
                  counts: Counter | None = None) -> list[str]:
    """Strip each sentence; keep it when ``min_length <= len <= max_length`` (0: no limit) and it
    has no ``\\displaystyle``; dropped ones are counted by reason (empty ones as ``empty``)."""
    stripped = []
    for s in sentences:
        s = s.strip()
        if s:
            stripped.append(s)
        elif counts is not None:
            counts["empty"] += 1
    return filter_sentences(stripped, min_length, max_length, drop_math=True, counts=counts)


def recipe_wiki_sentences(text: str, title: str | None, splitter: RecipeSentenceSplitter | None,
                          min_length: int = 0, max_length: int = 0,
                          counts: Counter | None = None) -> list[str]:
    """One page through the recipe: clean, split (whole text as one unit without a splitter),
    filter."""
    cleaned = recipe_clean_text(text, title)
    if not cleaned:
        return []
    units = splitter.split(cleaned) if splitter is not None else [cleaned]
    return recipe_filter(units, min_length, max_length, counts)
