"""Tests for the corpus stages: scripts/corpus/textclean.py, corpus_wiki.py, corpus_shard.py, corpus_sample.py."""

from __future__ import annotations

import gzip
import json
import lzma
import subprocess
import sys
import unicodedata
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.corpus import sample as corpus_sample, shard as corpus_shard, wiki as corpus_wiki, textclean  # noqa: E402
from scripts.shared.common import InputError  # noqa: E402
from scripts.corpus.textclean import (  # noqa: E402
    SentenceSplitter,
    clean_paragraph,
    clean_wiki_text,
    filter_sentences,
    normalize_text,
    remove_markers,
    remove_navigation,
    remove_trailer,
)

SAMPLE_WIKI = REPO / "sample" / "wikipedia" / "jawiki-sample-cirrussearch-content.json.gz"
SAMPLE_CC100 = REPO / "sample" / "cc-100" / "ja.txt.xz"


@pytest.fixture(scope="module")
def splitter():
    return SentenceSplitter()


def run_module(module: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"scripts.{module}", *map(str, args)], cwd=REPO,
                          capture_output=True, text=True, timeout=120)


def leftovers(directory: Path) -> list[str]:
    """Every file in ``directory`` (recursively), temporary ones included."""
    return sorted(str(p.relative_to(directory)) for p in directory.rglob("*") if p.is_file())


# ---------------------------------------------------------------------------------------------
# textclean: cleaning rules
# ---------------------------------------------------------------------------------------------


def test_normalize_nfkc_width_and_katakana():
    assert normalize_text("ＡＢＣ１２３（テスト）！") == "ABC123(テスト)!"
    assert normalize_text("ｶﾀｶﾅとｶﾞｷﾞｸﾞ") == "カタカナとガギグ"


def test_normalize_drops_nonprintables_and_collapses_whitespace():
    text = "前\u200b半\ufeff\u200e\u00ad。\t後\n半\u3000\u00a0 です\x07。\r\n"
    assert normalize_text(text) == "前半。 後 半 です。"
    assert normalize_text("  \u3000 ") == ""


@pytest.mark.parametrize("raw, expected", [
    ("城である[1]。", "城である。"),
    ("城である。[23]次", "城である。次"),
    ("城である［２］。", "城である。"),  # full-width brackets after NFKC
    ("城である[注 1]。", "城である。"),
    ("城である[注釈 12]。", "城である。"),
    ("建てられた[要出典]。", "建てられた。"),
    ("建てられた[要ページ番号]。", "建てられた。"),
    ("建てられた[要検証 – ノート]。", "建てられた。"),
    ("とされる[リンク切れ]。", "とされる。"),
    ("とされる[いつ?]。", "とされる。"),
    ("前{{Main|姫路城}}後", "前後"),
    ("前{{Refnest|group=注|{{Cite book|title=本}}}}後", "前後"),
    ("配列a[i]と[注意]は残る。", "配列a[i]と[注意]は残る。"),
])
def test_remove_markers(raw, expected):
    assert remove_markers(normalize_text(raw)) == expected


def test_remove_navigation_boilerplate_breadcrumb_hatnote():
    text = normalize_text("出典: フリー百科事典『ウィキペディア（Wikipedia）』 日本の城 > 姫路城 "
                          "この項目では、兵庫県の城について説明しています。その他の用法については"
                          "「姫路 (曖昧さ回避)」をご覧ください。 姫路城は城である。")
    assert remove_navigation(text, "姫路城") == "姫路城は城である。"
    assert remove_navigation("「姫路」はこの項目へ転送されています。 本文です。", None) == "本文です。"
    # a breadcrumb is only removed for the page's own title, and only near the start
    assert remove_navigation("A > B 本文。", "C") == "A > B 本文。"
    assert remove_navigation("本文である。続き > 姫路城 の話", "姫路城") == "本文である。続き > 姫路城 の話"
    assert remove_navigation("姫路城は城である。", "姫路城") == "姫路城は城である。"


def test_remove_trailer_sections_and_footnotes():
    assert remove_trailer("本文。 ^ 注の本。") == "本文。"
    assert remove_trailer("本文。 脚注 ^ a b 本。 関連項目 城") == "本文。"
    assert remove_trailer("本文。 関連項目 城 寺") == "本文。"
    assert remove_trailer("本文。 外部リンク") == "本文。"
    assert remove_trailer("本文。 参考文献 『本』") == "本文。"
    # the words inside running text are not section headings
    assert remove_trailer("出典を明記する。関連項目の一覧。") == "出典を明記する。関連項目の一覧。"


def test_clean_wiki_text_full():
    raw = ("出典: フリー百科事典『ウィキペディア（Wikipedia）』 日本の城 > テスト城 "
           "テスト城（てすとじょう）は、架空の城である[1]。\u200b城は１６００年に建てられた[要出典]。"
           "{{Main|城}}\u3000ｶﾀｶﾅ表記もある。 脚注 ^ 架空の本。 関連項目 城")
    assert clean_wiki_text(raw, "テスト城") == (
        "テスト城(てすとじょう)は、架空の城である。城は1600年に建てられた。 カタカナ表記もある。")


