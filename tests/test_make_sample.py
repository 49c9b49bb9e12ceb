"""Tests for scripts/tools/make_sample.py and the committed sample under sample/."""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.tools import make_sample  # noqa: E402

SAMPLE = REPO / "sample"
WIKI = SAMPLE / make_sample.WIKI_OUT
CC100 = SAMPLE / make_sample.CC100_OUT


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_regenerates_committed_files_byte_for_byte(tmp_path):
    r = subprocess.run([sys.executable, "-m", "scripts.tools.make_sample", "--out-dir", tmp_path],
                       cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert sha256(tmp_path / make_sample.WIKI_OUT) == sha256(WIKI)
    assert sha256(tmp_path / make_sample.CC100_OUT) == sha256(CC100)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == [
        CC100.name, WIKI.name]  # no temporary files left


def test_in_process_build_is_deterministic(tmp_path):
    a = make_sample.make_sample(tmp_path / "a")
    b = make_sample.make_sample(tmp_path / "b")
    assert a["wikipedia"]["raw_bytes"] == b["wikipedia"]["raw_bytes"]
    for rel in (make_sample.WIKI_OUT, make_sample.CC100_OUT):
        assert (tmp_path / "a" / rel).read_bytes() == (tmp_path / "b" / rel).read_bytes()


def test_compressed_headers_are_reproducible():
    raw = WIKI.read_bytes()
    assert raw[:3] == b"\x1f\x8b\x08"
    assert raw[3] == 0            # no FNAME / FEXTRA / FCOMMENT
    assert raw[4:8] == b"\0\0\0\0"  # mtime 0
    assert CC100.read_bytes()[:6] == b"\xfd7zXZ\x00"


def test_sizes():
    wiki_raw = gzip.decompress(WIKI.read_bytes())
    cc_raw = lzma.decompress(CC100.read_bytes())
    total = len(wiki_raw) + len(cc_raw)
    assert 250_000 <= total <= 400_000
    assert len(wiki_raw) >= 100_000 and len(cc_raw) >= 100_000
    source = sum(p.stat().st_size for p in (SAMPLE / "source").glob("*.txt"))
    assert source >= 80_000


def test_wikipedia_dump_format():
    lines = gzip.decompress(WIKI.read_bytes()).decode("utf-8").split("\n")
    assert lines[-1] == ""
    lines = lines[:-1]
    assert len(lines) % 2 == 0
    ids, titles, texts = set(), set(), []
    for act_line, page_line in zip(lines[::2], lines[1::2]):
        act = json.loads(act_line)
        assert act["index"]["_type"] == "_doc"  # the Elasticsearch 7+ format of current dumps
        ids.add(act["index"]["_id"])
        page = json.loads(page_line)
        for key in ("title", "text", "namespace", "opening_text", "heading", "category",
                    "timestamp", "wiki"):
            assert key in page
        assert page["namespace"] == 0 and page["wiki"] == "jawiki"
        assert page["timestamp"] == make_sample.TIMESTAMP
        assert page["text_bytes"] == len(page["text"].encode("utf-8"))
        titles.add(page["title"])
        texts.append(page["text"])
    assert len(ids) == len(lines) // 2 == len(titles) >= 60
    text = "\n".join(texts)
    # the artefacts the cleaning has to remove are all present
    for artefact in ("出典: フリー百科事典『ウィキペディア（Wikipedia）』", "この項目では、",
                     "[要出典]", "[要ページ番号]", "[注 ", "［", "{{", "\\displaystyle", "脚注",
                     "関連項目", "外部リンク", " ^ ", " > ", "\u200b", "\u3000", "\t", "\u00a0",
                     "曖昧さ回避"):
        assert artefact in text, artefact
    assert any("\uff61" <= c <= "\uff9f" for c in text)  # half-width katakana
    assert any("\uff10" <= c <= "\uff5a" for c in text)  # full-width Latin / digits


def test_cc100_format():
    text = lzma.decompress(CC100.read_bytes()).decode("utf-8")
    assert text.endswith("\n\n") and not text.startswith("\n") and "\n\n\n" not in text
    assert "\r" not in text
    docs = text[:-2].split("\n\n")
    assert len(docs) >= 150
    assert all(doc.strip() for doc in docs)
    assert "https://" in text and any(e in text for e in ("😊", "✨", "(^^)"))
    assert any("\uff61" <= c <= "\uff9f" for c in text)
    assert any(len(doc.split("\n")) == 1 and len(doc) <= 15 for doc in docs)  # crawl leftovers


def test_source_parsing():
    arts = make_sample.parse_articles(SAMPLE / "source" / "wiki_articles.txt")
    assert len(arts) >= 40
    assert len({a.title for a in arts}) == len(arts)
    assert all(a.lead for a in arts)
    assert sum(1 for a in arts if "disambiguation" in a.flags) >= 1
    docs = make_sample.parse_web_docs(SAMPLE / "source" / "web_docs.txt")
    assert len(docs) >= 50 and all(d.paragraphs for d in docs)
    assert len({d.genre for d in docs}) >= 8


def test_parse_errors(tmp_path):
    p = tmp_path / "w.txt"
    p.write_text("本文だけ\n", encoding="utf-8")
    with pytest.raises(ValueError, match="w.txt:1"):
        make_sample.parse_articles(p)
    p.write_text("# c\n\n== 節\n", encoding="utf-8")
    with pytest.raises(ValueError, match="w.txt:3"):
        make_sample.parse_articles(p)


def test_noise_helpers_are_undone_by_nfkc():
    s = "ソメイヨシノとガイドブック、ヴァイオリン・パーティー"
    h = make_sample.to_halfwidth_katakana(s)
    assert h != s and all(not ("\u30a1" <= c <= "\u30fa") for c in h)
    assert unicodedata.normalize("NFKC", h) == s
    f = make_sample.to_fullwidth_ascii("ABC 123 xyz")
    assert f == "ＡＢＣ １２３ ｘｙｚ"
    assert unicodedata.normalize("NFKC", f) == "ABC 123 xyz"
