"""``cleaning.mode: recipe``: scripts/corpus/recipeclean.py and corpus_wiki's recipe mode.

The expected outputs of the fixtures are worked out by hand from the rules of the recipe's
``make_corpus_wiki.py`` (listed in recipeclean's docstring; see docs/cleaning.md).  The real-text
test compares with output that the recipe script itself produced on JSQuAD paragraphs
(tests/data/README.md); it is skipped where the JGLUE data set is not present.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from scripts.corpus import recipeclean, wiki as corpus_wiki  # noqa: E402
from scripts.corpus.recipeclean import RecipeSentenceSplitter, recipe_clean_text, recipe_filter  # noqa: E402

DATA = REPO / "tests" / "data"
JSQUAD = REPO.parent / "shared" / "jglue" / "datasets" / "jsquad-v1.3" / "valid-v1.3.json"
needs_jsquad = pytest.mark.skipif(not JSQUAD.is_file(), reason=f"JGLUE's JSQuAD is not at {JSQUAD}")


@pytest.fixture(scope="module")
def splitter():
    return RecipeSentenceSplitter()


# ---------------------------------------------------------------------------------------------
# Cleaning rules, one by one
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, title, expected", [
    # NFKC; non-printables deleted, not turned into spaces (tab, newline, zero-width space)
    ("ＡＢＣ（１２３）℃！？", None, "ABC(123)°C!?"),
    ("東\t京\n都\u200bです\u3000次", None, "東京都です 次"),
    # [digits] and [要...]: the shortest span to a "]" after at least one character
    ("本文[12]です[要出典]。", None, "本文です。"),
    ("本文[要ページ番号]です[要検証 – ノート]。", None, "本文です。"),
    ("[要]本文]残り", None, "残り"),
    ("[注 1]と[a]と[1a]は残る", None, "[注 1]と[a]と[1a]は残る"),
    # templates: one pass; of nested ones only the innermost goes, with the whole closing run
    ("前{{Main|東京}}後", None, "前後"),
    ("前{{Refnest|group=注|{{Cite book|title=本}}}}後", None, "前{{Refnest|group=注|後"),
    ("{{{三重}}}と{{}}と{x}", None, "と{{}}と{x}"),
    # navigation: up to the first " > <title>" at offset >= 1, wherever it is; raw title
    ("日本の都道府県 > 東京都 東京都は首都である。", "東京都", "東京都は首都である。"),
    ("東京都は首都である。 比較 > 東京都 の面積。", "東京都", "の面積。"),
    (" > 東京都 本文", "東京都", "> 東京都 本文"),
    ("親 > ＡＢＣ 本文", "ＡＢＣ", "親 > ABC 本文"),  # the text is NFKC'd, the title is not
    ("親 > 題 本文", None, "親 > 題 本文"),
    # footnotes: from the first " ^ " with something after it
    ("本文である。 ^ 注の本 ^ 別の注", None, "本文である。"),
    ("本文である。 ^", None, "本文である。 ^"),
    # annotations: [要出典], [リンク切れ], and the shortest "[" ... "?]" even across brackets
    ("とされる[リンク切れ]。いつ[いつ?]か。", None, "とされる。いつか。"),
    ("[a]とは何か? [b?]残り", None, "残り"),
    ("配列[a]の値は正しいのか? と問われた", None, "配列[a]の値は正しいのか? と問われた"),
    # whitespace collapsed and stripped
    ("  前   後  ", None, "前 後"),
])
def test_recipe_clean_text(text, title, expected):
    assert recipe_clean_text(text, title) == expected


# ---------------------------------------------------------------------------------------------
# Sentence splitting: after every token whose unidic fields hold 記号 and 句点
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("今日は晴れ。明日は雨。", ["今日は晴れ。", "明日は雨。"]),
    # a decimal point is a 補助記号-句点 token in unidic-lite: the recipe splits there
    ("最高気温は40.6°Cだった。", ["最高気温は40.", "6°Cだった。"]),
    # no bracket protection: a 。 inside a quotation ends a sentence
    ("彼は「明日は晴れる。」と言った。", ["彼は「明日は晴れる。", "」と言った。"]),
    ("(注:例。)終わり", ["(注:例。", ")終わり"]),
    # ! and ? are ends each, also when they follow each other
    ("本当か!?そうだ。", ["本当か!", "?", "そうだ。"]),
    ("Yahoo!で検索", ["Yahoo!", "で検索"]),
    # MeCab groups an ASCII "]" and the 。 after it into one unknown 記号 token: no end there
    ("値は[注 1]。次の文。", ["値は[注 1]。次の文。"]),
    ("これは(例)。次の文。", ["これは(例)。", "次の文。"]),
    # the text after the last end is a sentence; separators stay until the caller strips
    ("一文目。 二文目", ["一文目。", " 二文目"]),
    ("句点なし", ["句点なし"]),
    ("", []),
])
def test_recipe_split(splitter, text, expected):
    assert splitter.split(text) == expected


def test_recipe_split_in_pieces_is_the_same(splitter, monkeypatch):
    text = " ".join(f"これは{i}番目の文で、値は{i}.5である。「引用だ!」と言った" for i in range(300))
    whole = splitter.split(text)
    monkeypatch.setattr(recipeclean, "RECIPE_MECAB_CHUNK_BYTES", 200)
    assert splitter.split(text) == whole
    assert len(whole) == 901  # per item: "…値は{i}." | "5である。" | "「引用だ!"; then the tail


def test_recipe_filter_strips_and_counts():
    counts = Counter()
    kept = recipe_filter([" ちょうど十文字の文だ。 ", "短い。", " ", "あ" * 201, "式 {\\displaystyle x} の文はここ。"],
                         10, 200, counts)
    assert kept == ["ちょうど十文字の文だ。"]
    assert counts == {"too_short": 1, "empty": 1, "too_long": 1, "math": 1}


# ---------------------------------------------------------------------------------------------
# Whole pages through corpus_wiki --mode recipe
# ---------------------------------------------------------------------------------------------

FIXTURE_PAGES = [
    ("東京都",
     "日本の都道府県 > 東京都 東京都（とうきょうと）は、日本の首都である[1]。2020年8月の最高気温は40.6℃を"
     "記録した[要出典]。彼は「明日は晴れる。」と言った。本当にそんなことがあるのか！？それは誰にとっても驚きだった。"
     "{{Main|東京}}人口は約1400万人である[注 1]。 脚注 ^ 東京都の統計による。 関連項目 日本", {}),
    ("ＡＢＣ事件",
     "事件 > ＡＢＣ事件 ＡＢＣ事件は\t架空の\u200b事件である{{Refnest|group=注|{{Cite book|title=本}}}}。"
     "この説明には[いつ?]疑問がある[リンク切れ]とされる。配列[a]の値は正しいのか? と問われた[要検証 – ノート]。末尾の記号 ^",
     {}),
    ("気温", "気温は大気の温度である。 比較 > 気温 の記録は各地で観測されている。最高記録は41.1度とされる。", {}),
    ("テスト (曖昧さ回避)", "テスト城 - 架空の城である。 テスト川 - 架空の川である。", {"category": ["曖昧さ回避"]}),
    ("円", "円の面積は {\\displaystyle \\pi r^{2}} で求められる。円は平面上の図形の一つである。", {}),
    ("短い", "短い。とても短い。", {}),
]
# Worked out by hand from the recipe's rules (10 <= length <= 200):
FIXTURE_EXPECTED = [
    # navigation "日本の都道府県 > 東京都" gone; [1] [要出典] {{Main}} gone; [注 1] stays; the
    # footnotes from " ^ " are cut
    "東京都(とうきょうと)は、日本の首都である。",
    "2020年8月の最高気温は40.",      # "6°Cを記録した。" (9 characters) is too short
    "彼は「明日は晴れる。",            # "」と言った。" too short
    "本当にそんなことがあるのか!",     # "?" too short
    "それは誰にとっても驚きだった。",
    # "]。" is one unknown 記号-一般 token in unidic-lite (no 句点): no split before " 脚注"
    "人口は約1400万人である[注 1]。 脚注",
    "",
    # the title is not NFKC'd, so "事件 > ABC事件" stays; tab and U+200B deleted; the outer
    # template's head stays; [いつ?] and [リンク切れ] gone; [a] stays (no "?]" after it)
    "事件 > ABC事件 ABC事件は架空の事件である{{Refnest|group=注|。",
    "この説明には疑問があるとされる。",
    "配列[a]の値は正しいのか?",       # "と問われた。" and "末尾の記号 ^" too short
    "",
    # everything up to " > 気温" removed, though it is mid-text; 41.1 split like 40.6
    "の記録は各地で観測されている。",
    "",
    # the recipe keeps disambiguation pages
    "テスト城 - 架空の城である。",
    "テスト川 - 架空の川である。",
    "",
    # the \displaystyle sentence is dropped
    "円は平面上の図形の一つである。",
    "",
    # the page "短い" writes nothing
]


def write_dump(path: Path, pages) -> Path:
    lines = []
    for i, (title, text, extra) in enumerate(pages):
        lines.append(json.dumps({"index": {"_type": "_doc", "_id": str(i + 1)}}))
        lines.append(json.dumps({"title": title, "text": text, "namespace": 0, **extra}, ensure_ascii=False))
    path.write_bytes(gzip.compress(("\n".join(lines) + "\n").encode("utf-8"), mtime=0))
    return path


def gz_lines(path: Path) -> list[str]:
    return gzip.decompress(path.read_bytes()).decode("utf-8").split("\n")[:-1]


def test_recipe_mode_fixture_pages(tmp_path):
    dump = write_dump(tmp_path / "d.json.gz", FIXTURE_PAGES)
    stats = corpus_wiki.build_wiki_corpus(dump, tmp_path / "corpus.txt.gz", min_length=10, max_length=200,
                                          mode="recipe")
    assert gz_lines(tmp_path / "corpus.txt.gz") == FIXTURE_EXPECTED
    assert stats["settings"]["mode"] == "recipe" and stats["settings"]["drop_disambiguation"] is False
    assert stats["pages_written"] == 5 and stats["pages_empty_after_cleaning"] == 1
    assert stats["skipped"] == {}
    assert stats["sentences_dropped"]["math"] == 1


def test_recipe_and_project_modes_differ_as_documented(tmp_path):
    dump = write_dump(tmp_path / "d.json.gz", FIXTURE_PAGES)
    corpus_wiki.build_wiki_corpus(dump, tmp_path / "p.txt.gz", mode="project")
    project = gz_lines(tmp_path / "p.txt.gz")
    assert "彼は「明日は晴れる。」と言った。" in project          # bracket-aware
    assert "2020年8月の最高気温は40.6°Cを記録した。" in project   # no split at a decimal point
    assert not any("テスト城" in s for s in project)               # disambiguation dropped
    assert not any("{{" in s for s in project)                     # nested templates go whole
    assert "ABC事件は 架空の事件である。" in project                # a tab is a space, not deleted
    assert "比較 > 気温 の記録は各地で観測されている。" in project  # only a leading breadcrumb goes
    assert "人口は約1400万人である。" in project                    # [注 1] removed


def test_recipe_mode_cli_threads_identical(tmp_path):
    dump = write_dump(tmp_path / "d.json.gz", FIXTURE_PAGES * 20)
    outs = []
    for n in (1, 2):
        out = tmp_path / f"t{n}" / "corpus.txt.gz"
        r = subprocess.run([sys.executable, "-m", "scripts.corpus.wiki", "--input", str(dump), "--output", str(out),
                            "--mode", "recipe", "--threads", str(n)], cwd=REPO, capture_output=True, text=True,
                           timeout=300)
        assert r.returncode == 0, r.stderr
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert gz_lines(tmp_path / "t1" / "corpus.txt.gz") == FIXTURE_EXPECTED * 20


# ---------------------------------------------------------------------------------------------
# Real text: JSQuAD's Wikipedia paragraphs (JGLUE, CC BY-SA 4.0)
# ---------------------------------------------------------------------------------------------

# Made now with `python -m scripts.tools.jglue_cirrus` from jsquad-v1.3/valid-v1.3.json and the
# recipe's own make_corpus_wiki.py (docs/cleaning.md has the commands).
EXCERPT_DUMP_SHA256 = "633ad765506baa06a3e1adedd1f62233e2669a267684c5cada40f59ef74a72aa"  # 30 pages x 3 paragraphs
FULL_DUMP_SHA256 = "cbbd4ce6db6d5b6a71650c7403097c4642d136e4f644c6ea2eef396bf81a7946"  # all 59 pages
FULL_RECIPE_OUTPUT_SHA256 = "653a37103295781aad699b63ecd1e26bf858d8e80b890af53b6f5cf46687ca32"  # uncompressed
FULL_RECIPE_SENTENCES = 3403


def jsquad_dump(path: Path, *args) -> Path:
    r = subprocess.run([sys.executable, "-m", "scripts.tools.jglue_cirrus", "--input", str(JSQUAD),
                        "--output", str(path), *args], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return path


@needs_jsquad
def test_recipe_mode_on_real_text_matches_the_recipe_script_output(tmp_path):
    dump = jsquad_dump(tmp_path / "jsquad30.json.gz", "--max-pages", "30", "--max-paragraphs", "3")
    assert hashlib.sha256(dump.read_bytes()).hexdigest() == EXCERPT_DUMP_SHA256, "the input dump changed"
    out = tmp_path / "corpus.txt.gz"
    corpus_wiki.build_wiki_corpus(dump, out, min_length=10, max_length=200, mode="recipe")
    expected = (DATA / "jsquad30_recipe_expected.txt").read_bytes()
    assert gzip.decompress(out.read_bytes()) == expected


@needs_jsquad
def test_recipe_mode_on_the_whole_real_text_dump_is_stable(tmp_path):
    dump = jsquad_dump(tmp_path / "jsquad.json.gz")
    assert hashlib.sha256(dump.read_bytes()).hexdigest() == FULL_DUMP_SHA256, "the input dump changed"
    out = tmp_path / "corpus.txt.gz"
    stats = corpus_wiki.build_wiki_corpus(dump, out, min_length=10, max_length=200, mode="recipe", threads=2)
    assert stats["pages_read"] == 59 and stats["sentences_written"] == FULL_RECIPE_SENTENCES
    assert hashlib.sha256(gzip.decompress(out.read_bytes())).hexdigest() == FULL_RECIPE_OUTPUT_SHA256


@needs_jsquad
def test_jglue_cirrus_writes_the_current_doc_format(tmp_path):
    dump = jsquad_dump(tmp_path / "d.json.gz", "--max-pages", "2")
    lines = gzip.decompress(dump.read_bytes()).decode("utf-8").split("\n")[:-1]
    assert len(lines) == 4
    act, pg = json.loads(lines[0]), json.loads(lines[1])
    assert act == {"index": {"_type": "_doc", "_id": "10336"}}
    assert pg["title"] == "梅雨" and pg["namespace"] == 0 and pg["wiki"] == "jawiki"
    assert pg["text"].startswith("梅雨（つゆ、ばいう）は、") and "[SEP]" not in pg["text"]
    assert pg["text_bytes"] == len(pg["text"].encode("utf-8"))
    again = jsquad_dump(tmp_path / "e.json.gz", "--max-pages", "2")
    assert again.read_bytes() == dump.read_bytes()