# ---------------------------------------------------------------------------------------------
# textclean: sentence splitting and filters
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("今日は晴れ。明日は雨。", ["今日は晴れ。", "明日は雨。"]),
    ("本当だ!すごい?そうか。", ["本当だ!", "すごい?", "そうか。"]),
    ("え!?マジで。", ["え!?", "マジで。"]),
    ("円周率は3.14です。次の文。", ["円周率は3.14です。", "次の文。"]),
    ("Yahoo!で検索した。Great! Next.", ["Yahoo!で検索した。", "Great!", "Next."]),
    # no split inside brackets
    ("彼は「行く。」と言った。次。", ["彼は「行く。」と言った。", "次。"]),
    ("(注:これは例。詳細は後述。)と書いた。終わり", ["(注:これは例。詳細は後述。)と書いた。", "終わり"]),
    ("『本。』『本2。』", ["『本。』", "『本2。』"]),
    # a quotation ending a sentence keeps its closing bracket
    ("彼は言った。「明日は晴れる。」 次の文。", ["彼は言った。", "「明日は晴れる。」", "次の文。"]),
    ("「会話文。」「次の会話。」", ["「会話文。」", "「次の会話。」"]),
    # closing brackets and further marks after an end go with the sentence
    ("そうだ。)次。", ["そうだ。)", "次。"]),
    # an unbalanced opening bracket does not block splitting
    ("「閉じない。ここも文。最後。", ["「閉じない。", "ここも文。", "最後。"]),
    ("句点のない断片", ["句点のない断片"]),
    ("", []),
])
def test_sentence_split(splitter, text, expected):
    assert splitter.split(text) == expected


def test_sentence_split_long_bracket_is_not_protected(splitter):
    inner = "これは長い引用文です。" * 30  # > MAX_BRACKET_CHARS
    parts = splitter.split("「" + inner + "」と述べた。")
    assert len(parts) == 31
    assert parts[0] == "「これは長い引用文です。"
    assert parts[-2:] == ["これは長い引用文です。」", "と述べた。"]


def test_sentence_split_long_text_in_pieces(splitter, monkeypatch):
    monkeypatch.setattr(textclean, "MECAB_CHUNK_BYTES", 100)
    text = " ".join(f"これは{i}番目の文です。" for i in range(50))
    assert splitter.split(text) == [f"これは{i}番目の文です。" for i in range(50)]
    text = "あ" * 500 + "。いい。"  # no space to cut at: cut at a character boundary
    assert splitter.split(text) == ["あ" * 500 + "。", "いい。"]


def test_filter_sentences_counts():
    counts = Counter()
    kept = filter_sentences(["短い。", "ちょうど十文字の文だ。", "あ" * 201,
                             "式 {\\displaystyle x^{2}} を使う文である。"], 10, 200, counts=counts)
    assert kept == ["ちょうど十文字の文だ。"]
    assert counts == {"too_short": 1, "too_long": 1, "math": 1}
    assert filter_sentences(["あ", "い" * 999], 0, 0) == ["あ", "い" * 999]


def test_clean_paragraph(splitter):
    assert clean_paragraph("  ｾｰﾙ開催中！！\u200b https://example.jp/ 😊\t") == [
        "セール開催中!! https://example.jp/ 😊"]
    assert clean_paragraph(" \u3000\u200b ") == []
    assert clean_paragraph("一つ目の文です。二つ目。三つ目の文です。", splitter, 6, 0) == [
        "一つ目の文です。", "三つ目の文です。"]
    assert clean_paragraph("一つ目の文です。二つ目。", None, 0, 5) == []


# ---------------------------------------------------------------------------------------------
# corpus_wiki
# ---------------------------------------------------------------------------------------------


def action(page_id, type_="_doc") -> str:
    meta = {"_id": str(page_id)}
    if type_ is not None:
        meta = {"_type": type_, **meta}
    return json.dumps({"index": meta})


def page(title, text, **extra) -> str:
    obj = {"title": title, "namespace": 0, "wiki": "jawiki", **extra}
    if text is not None:
        obj["text"] = text
    return json.dumps(obj, ensure_ascii=False)


def write_dump(path: Path, lines, gz: bool = True) -> Path:
    data = b"".join((ln if isinstance(ln, bytes) else ln.encode("utf-8")) + b"\n" for ln in lines)
    if gz:
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


TINY_PAGES = [
    ("テスト城",
     "出典: フリー百科事典『ウィキペディア（Wikipedia）』 日本の城 > テスト城 テスト城（てすとじょう）は、"
     "架空の城である[1]。城は１６００年に建てられた[要出典]。{{Main|城}} 彼は「城を守れ。」と言った。"
     "短い文。 脚注 ^ 架空の本。 関連項目 城", {}),
    ("テスト (曖昧さ回避)", "テスト城 - 架空の城。 テスト川 - 架空の川。", {"category": ["曖昧さ回避"]}),
    ("短い", "短い。とても短い。", {}),
    ("円", "円の面積は {\\displaystyle \\pi r^{2}} で求められる。円周率はおよそ3.14である。", {}),
    ("カナ", "この項目では、カナについて説明しています。 ｶﾀｶﾅの文章はここにあります。", {}),
]
TINY_EXPECTED = [
    "テスト城(てすとじょう)は、架空の城である。",
    "城は1600年に建てられた。",
    "彼は「城を守れ。」と言った。",
    "",
    "円周率はおよそ3.14である。",
    "",
    "カタカナの文章はここにあります。",
    "",
]


