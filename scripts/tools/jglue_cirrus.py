"""Build a CirrusSearch content dump (current ``_doc`` format) from JSQuAD's Wikipedia paragraphs.

Usage::

    python -m scripts.tools.jglue_cirrus \\
        --input ../shared/jglue/datasets/jsquad-v1.3/valid-v1.3.json \\
        --output /tmp/jsquad-cirrussearch-content.json.gz [--max-pages N] [--max-paragraphs N]

JSQuAD (JGLUE, CC BY-SA 4.0) takes its contexts from Japanese Wikipedia articles; each context is
one paragraph, written ``<title> [SEP] <paragraph>``.  This tool regroups the paragraphs by
article title into one page per article, in the order of the file, and writes them as a
CirrusSearch *content* dump in the Elasticsearch 7+ bulk format of current dumps: an
``{"index":{"_type":"_doc","_id":"<page id>"}}`` line, then the page JSON.  That is real
encyclopedic text (brackets, quotations, decimals, readings in parentheses, full-width
characters) for checking the corpus cleaning against the recipe (docs/cleaning.md).

Page fields: ``title`` (JSQuAD's URL form with ``_`` shown as spaces, as dumps show titles),
``text`` (the paragraphs, ``[SEP]`` prefix removed, joined by one space as CirrusSearch joins a
page's paragraphs), ``opening_text`` (the first paragraph), ``namespace`` 0, ``namespace_text``,
``wiki``, ``language``, ``content_model``, ``timestamp`` (fixed), ``category``, ``template``,
``heading``, ``redirect`` (empty: JSQuAD does not keep them), ``text_bytes`` and ``version``.
The page id is the article number of JSQuAD's question ids (``a10336p0q0`` -> ``10336``).

The output is byte-reproducible (gzip level 9, no file name, mtime 0).  ``--max-pages`` keeps the
first N articles and ``--max-paragraphs`` the first N paragraphs of each (a small excerpt, e.g.
for tests/data/).
"""

from __future__ import annotations

import argparse
import gzip
import io
import json
import logging
import re
from pathlib import Path

from scripts.shared.common import atomic_path, run_cli

LOG = logging.getLogger("bertja.jglue_cirrus")

TIMESTAMP = "2023-01-02T00:00:00Z"
_SEP = " [SEP] "
_ARTICLE_ID = re.compile(r"^a(\d+)p\d+q\d+$")


def read_articles(path) -> list[dict]:
    """``[{title, id, paragraphs}]`` in file order, paragraphs of the same title merged."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    articles: dict[str, dict] = {}
    for art in data["data"]:
        title = art["title"]
        entry = articles.setdefault(title, {"title": title, "id": None, "paragraphs": []})
        for para in art["paragraphs"]:
            ctx = para["context"]
            head, sep, body = ctx.partition(_SEP)
            if not sep or head != title:
                raise ValueError(f"{path}: context of {title!r} does not start with its title and [SEP]")
            if body not in entry["paragraphs"]:
                entry["paragraphs"].append(body)
            for qa in para.get("qas", []):
                m = _ARTICLE_ID.match(qa.get("id", ""))
                if m and entry["id"] is None:
                    entry["id"] = m.group(1)
    return list(articles.values())


def page_json(art: dict, paragraphs: list[str]) -> dict:
    text = " ".join(paragraphs)
    return {
        "template": [],
        "content_model": "wikitext",
        "opening_text": paragraphs[0] if paragraphs else "",
        "wiki": "jawiki",
        "language": "ja",
        "title": art["title"].replace("_", " "),
        "text": text,
        "timestamp": TIMESTAMP,
        "redirect": [],
        "heading": [],
        "text_bytes": len(text.encode("utf-8")),
        "namespace": 0,
        "namespace_text": "",
        "category": [],
    }


def build_dump(articles: list[dict], max_pages: int = 0, max_paragraphs: int = 0) -> bytes:
    lines = []
    for n, art in enumerate(articles[:max_pages or None]):
        paragraphs = art["paragraphs"][:max_paragraphs or None]
        page_id = art["id"] or str(n + 1)
        page = dict(page_json(art, paragraphs), version=int(page_id) * 10 + 7)
        lines.append(json.dumps({"index": {"_type": "_doc", "_id": page_id}}, separators=(",", ":")))
        lines.append(json.dumps(page, ensure_ascii=False, separators=(",", ":")))
    return ("\n".join(lines) + "\n").encode("utf-8")


def gzip_bytes(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, mtime=0, compresslevel=9) as gz:
        gz.write(data)
    return buf.getvalue()


def make_dump(input_path, output_path, max_pages: int = 0, max_paragraphs: int = 0) -> dict:
    articles = read_articles(input_path)
    raw = build_dump(articles, max_pages, max_paragraphs)
    with atomic_path(output_path) as tmp:
        Path(tmp).write_bytes(gzip_bytes(raw))
    info = {"output": str(output_path), "pages": raw.count(b"\n") // 2, "raw_bytes": len(raw)}
    LOG.info("wrote %s: %d pages, %s bytes of JSON", output_path, info["pages"], f"{len(raw):,}")
    return info


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m scripts.tools.jglue_cirrus", description=__doc__.split("\n")[0])
    p.add_argument("--input", required=True, help="JSQuAD json (e.g. jsquad-v1.3/valid-v1.3.json)")
    p.add_argument("--output", required=True, help="CirrusSearch dump to write (.json.gz)")
    p.add_argument("--max-pages", type=int, default=0, help="keep the first N articles (0: all)")
    p.add_argument("--max-paragraphs", type=int, default=0, help="keep the first N paragraphs of each (0: all)")
    a = p.parse_args(argv)
    if a.max_pages < 0 or a.max_paragraphs < 0:
        raise SystemExit("--max-pages and --max-paragraphs must be >= 0")
    make_dump(a.input, a.output, a.max_pages, a.max_paragraphs)
    return 0


if __name__ == "__main__":
    run_cli(main)
