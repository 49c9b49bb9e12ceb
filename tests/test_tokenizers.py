"""Tokenizer stages: UniDic alphabet, WordPiece training, character vocabulary."""

from __future__ import annotations

import csv
import logging
import os
import random
import subprocess
import sys
import unicodedata
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from scripts.tokenizers import alphabet as make_alphabet, char_vocab as make_char_vocab, train_wordpiece as train_tokenizer  # noqa: E402
from scripts.shared.common import InputError, mecab_tagger  # noqa: E402
from scripts.tokenizers.mecab_dic import DictionaryError, MecabDictionary, dictionary_path  # noqa: E402

UNIDIC_LITE_ALPHABET_SIZE = 7012  # the recipe's --limit_alphabet (UniDic 2.1.2)
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
UNUSED = [f"[unused{i}]" for i in range(10)]


def run_module(module: str, *args, check: bool = True) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("RAYON_RS_NUM_CPUS", None)
    proc = subprocess.run([sys.executable, "-m", module, *map(str, args)], cwd=ROOT, env=env,
                          text=True, capture_output=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"{module} failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc


# ---------------------------------------------------------------------------------------------
# Compiled dictionary and alphabet
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def unidic():
    return MecabDictionary(dictionary_path("unidic_lite"))


@pytest.fixture(scope="module")
def unidic_keys(unidic):
    return unidic.enumerate_keys()


@pytest.fixture(scope="module")
def alphabet_file(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("alphabet") / "unidic_lite.txt"
    assert make_alphabet.main(["--output", str(out)]) == 0
    return out


def test_sys_dic_header_and_entries(unidic, unidic_keys):
    h = unidic.header
    assert (h.version, h.type_name, h.charset) == (102, "system", "utf8")
    keys, values = unidic_keys
    assert len(keys) == len(set(keys))
    # Every token belongs to exactly one surface.
    starts, counts = values >> 8, values & 0xFF
    assert counts.min() >= 1 and int(counts.sum()) == h.lexsize
    order = np.argsort(starts)
    assert starts[order][0] == 0
    assert np.array_equal(starts[order][1:], (starts + counts)[order][:-1])
    surfaces = {k.decode("utf-8") for k in keys}
    assert {"東京", "の", "ＡＩ", "＂"} <= surfaces


def test_sys_dic_lookup_matches_mecab(unidic, unidic_keys):
    entries = unidic.lookup("東京")
    assert entries is not None and len(entries) >= 1
    assert any(unidic.feature(i).split(",")[8] == "東京" for i in entries)
    assert unidic.lookup("東京都庁舎ではない") is None
    assert unidic.lookup("") is None
    # A random sample of enumerated keys is found again by exact lookup, with the same range.
    keys, values = unidic_keys
    rng = random.Random(0)
    for i in rng.sample(range(len(keys)), 200):
        r = unidic.lookup(keys[i])
        assert r == range(int(values[i]) >> 8, (int(values[i]) >> 8) + (int(values[i]) & 0xFF))


def test_bad_dictionary_is_input_error(tmp_path, unidic):
    bad = tmp_path / "sys.dic"
    with open(unidic.path, "rb") as fh:
        bad.write_bytes(fh.read(4096))  # truncated: the magic number encodes the full size
    with pytest.raises(DictionaryError, match="bad magic"):
        MecabDictionary(bad)
    assert issubclass(DictionaryError, InputError)
    (tmp_path / "tiny.dic").write_bytes(b"\0" * 10)
    with pytest.raises(DictionaryError, match="too short"):
        MecabDictionary(tmp_path / "tiny.dic")


def test_alphabet_from_sys_dic(alphabet_file):
    chars = alphabet_file.read_text(encoding="utf-8").split("\n")
    assert chars[-1] == ""
    chars = chars[:-1]
    assert len(chars) == UNIDIC_LITE_ALPHABET_SIZE
    assert chars == sorted(set(chars))
    assert all(len(c) == 1 and c.isprintable() for c in chars)
    assert all(unicodedata.normalize("NFKC", c) == c for c in chars)
    # '"' comes from the full-width ＂ entry; ' ' from surfaces with U+3000 (NFKC -> space).
    assert {'"', " ", "あ", "ア", "東", "A", "1", "々"} <= set(chars)
    assert not {"ｱ", "Ａ", "①", "\u00ad"} & set(chars)


def write_lex(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        for row in rows:
            w.writerow(row)


def test_alphabet_from_lex_csv(tmp_path):
    lex = tmp_path / "lex.csv"
    feats = ["1", "2", "3", "名詞"]
    write_lex(lex, [
        ["東京", *feats],
        ["", *feats],  # an empty surface is the double-quote entry
        ["ｱｲ", *feats],  # half-width katakana -> ア, イ
        ["①", *feats],  # -> 1
        ["㍻", *feats],  # -> 平成: two characters, dropped
        ["a,b", *feats],  # quoted field with a comma
        ["x\u00ady", *feats],  # soft hyphen: not printable, dropped
        ["東", *feats],
    ])
    with open(lex, "a", encoding="utf-8") as fh:
        fh.write("\n")  # a blank row is skipped
    out = tmp_path / "alphabet.txt"
    assert make_alphabet.main(["--output", str(out), "--lex-file", str(lex)]) == 0
    expected = sorted({"東", "京", '"', "ア", "イ", "1", "a", ",", "b", "x", "y"})
    assert out.read_text(encoding="utf-8") == "".join(c + "\n" for c in expected)


def test_lex_csv_error_names_line(tmp_path, caplog):
    lex = tmp_path / "lex.csv"
    write_lex(lex, [["東京", "1"], ["x" * (csv.field_size_limit() + 10), "1"]])
    with pytest.raises(InputError, match=r"lex\.csv:2: bad CSV row"):
        make_alphabet.build_alphabet(lex)
    proc = run_module("scripts.tokenizers.alphabet", "--output", tmp_path / "a.txt", "--lex-file", lex, check=False)
    assert proc.returncode == 2
    assert "lex.csv:2: bad CSV row" in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "a.txt").exists()


# ---------------------------------------------------------------------------------------------
# WordPiece training
# ---------------------------------------------------------------------------------------------

PEOPLE = ["山田さん", "田中先生", "佐藤くん", "鈴木部長", "高橋さん", "私", "彼女", "子供たち", "留学生"]
PLACES = ["東京", "大阪", "京都", "北海道", "名古屋", "福岡", "図書館", "駅前の喫茶店", "大学", "公園"]
THINGS = ["本", "新聞", "手紙", "写真", "コーヒー", "ラーメン", "パソコン", "自転車", "論文", "お土産"]
VERBS = ["読みました", "買いました", "見ました", "作りました", "送りました", "忘れました", "探しています"]
TIMES = ["昨日", "今日", "明日", "毎朝", "先週", "去年の夏", "週末"]
ADJ = ["新しい", "古い", "大きな", "小さな", "美しい", "高い", "面白い"]
LATIN = ["Python", "BERT", "GPU", "ＡＩ", "ｶﾀｶﾅ", "ＷｉＦｉ", "COVID-19"]


def make_corpus(path: Path, n: int = 600, seed: int = 0) -> Path:
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        kind = rng.randrange(5)
        p, q = rng.choice(PEOPLE), rng.choice(PEOPLE)
        place, thing, verb = rng.choice(PLACES), rng.choice(THINGS), rng.choice(VERBS)
        t, a = rng.choice(TIMES), rng.choice(ADJ)
        if kind == 0:
            lines.append(f"{t}、{p}は{place}で{a}{thing}を{verb}。")
        elif kind == 1:
            lines.append(f"{p}と{q}は{rng.randint(1, 2024)}年に{place}へ行きました。")
        elif kind == 2:
            lines.append(f"この{thing}は{rng.randint(100, 99999)}円で、とても{a[:-1] + 'かった' if a.endswith('い') else a}です。")
        elif kind == 3:
            lines.append(f"{rng.choice(LATIN)}を使って{thing}について調べ、{p}に報告しました。")
        else:
            lines.append(f"「{a}{thing}ですね」と{p}が言ったので、{q}は笑った。")
        if i % 50 == 0:
            lines.append("")  # empty lines are skipped
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return make_corpus(tmp_path_factory.mktemp("corpus") / "corpus_sampled.txt")


def train_cli(corpus: Path, alphabet: Path, out: Path, threads: int, vocab_size: int) -> Path:
    run_module("scripts.tokenizers.train_wordpiece", "--input", corpus, "--output-dir", out, "--mecab-dic", "unidic_lite",
               "--vocab-size", vocab_size, "--limit-alphabet", UNIDIC_LITE_ALPHABET_SIZE,
               "--initial-alphabet-file", alphabet, "--num-unused-tokens", 10, "--wordpieces-prefix", "##",
               "--threads", threads)
    return out / "vocab.txt"


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpus, alphabet_file):
    """Three CLI runs (threads 1, 2, 2) with a vocab size that stops the merges half-way."""
    import json

    base = tmp_path_factory.mktemp("wordpiece")
    # A first in-process run to learn how many merges the corpus allows.
    stats: dict = {}
    counts = train_tokenizer.count_words(corpus, stats=stats)
    alphabet = train_tokenizer.read_alphabet(alphabet_file)
    full = train_tokenizer.train_wordpiece(counts, alphabet, vocab_size=10**6, limit_alphabet=len(alphabet),
                                           stats=stats)
    n_fixed = len(SPECIALS) + len(UNUSED) + len(alphabet) + stats["continuation_chars"]
    assert stats["learned_subwords"] > 100
    vocab_size = n_fixed + stats["learned_subwords"] // 2
    vocabs = [train_cli(corpus, alphabet_file, base / f"run{i}", threads, vocab_size)
              for i, threads in enumerate([1, 2, 2])]
    run_stats = json.loads((base / "run0" / "train.stats.json").read_text())
    return {"vocabs": vocabs, "stats": run_stats, "alphabet": alphabet, "vocab_size": vocab_size,
            "full": full, "n_fixed": n_fixed}


def read_vocab(path: Path) -> list[str]:
    text = path.read_text(encoding="utf-8")
    assert text.endswith("\n")
    return text[:-1].split("\n")


def test_vocab_layout(trained):
    tokens = read_vocab(trained["vocabs"][0])
    alphabet = trained["alphabet"]
    n_head = len(SPECIALS) + len(UNUSED) + len(alphabet)
    assert n_head == 7027
    assert len(tokens) == trained["vocab_size"] == len(set(tokens))
    assert tokens[:5] == SPECIALS
    assert tokens[5:15] == UNUSED
    assert tokens[15:n_head] == alphabet
    # Then the continuation characters (code-point order), then learned subwords.
    cont = [t for t in tokens[n_head:trained["n_fixed"]]]
    assert cont and all(t.startswith("##") and len(t) == 3 for t in cont)
    assert cont == sorted(cont)
    learned = tokens[trained["n_fixed"]:]
    assert learned and any(t.startswith("##") for t in learned) and any(not t.startswith("##") for t in learned)
    assert all(len(t.removeprefix("##")) >= 2 for t in learned)
    assert {"東京", "パソコン", "##コン", "まし"} <= set(learned)
    # The cut-off vocabulary is a prefix of the uncut one: merges come out in the same order.
    assert tokens == trained["full"][:len(tokens)]
    stats = trained["stats"]
    assert stats["library_order_matched"] is True
    assert stats["vocab_size"] == len(tokens) and stats["character_vocab_size"] == 7027
    assert stats["lines"] == 612 and stats["empty_lines"] == 12 and stats["words"] > 5000


def test_vocab_is_deterministic_across_runs_and_threads(trained):
    first, *others = [p.read_bytes() for p in trained["vocabs"]]
    assert all(o == first for o in others)


def test_count_words_independent_of_threads(corpus):
    one = train_tokenizer.count_words(corpus, threads=1)
    two = train_tokenizer.count_words(corpus, threads=2)
    assert one == two and sum(one.values()) > 5000


def test_segmentation_matches_bert_japanese_tokenizer():
    from transformers.models.bert_japanese.tokenization_bert_japanese import MecabTokenizer

    ref = MecabTokenizer(mecab_dic="unidic_lite")  # fugashi, NFKC on
    tagger = mecab_tagger("unidic_lite")
    texts = ["東京都に住んでいる山田太郎です。", "ＡＢＣ　ｄｅｆ　１２３　ﾊﾝｶｸｶﾅ", "tab\tseparated  words ",
             "絵文字😀を含む文🍣", "㍻㈱①髙﨑", "a\u3000b\u00a0c", "English and 日本語, 3.14 https://example.com/?q=1"]
    for text in texts:
        expected = [part for w in ref.tokenize(text) for part in w.split()]
        assert train_tokenizer.split_words(tagger, text) == expected, text


def test_tokenizer_loads_in_transformers(trained, corpus):
    from transformers import BertJapaneseTokenizer

    tok = BertJapaneseTokenizer(str(trained["vocabs"][0]), word_tokenizer_type="mecab",
                                subword_tokenizer_type="wordpiece", mecab_kwargs={"mecab_dic": "unidic_lite"})
    text = "昨日、山田さんは東京で新しい本を読みました。"
    tokens = tok.tokenize(text)
    assert "[UNK]" not in tokens
    assert tokens[:4] == ["昨日", "、", "山田", "さん"]
    assert "東京" in tokens
    assert "".join(t.removeprefix("##") for t in tokens) == text
    ids = tok(text)["input_ids"]
    assert ids[0] == 2 and ids[-1] == 3  # [CLS] ... [SEP]
    # Unseen characters of the alphabet still work as word-initial tokens.
    assert tok.tokenize("鬱") == ["鬱"]


# ---------------------------------------------------------------------------------------------
# Character vocabulary
# ---------------------------------------------------------------------------------------------


def test_char_vocab(trained, alphabet_file, tmp_path):
    from transformers import BertJapaneseTokenizer

    src = trained["vocabs"][0]
    out = tmp_path / "character" / "vocab.txt"
    assert make_char_vocab.main(["--input", str(src), "--alphabet-file", str(alphabet_file), "--num-unused-tokens",
                                 "10", "--output", str(out), "--vocab-size", "7027"]) == 0
    head = b"".join(src.read_bytes().splitlines(keepends=True)[:7027])
    assert out.read_bytes() == head
    assert read_vocab(out) == SPECIALS + UNUSED + trained["alphabet"]
    tok = BertJapaneseTokenizer(str(out), word_tokenizer_type="mecab", subword_tokenizer_type="character",
                                mecab_kwargs={"mecab_dic": "unidic_lite"})
    assert len(tok) == 7027
    text = "東京でＡＩの本を読みました。"
    assert tok.tokenize(text) == list(unicodedata.normalize("NFKC", text))


def test_char_vocab_size_is_counted_and_the_head_checked(trained, alphabet_file, tmp_path, caplog):
    """The size comes from the alphabet file (+ specials + unused), not the request; the head must
    be exactly specials, [unusedN] and the alphabet in that order."""
    src = trained["vocabs"][0]
    alphabet = trained["alphabet"]
    out = tmp_path / "o.txt"
    caplog.set_level(logging.INFO)
    assert make_char_vocab.main(["--input", str(src), "--alphabet-file", str(alphabet_file), "--num-unused-tokens",
                                 "10", "--output", str(out), "--vocab-size", "7100"]) == 0
    assert len(read_vocab(out)) == 7027 and "vocab size: requested 7100, actual 7027" in caplog.text
    # one [unusedN] too many: the 16th entry is an alphabet character, not [unused10]
    with pytest.raises(InputError, match=r"vocab\.txt:16: entry 16 is .*, expected '\[unused10\]'"):
        make_char_vocab.char_vocab(src, alphabet, 11)
    # another alphabet (one character fewer at the front): the first alphabet entry differs
    with pytest.raises(InputError, match=r":16: entry 16 is .*\(alphabet character 1\)"):
        make_char_vocab.char_vocab(src, alphabet[1:], 10)
    short = tmp_path / "short.txt"
    short.write_text("".join(t + "\n" for t in read_vocab(src)[:100]), encoding="utf-8")
    with pytest.raises(InputError, match="has only 100 entries, fewer than the 7027"):
        make_char_vocab.char_vocab(short, alphabet, 10)
    shuffled = read_vocab(src)
    shuffled[20], shuffled[-1] = shuffled[-1], shuffled[20]
    bad = tmp_path / "bad.txt"
    bad.write_text("".join(t + "\n" for t in shuffled), encoding="utf-8")
    with pytest.raises(InputError, match=r"bad\.txt:21: entry 21"):
        make_char_vocab.char_vocab(bad, alphabet, 10)
    proc = run_module("scripts.tokenizers.char_vocab", "--input", bad, "--alphabet-file", alphabet_file,
                      "--num-unused-tokens", 10, "--output", tmp_path / "o2.txt", check=False)
    assert proc.returncode == 2 and "in that order" in proc.stderr
    assert not (tmp_path / "o2.txt").exists()


def test_wordpiece_size_request_vs_actual(corpus, alphabet_file, tmp_path):
    """A request below what the trainer always keeps is exceeded (logged, recorded); a request below
    specials + unused + alphabet is impossible and fails at once with a clear message."""
    out = tmp_path / "wp"
    proc = run_module("scripts.tokenizers.train_wordpiece", "--input", corpus, "--output-dir", out,
                      "--vocab-size", 7027, "--limit-alphabet", UNIDIC_LITE_ALPHABET_SIZE,
                      "--initial-alphabet-file", alphabet_file, "--threads", 1)
    import json

    stats = json.loads((out / "train.stats.json").read_text())
    n = len(read_vocab(out / "vocab.txt"))
    assert stats["vocab_size_requested"] == 7027 and stats["vocab_size"] == n > 7027
    assert stats["vocab_size_over_request"] == n - 7027
    assert f"vocab size: requested 7,027, actual {n:,}" in proc.stderr
    bad = run_module("scripts.tokenizers.train_wordpiece", "--input", corpus, "--output-dir", tmp_path / "bad",
                     "--vocab-size", 7026, "--limit-alphabet", UNIDIC_LITE_ALPHABET_SIZE,
                     "--initial-alphabet-file", alphabet_file, check=False)
    assert bad.returncode == 2 and "--vocab-size 7026 is impossible" in bad.stderr and "= 7027 entries" in bad.stderr
    assert not (tmp_path / "bad").exists()


def test_bad_alphabet_file(tmp_path, corpus):
    bad = tmp_path / "alphabet.txt"
    bad.write_text("あ\nいう\n", encoding="utf-8")
    with pytest.raises(InputError, match=r"alphabet\.txt:2: expected exactly one character"):
        train_tokenizer.read_alphabet(bad)
    counts = train_tokenizer.count_words(corpus)
    with pytest.raises(ValueError, match="smaller than the initial alphabet"):
        train_tokenizer.train_wordpiece(counts, ["あ", "い"], vocab_size=100, limit_alphabet=1)


def test_limit_alphabet_above_alphabet_keeps_frequent_corpus_chars(corpus):
    counts = train_tokenizer.count_words(corpus)
    stats: dict = {}
    with caplog_disabled():
        tokens = train_tokenizer.train_wordpiece(counts, ["あ", "い"], vocab_size=50, limit_alphabet=5,
                                                 stats=stats)
    assert tokens[:17] == SPECIALS + UNUSED + ["あ", "い"]
    extra = tokens[17:20]
    assert len(extra) == 3 and all(len(c) == 1 for c in extra) and extra == sorted(extra)
    assert stats["alphabet"] == 5


class caplog_disabled:
    def __enter__(self):
        logging.disable(logging.WARNING)

    def __exit__(self, *exc):
        logging.disable(logging.NOTSET)