def tiny_dump(path: Path) -> Path:
    lines = []
    for i, (title, text, extra) in enumerate(TINY_PAGES):
        lines += [action(i + 1), page(title, text, **extra)]
    return write_dump(path, lines)


def read_gz_lines(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")[:-1]


def test_wiki_end_to_end_tiny(tmp_path):
    dump = tiny_dump(tmp_path / "dump.json.gz")
    out, stats_path = tmp_path / "c" / "corpus.txt.gz", tmp_path / "c" / "corpus.stats.json"
    stats = corpus_wiki.build_wiki_corpus(dump, out, stats_path, min_length=10, max_length=200)
    assert read_gz_lines(out) == TINY_EXPECTED
    raw = out.read_bytes()
    assert raw[:4] == b"\x1f\x8b\x08\x00"  # gzip, no FNAME flag
    assert raw[4:8] == b"\x00\x00\x00\x00"  # mtime 0
    saved = json.loads(stats_path.read_text(encoding="utf-8"))
    assert saved == stats
    assert stats["pages_read"] == 5
    assert stats["pages_written"] == 3
    assert stats["pages_empty_after_cleaning"] == 1
    assert stats["sentences_written"] == 5
    assert stats["skipped"] == {"disambiguation": 1}
    assert stats["sentences_dropped"] == {"math": 1, "too_short": 3}
    assert stats["bytes_in"] == dump.stat().st_size and stats["bytes_out"] == out.stat().st_size
    assert leftovers(tmp_path / "c") == ["corpus.stats.json", "corpus.txt.gz"]


def test_wiki_no_split_and_keep_disambiguation(tmp_path):
    dump = tiny_dump(tmp_path / "dump.json.gz")
    out = tmp_path / "corpus.txt.gz"
    stats = corpus_wiki.build_wiki_corpus(dump, out, min_length=0, max_length=0,
                                          split_sentences=False, drop_disambiguation=False)
    lines = read_gz_lines(out)
    assert lines[0] == ("テスト城(てすとじょう)は、架空の城である。城は1600年に建てられた。 "
                        "彼は「城を守れ。」と言った。短い文。")
    assert "テスト城 - 架空の城。 テスト川 - 架空の川。" in lines
    assert "短い。とても短い。" in lines
    # the math page is one unit containing \displaystyle: dropped whole
    assert stats["pages_written"] == 4 and stats["sentences_dropped"] == {"math": 1}


def test_wiki_threads_identical(tmp_path, monkeypatch):
    monkeypatch.setattr(corpus_wiki, "CHUNK_PAGES", 3)  # many chunks
    lines = []
    for i in range(40):
        title, text, extra = TINY_PAGES[i % len(TINY_PAGES)]
        lines += [action(i), page(f"{title}{i}", text.replace("テスト城", f"テスト城{i}") + f" 番号{i}の文がここにある。", **extra)]
    dump = write_dump(tmp_path / "dump.json.gz", lines)
    a, b = tmp_path / "t1" / "corpus.txt.gz", tmp_path / "t2" / "corpus.txt.gz"
    sa = corpus_wiki.build_wiki_corpus(dump, a, threads=1)
    sb = corpus_wiki.build_wiki_corpus(dump, b, threads=2)
    assert a.read_bytes() == b.read_bytes()
    assert sa["sentences_written"] == sb["sentences_written"] > 40


def test_wiki_cli_threads_identical(tmp_path):
    dump = tiny_dump(tmp_path / "dump.json.gz")
    outs = []
    for n in (1, 2):
        out = tmp_path / f"t{n}" / "corpus.txt.gz"
        r = run_module("corpus.wiki", "--input", dump, "--output", out, "--stats",
                       tmp_path / f"t{n}" / "corpus.stats.json", "--min-sentence-length", 10,
                       "--max-sentence-length", 200, "--split-sentences", "--threads", n)
        assert r.returncode == 0, r.stderr
        assert f"built {out}: 5 sentences from 3 pages" in r.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]


def test_wiki_bad_records_are_counted(tmp_path):
    good = "これは十分に長い正しい文です。"
    lines = [
        action(1), page("A", good),
        action(2), "{not json",                      # page line not JSON
        action(3), page("B", None),                  # page without text
        action(4), action(5), page("C", good),       # action without page, then a good pair
        page("D", good),                             # page without action
        action(6, type_="other"), page("E", good),   # non-page action
        action(7, type_=None), page("F", good),      # newer dumps: no _type
        action(8), page("G", good, namespace=2),     # not an article
        action(9), "[1, 2]",                         # JSON but not an object
        b'{"index":{"_type":"page","_id":"10"}}',
        '{"title":"H","namespace":0,"text":"壊れた'.encode("utf-8") + b'\xff"}',  # invalid UTF-8
        action(11), page("I", good),
        action(12),                                  # action at EOF
    ]
    dump = write_dump(tmp_path / "dump.json.gz", lines)
    stats = corpus_wiki.build_wiki_corpus(dump, tmp_path / "corpus.txt.gz", tmp_path / "s.json")
    assert stats["skipped"] == {"bad_json": 2, "no_text": 1, "action_without_page": 2,
                                "page_without_action": 1, "non_page_action": 1,
                                "non_article_namespace": 1, "bad_utf8_lines": 1}
    assert stats["pages_cleaned"] == 4  # A, C, F, I
    assert read_gz_lines(tmp_path / "corpus.txt.gz") == [good, ""] * 4


