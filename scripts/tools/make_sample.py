"""Build the bundled sample corpus (``sample/``) from the hand-written text in ``sample/source/``.

Usage::

    python -m scripts.tools.make_sample --out-dir sample [--source-dir sample/source]

writes

* ``<out-dir>/wikipedia/jawiki-sample-cirrussearch-content.json.gz``: a CirrusSearch *content*
  dump in the Elasticsearch 7+ bulk format of current dumps (an
  ``{"index":{"_type":"_doc","_id":"…"}}`` line, then the page JSON with ``title``, ``text``,
  ``namespace``, ``opening_text``, ``heading``, ``category``, ``template``, ``timestamp``,
  ``wiki`` and a few other fields real dumps carry);
* ``<out-dir>/cc-100/ja.txt.xz``: CC-100 format, one paragraph per line and an empty line after
  every document.

Source material (``sample/source/``, original text written for this project):

* ``wiki_articles.txt``: encyclopedia-style articles.  ``= Title`` starts an article,
  ``@category A|B`` sets its categories, ``@disambiguation`` / ``@list`` mark pages that cleaning
  should drop, ``== Heading`` starts a section, every other line is a paragraph; ``$…$`` is math
  (rendered as ``{\\displaystyle …}`` like real dumps).
* ``web_docs.txt``: web documents.  ``@doc genre`` starts a document, every other line is a
  paragraph.
Blank lines and lines starting with ``#`` are ignored in both.

Assembly (deterministic: fixed seeds, fixed timestamp, no dependence on the environment):

* Wikipedia: one page per article, plus a split-out sub-article (``<Title>の<Heading>``, with a
  ``Parent > Child`` breadcrumb) for one section of every article with three or more sections.
  The page ``text`` is the paragraphs joined by spaces (headings live in ``heading``, as in real
  dumps) with the artefacts the cleaning must remove injected at random: the "出典: フリー百科事典
  『ウィキペディア（Wikipedia）』" boilerplate, hatnotes, reference markers (``[1]``, ``［２］``,
  ``[注 1]``, ``[要出典]``, ``[要ページ番号]``), ``{{…}}`` template remnants (some nested), odd
  whitespace (U+3000, U+00A0, tabs, newlines), invisible characters (U+200B, U+200E, U+FEFF,
  U+00AD), full-width Latin letters and digits, half-width katakana, and trailing 脚注 / 出典 /
  参考文献 / 関連項目 / 外部リンク sections.  Disambiguation and list pages are dropped whole by
  the cleaning; math sentences are dropped from the math page.
* CC-100: every source document once, with web boilerplate (breadcrumbs, dates, share buttons,
  URLs, copyright lines) and noise (emoji, repeated punctuation, half-width katakana, very short
  lines), plus archive pages and "related articles" pages that recombine excerpts of documents
  of the same genre — the way crawled blogs, shops and news sites repeat text — until the file
  reaches its target size.  Documents are shuffled with a fixed seed.

Compression is byte-reproducible: gzip level 9 with no file name and mtime 0 in the header; xz
preset 6 with a CRC64 check.
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import lzma
import random
import re
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from scripts.shared.common import atomic_path, run_cli

LOG = logging.getLogger("bertja.make_sample")

REPO = Path(__file__).resolve().parents[2]
DEFAULT_SOURCE = REPO / "sample" / "source"
WIKI_OUT = Path("wikipedia") / "jawiki-sample-cirrussearch-content.json.gz"
CC100_OUT = Path("cc-100") / "ja.txt.xz"

WIKI_SEED = 20230102
CC100_SEED = 100
TIMESTAMP = "2023-01-02T00:00:00Z"
CC100_TARGET_BYTES = 150_000


# ---------------------------------------------------------------------------------------------
# Parsing the source files
# ---------------------------------------------------------------------------------------------


@dataclass
class Article:
    title: str
    categories: list[str] = field(default_factory=list)
    flags: set[str] = field(default_factory=set)
    lead: list[str] = field(default_factory=list)
    sections: list[tuple[str, list[str]]] = field(default_factory=list)


@dataclass
class WebDoc:
    genre: str
    paragraphs: list[str] = field(default_factory=list)


def _source_lines(path: Path):
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        line = line.strip()
        if line and not line.startswith("#"):
            yield lineno, line


def parse_articles(path: Path) -> list[Article]:
    articles: list[Article] = []
    for lineno, line in _source_lines(path):
        if line.startswith("== "):
            if not articles:
                raise ValueError(f"{path}:{lineno}: section before the first article")
            articles[-1].sections.append((line[3:].strip(), []))
        elif line.startswith("= "):
            articles.append(Article(line[2:].strip()))
        elif not articles:
            raise ValueError(f"{path}:{lineno}: text before the first article")
        elif line.startswith("@category "):
            articles[-1].categories = [c.strip() for c in line[10:].split("|") if c.strip()]
        elif line.startswith("@"):
            articles[-1].flags.add(line[1:].strip())
        elif articles[-1].sections:
            articles[-1].sections[-1][1].append(line)
        else:
            articles[-1].lead.append(line)
    return articles


def parse_web_docs(path: Path) -> list[WebDoc]:
    docs: list[WebDoc] = []
    for lineno, line in _source_lines(path):
        if line.startswith("@doc"):
            docs.append(WebDoc(line[4:].strip() or "misc"))
        elif not docs:
            raise ValueError(f"{path}:{lineno}: text before the first @doc")
        else:
            docs[-1].paragraphs.append(line)
    return docs


# ---------------------------------------------------------------------------------------------
# Character-level noise (all undone by NFKC / the cleaning)
# ---------------------------------------------------------------------------------------------


def _halfwidth_table() -> dict[str, str]:
    table = {}
    for cp in range(0xFF61, 0xFFA0):
        h = chr(cp)
        full = unicodedata.normalize("NFKC", h)
        if len(full) == 1:
            table.setdefault(full, h)
    for full, h in list(table.items()):
        for mark, hmark in (("\u3099", "\uff9e"), ("\u309a", "\uff9f")):
            voiced = unicodedata.normalize("NFC", full + mark)
            if len(voiced) == 1:
                table.setdefault(voiced, h + hmark)
    return table


_HALF = _halfwidth_table()
_KATAKANA_RUN = re.compile("[\u30a1-\u30fc]+")
_ASCII_ALNUM = re.compile("[0-9A-Za-z]")


def to_halfwidth_katakana(text: str) -> str:
    return _KATAKANA_RUN.sub(lambda m: "".join(_HALF.get(c, c) for c in m.group()), text)


def to_fullwidth_ascii(text: str) -> str:
    return _ASCII_ALNUM.sub(lambda m: chr(ord(m.group()) + 0xFEE0), text)


_INVISIBLE = ["\u200b", "\u200e", "\ufeff", "\u00ad", "\u2060"]


def sprinkle_invisible(text: str, rng: random.Random, n: int) -> str:
    for _ in range(n):
        i = rng.randrange(1, max(len(text), 2))
        text = text[:i] + rng.choice(_INVISIBLE) + text[i:]
    return text


# ---------------------------------------------------------------------------------------------
# Wikipedia pages
# ---------------------------------------------------------------------------------------------

_BOILERPLATE = "出典: フリー百科事典『ウィキペディア（Wikipedia）』"
_TEMPLATES = [
    "{{要出典範囲|date=2022年8月}}",
    "{{Main|{title}}}",
    "{{See also|{cat}}}",
    "{{Citation needed|date=2021年11月}}",
    "{{仮リンク|{title}|en|{title}}}",
    "{{Refnest|group=注|{{Cite book|和書|title={cat}の研究|year=2009}}}}",
    "{{Lang-en-short|{title}}}",
]
_PUBLISHERS = ["東方出版", "みなと書房", "青葉社", "北斗書院", "さくら学術出版", "やまびこ新書"]
_JOINERS = [" "] * 14 + ["\u3000", "\u00a0", "  ", " \t", "\n", " \u2003 "]
_MATH_RE = re.compile(r"\$([^$]+)\$")


class WikiBuilder:
    def __init__(self, articles: list[Article], seed: int = WIKI_SEED):
        self.articles = articles
        self.rng = random.Random(seed)
        self.titles = [a.title for a in articles if not a.flags]

    # -- artefacts ---------------------------------------------------------------------------

    def _marker(self, state: dict) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.08:
            return "[要出典]"
        if r < 0.12:
            return "[要ページ番号]"
        if r < 0.18:
            state["notes"] += 1
            return f"[注 {state['notes']}]"
        state["refs"] += 1
        n = state["refs"]
        return f"［{to_fullwidth_ascii(str(n))}］" if r < 0.26 else f"[{n}]"

    def _decorate(self, paragraph: str, state: dict) -> str:
        rng = self.rng
        paragraph = _MATH_RE.sub(lambda m: "{\\displaystyle " + m.group(1) + "}", paragraph)
        parts = paragraph.split("。")
        out = []
        for i, part in enumerate(parts):
            if i < len(parts) - 1:
                if rng.random() < 0.3:
                    marker = self._marker(state)
                    part = part + (marker + "。" if rng.random() < 0.5 else "。" + marker)
                else:
                    part += "。"
            out.append(part)
        text = "".join(out)
        if rng.random() < 0.12:
            text = to_halfwidth_katakana(text)
        if rng.random() < 0.2:
            text = sprinkle_invisible(text, rng, rng.randint(1, 3))
        return text

    def _join(self, paragraphs: list[str]) -> str:
        out = []
        for i, p in enumerate(paragraphs):
            if i:
                out.append(self.rng.choice(_JOINERS))
            out.append(p)
        return "".join(out)

    def _trailer(self, art: Article, state: dict) -> tuple[str, list[str]]:
        rng = self.rng
        headings = []
        parts = []
        if state["notes"]:
            headings.append("注釈")
            notes = " ".join(f"^ {art.title}については諸説ある。" for _ in range(state["notes"]))
            parts.append("注釈 " + notes)
        if state["refs"]:
            headings.append("出典")
            refs = []
            for i in range(state["refs"]):
                cat = rng.choice(art.categories or [art.title])
                refs.append(f"^ {'a b ' if rng.random() < 0.2 else ''}『{cat}事典』"
                            f"{rng.choice(_PUBLISHERS)}、{rng.randint(1975, 2021)}年、"
                            f"{rng.randint(3, 480)}頁。")
            parts.append("出典 " + " ".join(refs))
        if rng.random() < 0.5:
            headings.append("参考文献")
            parts.append(f"参考文献 『図説 {art.title}』{rng.choice(_PUBLISHERS)}、"
                         f"{rng.randint(1980, 2020)}年。ISBN 978-4-{rng.randint(100000, 999999)}-"
                         f"{rng.randint(10, 99)}-{rng.randint(0, 9)}")
        headings.append("関連項目")
        related = rng.sample([t for t in self.titles if t != art.title], 3)
        parts.append("関連項目 " + " ".join(related))
        if rng.random() < 0.6:
            headings.append("外部リンク")
            parts.append(f"外部リンク {art.title} - 公式ウェブサイト "
                         f"https://www.example.jp/{rng.randint(1000, 9999)}/")
        if "注釈" in headings or "出典" in headings:
            headings.insert(0, "脚注")
            parts.insert(0, "脚注")
        return " ".join(parts), headings

    def _prefix(self, art: Article, parent: str | None) -> str:
        rng = self.rng
        out = []
        if rng.random() < 0.2:
            out.append(_BOILERPLATE)
        if parent is not None:
            out.append(f"{parent} > {art.title}")
        elif rng.random() < 0.2:
            out.append(f"この項目では、{art.title}について説明しています。その他の用法については"
                       f"「{art.title} (曖昧さ回避)」をご覧ください。")
        elif rng.random() < 0.1:
            short = art.title[:2]
            out.append(f"「{short}」はこの項目へ転送されています。その他の「{short}」については"
                       f"「{short} (曖昧さ回避)」をご覧ください。")
        return " ".join(out)

    # -- pages -------------------------------------------------------------------------------

    def _page(self, art: Article, parent: str | None = None) -> dict:
        rng = self.rng
        state = {"refs": 0, "notes": 0}
        if "disambiguation" in art.flags or "list" in art.flags:
            paragraphs = art.lead + [p for _, ps in art.sections for p in ps]
            body = " ".join(paragraphs)
            text, headings = body, ["関連項目"] if "disambiguation" in art.flags else []
            if "disambiguation" in art.flags:
                text += " 関連項目 " + " ".join(rng.sample(self.titles, 2))
            opening = paragraphs[0]
            templates = ["Template:Aimai"] if "disambiguation" in art.flags else ["Template:Navbox"]
        else:
            lead = [self._decorate(p, state) for p in art.lead]
            body_paras = [self._decorate(p, state) for _, ps in art.sections for p in ps]
            paragraphs = lead + body_paras
            templates = ["Template:Reflist"]
            # template remnants between paragraphs
            for _ in range(rng.choice([0, 0, 1, 1, 2])):
                t = rng.choice(_TEMPLATES).replace("{title}", art.title).replace(
                    "{cat}", (art.categories or [art.title])[0])
                i = rng.randrange(1, len(paragraphs) + 1)
                paragraphs.insert(i, t)
                templates.append("Template:" + re.split(r"[|}]", t[2:])[0])
            body = self._join(paragraphs)
            if rng.random() < 0.15:
                body = to_fullwidth_ascii(body)
            trailer, extra_headings = self._trailer(art, state)
            prefix = self._prefix(art, parent)
            text = " ".join(x for x in (prefix, body, trailer) if x)
            headings = [h for h, _ in art.sections] + extra_headings
            opening = " ".join(art.lead) if art.lead else ""
            opening = _MATH_RE.sub(lambda m: "{\\displaystyle " + m.group(1) + "}", opening)
        return {
            "template": sorted(set(templates)),
            "content_model": "wikitext",
            "opening_text": opening,
            "wiki": "jawiki",
            "language": "ja",
            "title": art.title,
            "text": text,
            "timestamp": TIMESTAMP,
            "redirect": [],
            "heading": headings,
            "text_bytes": len(text.encode("utf-8")),
            "namespace": 0,
            "namespace_text": "",
            "category": list(art.categories),
            "incoming_links": rng.randint(0, 2500),
            "popularity_score": round(rng.random() * 1e-4, 10),
        }

    def _subarticle(self, art: Article) -> Article | None:
        if len(art.sections) < 3 or art.flags:
            return None
        heading, paragraphs = self.rng.choice(art.sections)
        title = f"{art.title}の{heading}"
        lead = [f"本項では、{art.title}の{heading}について述べる。" + paragraphs[0]]
        return Article(title, [f"{art.title}"] + art.categories[:1], set(), lead,
                       [(heading, paragraphs[1:])] if len(paragraphs) > 1 else [])

    def pages(self) -> list[dict]:
        pages = []
        for art in self.articles:
            pages.append(self._page(art))
            sub = self._subarticle(art)
            if sub is not None:
                pages.append(self._page(sub, parent=art.title))
        self.rng.shuffle(pages)
        return pages

    def dump(self) -> bytes:
        lines = []
        page_id = 1000
        for page in self.pages():
            page_id += self.rng.randint(1, 400)
            page = dict(page, version=60_000_000 + page_id * 7)
            lines.append(json.dumps({"index": {"_type": "_doc", "_id": str(page_id)}},
                                    separators=(",", ":")))
            lines.append(json.dumps(page, ensure_ascii=False, separators=(",", ":")))
        return ("\n".join(lines) + "\n").encode("utf-8")


# ---------------------------------------------------------------------------------------------
# CC-100 documents
# ---------------------------------------------------------------------------------------------

_SITE = {
    "blog": ["みかん日和", "週末ノート", "のんびり暮らしの記録", "こもれび日記", "しろくまブログ"],
    "travel": ["たびメモ", "ゆる旅ブログ", "旅と写真とごはん"],
    "shop": ["くらしの道具店", "ナチュラルマーケット", "アウトドアショップやまびこ", "ふるさと便"],
    "news": ["地域ニュース", "みなと新聞デジタル", "ふるさとタイムズ"],
    "qa": ["教えて!暮らしの知恵袋", "みんなのQ&A", "なんでも相談室"],
    "review": ["口コミ広場", "みんなのレビュー", "おでかけ口コミ"],
    "recipe": ["おうちごはんレシピ", "かんたん台所", "きょうの献立"],
    "event": ["市民センターだより", "町内会のお知らせ", "図書館ニュース"],
    "company": ["会社案内", "採用情報", "企業サイト"],
    "forum": ["趣味の掲示板", "園芸フォーラム", "初心者質問スレ"],
    "howto": ["暮らしのハウツー", "デジタル便利帳", "はじめてガイド"],
}
_EMOJI = ["😊", "✨", "🍞", "🌸", "👍", "😅", "🎉", "☕", "(^^)", "(*´ω`*)", "(^_^;)", "♪", "〜♪",
          "!!!", "ｗｗｗ", "笑", "!?", "……"]
_FOOTERS = {
    "blog": ["この記事をシェアする", "Twitter Facebook LINE はてブ", "コメント (0)",
             "↓↓↓ランキング参加中!クリックお願いします↓↓↓", "にほんブログ村", "▲ PAGE TOP",
             "カテゴリー: 日常", "タグ: #暮らし #週末"],
    "shop": ["カートに入れる", "在庫あり", "ｾｰﾙ開催中!!最大50%OFF", "送料無料まであと1,000円",
             "レビューを書く", "お問い合わせはこちら", "ﾎﾟｲﾝﾄ5倍ｷｬﾝﾍﾟｰﾝ実施中"],
    "news": ["この記事の関連ニュース", "ページの先頭へ", "写真:記者撮影", "前の記事 次の記事"],
    "qa": ["この質問に回答する", "違反報告", "参考になった (12)", "ベストアンサーに選ばれた回答"],
    "review": ["参考になった", "投稿者: ゲスト", "訪問時期: 平日 昼", "写真を見る"],
    "recipe": ["印刷する", "お気に入りに保存", "つくれぽ (3)", "材料をコピー"],
    "event": ["お問い合わせ: 事務局", "ページの先頭へ戻る", "PDF版をダウンロード"],
    "company": ["会社概要", "アクセス", "お問い合わせ", "プライバシーポリシー"],
    "forum": ["返信する", "▼ 新しい順", "スレッド一覧に戻る", "1-4件を表示"],
    "howto": ["目次", "この記事は役に立ちましたか?", "関連するハウツー", "PR"],
}


class CC100Builder:
    def __init__(self, docs: list[WebDoc], seed: int = CC100_SEED,
                 target_bytes: int = CC100_TARGET_BYTES):
        self.docs = docs
        self.rng = random.Random(seed)
        self.target = target_bytes
        self.by_genre: dict[str, list[WebDoc]] = {}
        for d in docs:
            self.by_genre.setdefault(d.genre, []).append(d)

    def _site(self, genre: str) -> str:
        return self.rng.choice(_SITE.get(genre, ["ウェブサイト"]))

    def _date(self) -> str:
        rng = self.rng
        y, m, d = rng.randint(2012, 2020), rng.randint(1, 12), rng.randint(1, 28)
        style = rng.randrange(4)
        if style == 0:
            return f"{y}年{m}月{d}日"
        if style == 1:
            return f"{y}/{m:02d}/{d:02d} {rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}"
        if style == 2:
            return f"投稿日:{y}年{m}月{d}日 更新日:{y}年{min(m + 1, 12)}月{d}日"
        return f"{y}.{m:02d}.{d:02d}"

    def _url(self, genre: str) -> str:
        rng = self.rng
        host = rng.choice(["www.example.jp", "example.com", "blog.example.net", "shop.example.jp"])
        return f"https://{host}/{genre}/{rng.randint(2012, 2020)}/{rng.randint(100, 99999)}.html"

    def _noisy(self, paragraph: str) -> str:
        rng = self.rng
        r = rng.random()
        if r < 0.12:
            paragraph += rng.choice(_EMOJI)
        elif r < 0.17:
            paragraph = paragraph.replace("。", "。。", 1)
        elif r < 0.22:
            paragraph = to_halfwidth_katakana(paragraph)
        elif r < 0.26:
            paragraph = to_fullwidth_ascii(paragraph)
        elif r < 0.28:
            paragraph = "\u3000" + paragraph + "  "
        return paragraph

    def _page(self, doc: WebDoc) -> list[str]:
        rng = self.rng
        lines = []
        if rng.random() < 0.5:
            lines.append(f"ホーム > {self._site(doc.genre)} > {doc.paragraphs[0][:12]}")
        if rng.random() < 0.6:
            lines.append(self._date())
        lines.extend(self._noisy(p) for p in doc.paragraphs)
        if rng.random() < 0.3:
            lines.append(f"詳しくはこちら→ {self._url(doc.genre)}")
        k = rng.randint(0, 3)
        lines.extend(rng.sample(_FOOTERS.get(doc.genre, _FOOTERS["blog"]),
                                min(k, len(_FOOTERS.get(doc.genre, _FOOTERS["blog"])))))
        if rng.random() < 0.3:
            lines.append(f"Copyright © {rng.randint(2010, 2021)} {self._site(doc.genre)} "
                         f"All Rights Reserved.")
        return lines

    def _excerpt(self, paragraph: str, n: int) -> str:
        return paragraph if len(paragraph) <= n else paragraph[:n] + "…"

    def _archive(self, genre: str) -> list[str]:
        rng = self.rng
        pool = self.by_genre[genre]
        lines = [f"{self._site(genre)} | 記事一覧 {rng.randint(1, 12)}ページ目"]
        for doc in rng.sample(pool, min(len(pool), rng.randint(2, 5))):
            lines.append(self._date())
            lines.append(self._noisy(doc.paragraphs[0]))
            if len(doc.paragraphs) > 1:
                lines.append(self._excerpt(rng.choice(doc.paragraphs[1:]), rng.randint(40, 90)))
            lines.append(rng.choice(["続きを読む", "続きを読む »", "もっと見る", "→ 記事を読む"]))
        lines.append(rng.choice(["« 前のページ 次のページ »", "1 2 3 … 次へ", "ページ: 1 2 3"]))
        return lines

    def _related(self, genre: str) -> list[str]:
        rng = self.rng
        pool = self.by_genre[genre]
        main = rng.choice(pool)
        lines = self._page(main)
        others = [d for d in pool if d is not main]
        if others:
            lines.append(rng.choice(["関連記事", "こちらの記事もおすすめ", "あわせて読みたい",
                                     "この商品を見た人はこんな商品も見ています"]))
            for d in rng.sample(others, min(len(others), rng.randint(1, 3))):
                lines.append(self._excerpt(d.paragraphs[-1], rng.randint(30, 80)))
        return lines

    def documents(self) -> list[list[str]]:
        rng = self.rng
        docs = [self._page(d) for d in self.docs]
        size = sum(len("\n".join(d).encode("utf-8")) + 2 for d in docs)
        genres = sorted(self.by_genre)
        while size < self.target:
            genre = rng.choice(genres)
            if rng.random() < 0.2 and len(self.by_genre[genre]) >= 2:
                d = self._archive(genre)
            else:
                d = self._related(genre)
            docs.append(d)
            size += len("\n".join(d).encode("utf-8")) + 2
        # a few near-empty crawl leftovers
        for _ in range(6):
            docs.append([rng.choice(["ホーム", "メニュー", "404 Not Found", "ログイン", "検索"])])
        rng.shuffle(docs)
        return docs

    def text(self) -> bytes:
        out = io.StringIO()
        for doc in self.documents():
            for line in doc:
                out.write(line.replace("\n", " ") + "\n")
            out.write("\n")
        return out.getvalue().encode("utf-8")


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------


def gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def xz_bytes(data: bytes) -> bytes:
    return lzma.compress(data, format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64, preset=6)


def build_raw(source_dir: Path) -> tuple[bytes, bytes]:
    """Uncompressed (wikipedia dump, cc-100 text)."""
    articles = parse_articles(source_dir / "wiki_articles.txt")
    docs = parse_web_docs(source_dir / "web_docs.txt")
    return WikiBuilder(articles).dump(), CC100Builder(docs).text()


def make_sample(out_dir, source_dir=DEFAULT_SOURCE) -> dict:
    out_dir, source_dir = Path(out_dir), Path(source_dir)
    wiki_raw, cc_raw = build_raw(source_dir)
    outputs = {out_dir / WIKI_OUT: gzip_bytes(wiki_raw), out_dir / CC100_OUT: xz_bytes(cc_raw)}
    for path, data in outputs.items():
        with atomic_path(path) as tmp:
            tmp.write_bytes(data)
    info = {"wikipedia": {"path": str(out_dir / WIKI_OUT), "raw_bytes": len(wiki_raw),
                          "compressed_bytes": len(outputs[out_dir / WIKI_OUT]),
                          "pages": wiki_raw.count(b"\n") // 2},
            "cc-100": {"path": str(out_dir / CC100_OUT), "raw_bytes": len(cc_raw),
                       "compressed_bytes": len(outputs[out_dir / CC100_OUT]),
                       "documents": cc_raw.count(b"\n\n")}}
    for d in info.values():
        LOG.info("wrote %s: %s raw bytes, %s compressed", d["path"], f"{d['raw_bytes']:,}",
                 f"{d['compressed_bytes']:,}")
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.tools.make_sample",
                                description=__doc__.split("\n")[0])
    p.add_argument("--out-dir", default="sample", help="where wikipedia/ and cc-100/ are written")
    p.add_argument("--source-dir", default=str(DEFAULT_SOURCE), help="hand-written source text")
    args = p.parse_args(argv)
    make_sample(args.out_dir, args.source_dir)
    return 0


if __name__ == "__main__":
    run_cli(main)