def test_wiki_action_types_doc_typeless_and_legacy_page_are_pages(tmp_path, caplog):
    """Elasticsearch 7+ dumps (2023) write _type _doc, typeless ones none, old ones page: all
    three are page records; any other type, and create/update/delete actions, are skipped,
    counted and logged at the action's file:line."""
    good = "これは十分に長い正しい文です。"
    lines = [
        '{"index":{"_type":"_doc","_id":"1373"}}', page("A", good),  # 1-2: current dumps
        '{"index":{"_id":"1374"}}', page("B", good),                 # 3-4: typeless
        '{"index":{"_type":"page","_id":"1375"}}', page("C", good),  # 5-6: legacy dumps
        '{"index":{"_type":"other","_id":"9"}}', page("D", good),    # 7-8
        '{"create":{"_type":"_doc","_id":"10"}}', page("E", good),   # 9-10
        '{"delete":{"_id":"11"}}',                                   # 11: no page line follows
        action(12), page("F", good),                                 # 12-13
    ]
    dump = write_dump(tmp_path / "dump.json.gz", lines)
    with caplog.at_level("WARNING", logger="bertja"):
        stats = corpus_wiki.build_wiki_corpus(dump, tmp_path / "corpus.txt.gz")
    assert stats["skipped"] == {"non_page_action": 3}
    assert stats["pages_cleaned"] == 4  # A, B, C, F
    assert read_gz_lines(tmp_path / "corpus.txt.gz") == [good, ""] * 4
    assert f"{dump}:7: skipped (non_page_action): index action with _type 'other'" in caplog.text
    assert "its page on line 8 is skipped" in caplog.text
    assert f"{dump}:9: skipped (non_page_action): create action" in caplog.text
    assert f"{dump}:11: skipped (non_page_action): delete action" in caplog.text


def test_wiki_legacy_page_fixture_gives_the_same_corpus(tmp_path):
    """The one legacy fixture: the tiny dump with old-style _type page actions cleans exactly
    like the current _doc format."""
    legacy, current = [], []
    for i, (title, text, extra) in enumerate(TINY_PAGES):
        legacy += [action(i + 1, type_="page"), page(title, text, **extra)]
        current += [action(i + 1), page(title, text, **extra)]
    assert '"_type": "page"' in legacy[0] and '"_type": "_doc"' in current[0]
    a = corpus_wiki.build_wiki_corpus(write_dump(tmp_path / "legacy.json.gz", legacy), tmp_path / "a.txt.gz")
    b = corpus_wiki.build_wiki_corpus(write_dump(tmp_path / "doc.json.gz", current), tmp_path / "b.txt.gz")
    assert read_gz_lines(tmp_path / "a.txt.gz") == TINY_EXPECTED
    assert (tmp_path / "a.txt.gz").read_bytes() == (tmp_path / "b.txt.gz").read_bytes()
    assert a["skipped"] == b["skipped"] == {"disambiguation": 1}


def test_wiki_nul_bytes_are_logged_with_file_and_line(tmp_path, caplog):
    good = "これは十分に長い正しい文です。"
    nul_page = page("N", "NULの\x00入った十分に長い本文です。")  # \u0000 escape in JSON: not a raw NUL
    raw_nul = page("R", "生のNULが入った十分に長い本文です。").encode("utf-8").replace("生の".encode(), b"\x00\x00")
    dump = write_dump(tmp_path / "dump.json.gz", [action(1), page("A", good), action(2), raw_nul, action(3), nul_page])
    with caplog.at_level("WARNING", logger="bertja"):
        stats = corpus_wiki.build_wiki_corpus(dump, tmp_path / "corpus.txt.gz")
    assert f"{dump}:4: removed 2 NUL byte(s)" in caplog.text  # the raw NULs, at their line
    assert stats["nul_lines"] == 1 and stats["nul_bytes_removed"] == 2
    assert "NULが入った十分に長い本文です。" in read_gz_lines(tmp_path / "corpus.txt.gz")


def test_wiki_dump_in_parts_is_read_in_order(tmp_path):
    """Several --input files are one dump read in order; a record never spans two files."""
    lines = []
    for i, (title, text, extra) in enumerate(TINY_PAGES):
        lines += [action(i + 1), page(title, text, **extra)]
    whole = write_dump(tmp_path / "whole.json.gz", lines)
    p1 = write_dump(tmp_path / "part1.json.gz", lines[:4] + [action(99)])  # an action at the end of a part
    p2 = write_dump(tmp_path / "part2.json.gz", [page("孤児", "前のファイルのアクションの続きではない本文。")] + lines[4:])
    ref = corpus_wiki.build_wiki_corpus(whole, tmp_path / "w" / "corpus.txt.gz")
    st = corpus_wiki.build_wiki_corpus([p1, p2], tmp_path / "p" / "corpus.txt.gz")
    assert (tmp_path / "w" / "corpus.txt.gz").read_bytes() == (tmp_path / "p" / "corpus.txt.gz").read_bytes()
    assert st["inputs"] == [str(p1), str(p2)]
    assert st["skipped"] == {"disambiguation": 1, "action_without_page": 1, "page_without_action": 1}
    assert st["bytes_in"] == p1.stat().st_size + p2.stat().st_size
    out = tmp_path / "cli" / "corpus.txt.gz"
    r = run_module("corpus.wiki", "--input", p1, p2, "--output", out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == (tmp_path / "w" / "corpus.txt.gz").read_bytes()
    r = run_module("corpus.wiki", "--input", p1, "--input", tmp_path / "missing.json.gz", "--output", out)
    assert r.returncode == 2 and "missing.json.gz: input dump not found" in r.stderr


def test_wiki_skips_are_logged_with_file_and_line(tmp_path, caplog):
    dump = write_dump(tmp_path / "dump.json.gz", [action(1), "{oops", action(2), page("A", "正しい長さのある文章です。")])
    with caplog.at_level("WARNING", logger="bertja"):
        corpus_wiki.build_wiki_corpus(dump, tmp_path / "corpus.txt.gz")
    assert f"{dump}:2: skipped (bad_json)" in caplog.text


def test_wiki_truncated_gzip_is_an_error(tmp_path):
    lines = []
    for i in range(300):
        lines += [action(i), page(f"P{i}", f"ページ{i}の本文はここにあります。" * 20)]
    data = write_dump(tmp_path / "big.json.gz", lines).read_bytes()
    dump = tmp_path / "trunc.json.gz"
    dump.write_bytes(data[: len(data) // 2])
    outdir = tmp_path / "out"
    with pytest.raises(InputError) as e:
        corpus_wiki.build_wiki_corpus(dump, outdir / "corpus.txt.gz", outdir / "corpus.stats.json")
    assert str(dump) in str(e.value)
    assert leftovers(outdir) == []
    # the CLI exits non-zero with the message
    r = run_module("corpus.wiki", "--input", dump, "--output", outdir / "corpus.txt.gz",
                   "--stats", outdir / "corpus.stats.json", "--threads", 2)
    assert r.returncode == 2
    assert str(dump) in r.stderr and "truncated" in r.stderr
    assert leftovers(outdir) == []


@pytest.mark.parametrize("lines", [[], ["", ""], [action(1)], ["{bad", "[]"]])
def test_wiki_empty_dump_is_an_error(tmp_path, lines):
    dump = write_dump(tmp_path / "empty.json.gz", lines)
    with pytest.raises(InputError, match="no usable pages"):
        corpus_wiki.build_wiki_corpus(dump, tmp_path / "o" / "corpus.txt.gz", tmp_path / "o" / "s.json")
    assert leftovers(tmp_path / "o") == []


def test_wiki_nothing_survives_is_an_error(tmp_path):
    dump = write_dump(tmp_path / "d.json.gz", [action(1), page("A", "短い。")])
    with pytest.raises(InputError, match="no sentence survived"):
        corpus_wiki.build_wiki_corpus(dump, tmp_path / "corpus.txt.gz")
    assert not (tmp_path / "corpus.txt.gz").exists()


def test_wiki_missing_input(tmp_path):
    r = run_module("corpus.wiki", "--input", tmp_path / "nope.json.gz", "--output", tmp_path / "o.txt.gz")
    assert r.returncode == 2 and "nope.json.gz" in r.stderr


# ---------------------------------------------------------------------------------------------
# corpus_shard
# ---------------------------------------------------------------------------------------------


def cc100_text(n_docs: int, prefix: str = "D") -> str:
    docs = []
    for i in range(n_docs):
        docs.append("\n".join([f"{prefix}{i:04d} 文書の始まり。"] +
                              [f"{prefix}{i:04d} の段落{j}です。" for j in range(1 + i % 3)]))
    return "\n\n".join(docs) + "\n\n"


def write_xz(path: Path, text: str | bytes) -> Path:
    data = text.encode("utf-8") if isinstance(text, str) else text
    path.write_bytes(lzma.compress(data, preset=1))
    return path


def shard_docs(outdir: Path, n: int) -> list[list[list[str]]]:
    """Per shard, its documents as lists of lines; also checks the file layout."""
    result = []
    for i in range(1, n + 1):
        raw = (outdir / f"corpus_{i:02d}.txt").read_bytes()
        assert b"\r" not in raw
        text = raw.decode("utf-8")
        assert text.endswith("\n\n") and not text.startswith("\n") and "\n\n\n" not in text
        result.append([d.split("\n") for d in text[:-2].split("\n\n")])
    return result


def test_shard_documents_whole_and_deterministic(tmp_path):
    src = write_xz(tmp_path / "ja.txt.xz", cc100_text(60))
    out1, out2, out3 = tmp_path / "s1", tmp_path / "s2", tmp_path / "s3"
    stats = corpus_shard.shard_corpus([src], out1, 4, fmt="cc100", seed=1, stats_path=out1 / "st.json")
    corpus_shard.shard_corpus([src], out2, 4, fmt="cc100", seed=1)
    corpus_shard.shard_corpus([src], out3, 4, fmt="cc100", seed=2)
    names = [f"corpus_{i:02d}.txt" for i in range(1, 5)]
    assert leftovers(out1) == names + ["st.json"]
    same = [(out1 / n).read_bytes() == (out2 / n).read_bytes() for n in names]
    other = [(out1 / n).read_bytes() == (out3 / n).read_bytes() for n in names]
    assert all(same) and not all(other)
    shards = shard_docs(out1, 4)
    seen = Counter()
    for docs in shards:
        for doc in docs:
            ids = {line[:5] for line in doc}
            assert len(ids) == 1  # a document is never split
            i = int(doc[0][1:5])
            assert doc == [f"D{i:04d} 文書の始まり。"] + [f"D{i:04d} の段落{j}です。" for j in range(1 + i % 3)]
            seen[i] += 1
    assert seen == Counter(range(60))  # each document exactly once
    assert stats["documents"] == 60 and sum(stats["documents_per_shard"]) == 60
    assert stats["documents_per_shard"] == [len(d) for d in shards]
    assert stats["lines_per_shard"] == [sum(len(x) for x in d) for d in shards]


def test_shard_threads_and_block_size_identical(tmp_path, monkeypatch):
    """Blocks of 64 bytes (documents span many blocks) or 7 (shorter than a line: carried over)
    on 1 or 2 threads, two inputs: the same shards as one block per input."""
    src = write_xz(tmp_path / "ja.txt.xz", cc100_text(50))
    src2 = write_xz(tmp_path / "ja2.txt.xz", "\n\n" + cc100_text(7) + "末尾の行。")  # no final line end
    ref = corpus_shard.shard_corpus([src, src2], tmp_path / "a", 3, seed=5, threads=1)
    for name, block, threads in (("b", 64, 2), ("c", 7, 1), ("d", 7, 2)):
        monkeypatch.setattr(corpus_shard, "BLOCK_BYTES", block)
        st = corpus_shard.shard_corpus([src, src2], tmp_path / name, 3, seed=5, threads=threads)
        for i in range(1, 4):
            assert (tmp_path / "a" / f"corpus_{i:02d}.txt").read_bytes() == \
                (tmp_path / name / f"corpus_{i:02d}.txt").read_bytes(), (name, i)
        for key in ("documents_per_shard", "lines_per_shard", "lines_in", "lines_dropped",
                    "bytes_in_uncompressed", "bytes_out"):
            assert st[key] == ref[key], (name, key)
    assert ref["documents"] == 58


def test_shard_cc100_cleaning_and_sentence_split(tmp_path):
    text = "ＡＢＣの店。とても良い店です。\n\u200b\n ｾｰﾙ中！！ \n\n二つ目。これは二つ目の文書です。\n\n"
    src = tmp_path / "ja.txt"
    src.write_text(text, encoding="utf-8")
    corpus_shard.shard_corpus([src], tmp_path / "o1", 1)
    assert (tmp_path / "o1" / "corpus_01.txt").read_text(encoding="utf-8") == (
        "ABCの店。とても良い店です。\nセール中!!\n\n二つ目。これは二つ目の文書です。\n\n")
    stats = corpus_shard.shard_corpus([src], tmp_path / "o2", 1, split_sentences=True,
                                      min_length=5)
    assert (tmp_path / "o2" / "corpus_01.txt").read_text(encoding="utf-8") == (
        "ABCの店。\nとても良い店です。\nセール中!!\n\nこれは二つ目の文書です。\n\n")
    assert stats["lines_dropped"] == {"empty": 1, "too_short": 1}


def test_shard_sentences_format_copies_lines(tmp_path):
    text = "ＡＢＣ  そのまま。\n二行目。\n\n\n\n次の文書。\n"  # no trailing blank line, extra blanks
    src = tmp_path / "corpus.txt.gz"
    src.write_bytes(gzip.compress(text.encode("utf-8")))
    corpus_shard.shard_corpus([src], tmp_path / "o", 1, fmt="sentences")
    assert (tmp_path / "o" / "corpus_01.txt").read_text(encoding="utf-8") == (
        "ＡＢＣ  そのまま。\n二行目。\n\n次の文書。\n\n")


def test_shard_documents_do_not_span_inputs(tmp_path):
    a = tmp_path / "a.txt"
    b = tmp_path / "b.txt"
    a.write_text("A文書の一行目。\nA文書の二行目。", encoding="utf-8")  # no final blank line
    b.write_text("B文書の一行目。\n\n", encoding="utf-8")
    stats = corpus_shard.shard_corpus([a, b], tmp_path / "o", 1)
    assert stats["documents"] == 2
    assert (tmp_path / "o" / "corpus_01.txt").read_text(encoding="utf-8") == (
        "A文書の一行目。\nA文書の二行目。\n\nB文書の一行目。\n\n")


def test_shard_crlf_bad_utf8_and_nul(tmp_path, caplog):
    raw = ("一つ目の文書。\r\n続きの行。\r\n\r\n".encode("utf-8")
           + b"\xff\xfe broken line\r\n" + "二つ目の文書。\r\n".encode("utf-8")
           + "NUL\x00入りの行。\r\n".encode("utf-8") + "最後の行。\r\n\r\n".encode("utf-8"))
    src = write_xz(tmp_path / "ja.txt.xz", raw)
    with caplog.at_level("WARNING", logger="bertja"):
        stats = corpus_shard.shard_corpus([src], tmp_path / "o", 1, stats_path=tmp_path / "o" / "s.json")
    assert (tmp_path / "o" / "corpus_01.txt").read_bytes().decode("utf-8") == (
        "一つ目の文書。\n続きの行。\n\n二つ目の文書。\n最後の行。\n\n")
    assert stats["skipped"] == {"bad_utf8_lines": 1, "nul_lines": 1}
    assert stats["nul_bytes"] == 1
    assert f"{src}:6: skipped (nul_lines)" in caplog.text
    assert f"{src}:4" in caplog.text  # the invalid UTF-8 line, logged by iter_lines


def test_shard_truncated_xz_is_an_error(tmp_path):
    data = lzma.compress(cc100_text(2000).encode("utf-8"), preset=1)
    src = tmp_path / "ja.txt.xz"
    src.write_bytes(data[: len(data) // 2])
    out = tmp_path / "o"
    with pytest.raises(InputError) as e:
        corpus_shard.shard_corpus([src], out, 4, stats_path=out / "s.json")
    assert str(src) in str(e.value)
    assert leftovers(out) == []
    r = run_module("corpus.shard", "--input", src, "--format", "cc100", "--output-dir", out,
                   "--num-shards", 4, "--seed", 0, "--stats", out / "s.json")
    assert r.returncode == 2 and str(src) in r.stderr
    assert leftovers(out) == []


def test_shard_truncated_xz_names_the_last_line_actually_read(tmp_path):
    """The message names the last complete line that could be decompressed, not the end of the
    previous 1 MB block."""
    data = lzma.compress(cc100_text(40000).encode("utf-8"), preset=1)
    src = tmp_path / "ja.txt.xz"
    src.write_bytes(data[: len(data) * 3 // 4])
    readable = lzma.LZMADecompressor().decompress(src.read_bytes())
    last = readable.count(b"\n")
    assert len(readable) > 2 * corpus_shard.BLOCK_BYTES  # the error comes blocks into the file
    with pytest.raises(InputError) as e:
        corpus_shard.shard_corpus([src], tmp_path / "o", 2)
    assert f"truncated archive after line {last}:" in str(e.value), (str(e.value), last)
    assert e.value.line == last + 1


@pytest.mark.parametrize("text", ["", "\n\n\n", "  \n\u3000\n\t\n\n"])
def test_shard_empty_or_blank_dump_says_it_is_empty(tmp_path, text):
    src = write_xz(tmp_path / "ja.txt.xz", text)
    out = tmp_path / "o"
    with pytest.raises(InputError) as e:
        corpus_shard.shard_corpus([src], out, 4, stats_path=out / "s.json")
    msg = str(e.value)
    assert msg.startswith(f"{src}: the input is empty"), msg
    assert "shards were requested" not in msg
    assert leftovers(out) == []
    r = run_module("corpus.shard", "--input", src, "--format", "cc100", "--output-dir", out, "--num-shards", 4)
    assert r.returncode == 2 and "the input is empty" in r.stderr


def test_shard_nothing_surviving_cleaning_says_so(tmp_path):
    src = write_xz(tmp_path / "ja.txt.xz", "短い。\n\n短い。\n\n")
    with pytest.raises(InputError, match="no document survived cleaning.*too_short"):
        corpus_shard.shard_corpus([src], tmp_path / "o", 2, min_length=10, split_sentences=True)


def test_shard_too_few_documents_is_an_error(tmp_path):
    src = write_xz(tmp_path / "ja.txt.xz", cc100_text(3))
    out = tmp_path / "o"
    with pytest.raises(InputError) as e:
        corpus_shard.shard_corpus([src], out, 8, stats_path=out / "s.json")
    msg = str(e.value)
    assert str(src) in msg and "found 3 documents" in msg and "8 shards" in msg
    assert leftovers(out) == []


def test_shard_cli(tmp_path):
    src = write_xz(tmp_path / "ja.txt.xz", cc100_text(30))
    out = tmp_path / "o"
    r = run_module("corpus.shard", "--input", src, "--format", "cc100", "--output-dir", out,
                   "--num-shards", 3, "--seed", 7, "--stats", out / "shards.stats.json",
                   "--no-split-sentences", "--min-sentence-length", 0, "--max-sentence-length", 0,
                   "--threads", 2)
    assert r.returncode == 0, r.stderr
    stats = json.loads((out / "shards.stats.json").read_text(encoding="utf-8"))
    assert stats["documents"] == 30 and stats["seed"] == 7
    assert leftovers(out) == ["corpus_01.txt", "corpus_02.txt", "corpus_03.txt", "shards.stats.json"]


# ---------------------------------------------------------------------------------------------
# corpus_sample
# ---------------------------------------------------------------------------------------------


def make_shards(tmp_path: Path) -> list[Path]:
    paths = []
    for s in range(3):
        p = tmp_path / f"corpus_{s + 1:02d}.txt"
        p.write_text("".join(f"shard{s} line{i}\n" + ("\n" if i % 4 == 3 else "") for i in range(40)),
                     encoding="utf-8")
        paths.append(p)
    return paths


def test_sample_deterministic_and_ordered(tmp_path):
    shards = make_shards(tmp_path)
    corpus = [ln for p in shards for ln in p.read_text(encoding="utf-8").split("\n") if ln]
    a = corpus_sample.sample_lines(shards, tmp_path / "a.txt", 25, seed=3)
    corpus_sample.sample_lines(shards, tmp_path / "b.txt", 25, seed=3)
    corpus_sample.sample_lines(shards, tmp_path / "c.txt", 25, seed=4)
    la = (tmp_path / "a.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert (tmp_path / "a.txt").read_bytes() == (tmp_path / "b.txt").read_bytes()
    assert (tmp_path / "a.txt").read_bytes() != (tmp_path / "c.txt").read_bytes()
    assert len(la) == 25 and len(set(la)) == 25 and all(la)
    assert [ln for ln in corpus if ln in set(la)] == la  # corpus order
    assert a["lines_available"] == 120 and a["lines_written"] == 25


def test_sample_all_lines_when_fewer(tmp_path):
    shards = make_shards(tmp_path)
    corpus = [ln for p in shards for ln in p.read_text(encoding="utf-8").split("\n") if ln]
    r = run_module("corpus.sample", "--input", *shards, "--output", tmp_path / "s.txt",
                   "--num-lines", 1000, "--seed", 0)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "s.txt").read_text(encoding="utf-8").split("\n")[:-1] == corpus


def test_sample_empty_input_is_an_error(tmp_path):
    p = tmp_path / "corpus_01.txt"
    p.write_text("\n\n", encoding="utf-8")
    with pytest.raises(InputError, match="no non-empty lines"):
        corpus_sample.sample_lines([p], tmp_path / "s.txt", 10)
    assert not (tmp_path / "s.txt").exists()


# ---------------------------------------------------------------------------------------------
# The committed sample through the whole chain
# ---------------------------------------------------------------------------------------------


def test_committed_sample_chain(tmp_path):
    out = tmp_path / "corpus" / "sample-wikipedia"
    stats = corpus_wiki.build_wiki_corpus(SAMPLE_WIKI, out / "corpus.txt.gz",
                                          out / "corpus.stats.json", min_length=10, max_length=200,
                                          mode="project")
    assert stats["pages_read"] >= 60
    assert stats["sentences_written"] >= 450
    assert stats["skipped"].get("disambiguation", 0) >= 1
    assert stats["sentences_dropped"].get("math", 0) >= 1
    lines = [ln for ln in read_gz_lines(out / "corpus.txt.gz") if ln]
    source = unicodedata.normalize(
        "NFKC", (REPO / "sample" / "source" / "wiki_articles.txt").read_text(encoding="utf-8"))
    # everything that survives is clean source text (the generator's sub-article leads aside)
    foreign = [ln for ln in lines if ln not in source and not ln.startswith("本項では、")]
    assert foreign == []
    for ln in lines:
        assert 10 <= len(ln) <= 200 and ln.isprintable()
        assert not any(m in ln for m in ("[", "{", "^", "ｶ", "\u200b", "ウィキペディア"))
    sh = corpus_shard.shard_corpus([out / "corpus.txt.gz"], out, 2, fmt="sentences", seed=0)
    assert sh["lines_written"] == stats["sentences_written"]
    assert sh["documents"] == stats["pages_written"]
    smp = corpus_sample.sample_lines([out / "corpus_01.txt", out / "corpus_02.txt"],
                                     out / "corpus_sampled.txt", 100000, seed=0)
    assert smp["lines_written"] == stats["sentences_written"]

    cc = tmp_path / "corpus" / "sample-cc-100"
    st = corpus_shard.shard_corpus([SAMPLE_CC100], cc, 4, fmt="cc100", seed=0)
    assert st["documents"] >= 100 and min(st["documents_per_shard"]) >= 10
    assert st["skipped_total"] == 0


def test_committed_sample_in_recipe_mode(tmp_path):
    """config.yaml puts sample-wikipedia on recipe mode (docs/cleaning.md): the recipe keeps
    disambiguation pages and what its rules do not remove (boilerplate, hatnotes)."""
    stats = corpus_wiki.build_wiki_corpus(SAMPLE_WIKI, tmp_path / "corpus.txt.gz", min_length=10,
                                          max_length=200, mode="recipe")
    assert stats["skipped"] == {} and stats["settings"]["drop_disambiguation"] is False
    assert stats["sentences_written"] >= 450
    lines = [ln for ln in read_gz_lines(tmp_path / "corpus.txt.gz") if ln]
    assert all(10 <= len(ln) <= 200 and ln.isprintable() for ln in lines)
    assert not any("\\displaystyle" in ln or " ^ " in ln for ln in lines)
    assert any(ln.startswith("出典: フリー百科事典『ウィキペディア(Wikipedia)』") for ln in lines)
