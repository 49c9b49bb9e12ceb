"""Tests of scripts.pretraining_data.create, scripts.shared.tfrecord and scripts.tokenizers.wordpiece.

Everything is made here: a generated multi-document Japanese corpus, a small WordPiece vocabulary
trained on it with ``tokenizers`` (and a character vocabulary derived from it). The TFRecords
are read back with TensorFlow; token ids are compared with transformers' BertJapaneseTokenizer.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import struct
import subprocess
import sys
import unicodedata
import zlib
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.pretraining_data.encoder import ExampleEncoder  # noqa: E402
from scripts.shared import tfrecord  # noqa: E402
from scripts.shared.common import InputError  # noqa: E402

SEQ, PRED = 128, 19
FEATURES = {
    "input_word_ids": ("int64", SEQ), "input_mask": ("int64", SEQ), "input_type_ids": ("int64", SEQ),
    "masked_lm_positions": ("int64", PRED), "masked_lm_ids": ("int64", PRED),
    "masked_lm_weights": ("float", PRED), "next_sentence_labels": ("int64", 1),
}
SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PAD, UNK, CLS, SEP, MASK = range(5)

# ---------------------------------------------------------------------------------------------
# Generated corpus and vocabularies
# ---------------------------------------------------------------------------------------------

SUBJECTS = ("私 彼 彼女 先生 学生 市長 研究者 会社員 子供たち 祖父 友達 選手 記者 店長 医師 "
            "東京大学 日本銀行 気象庁 図書館 新幹線 コンピュータ インターネット スマートフォン").split()
OBJECTS = ("本 手紙 写真 映画 音楽 料理 論文 資料 地図 新聞 計画 問題 結果 説明 報告書 自転車 "
           "コーヒー ラーメン プログラム データベース アルゴリズム ニュース サッカー 野球").split()
PLACES = "京都 大阪 札幌 福岡 沖縄 名古屋 横浜 神戸 仙台 広島 北海道 九州 駅前 公園 海外".split()
VERBS = ("読んだ 書いた 見た 作った 調べた 発表した 説明した 使っている 持っていた 買った "
         "届けた 送った 探している 覚えた 忘れた 集めた 確認した 紹介した").split()
TIMES = "昨日 今日 明日 先週 来月 去年 毎朝 夕方 週末 夜".split()
ADJ = "新しい 古い 大きな 小さな 面白い 難しい 有名な 便利な 美しい 重要な".split()
ODD = ["ＡＢＣ１２３の試験を行った。", "😀と한국어は辞書にない。", "ｶﾀｶﾅの半角も使われる。",
       "「" + "ア" * 120 + "」という長い語。", "x" * 130 + "は長すぎる英字列である。",
       "全角　スペースと\tタブを含む行。", "価格は１，２３４円（税込）だった。"]


def make_sentence(r: random.Random) -> str:
    s = ""
    if r.random() < 0.3:
        s += r.choice(TIMES) + "、"
    s += r.choice(SUBJECTS) + "は"
    if r.random() < 0.5:
        s += r.choice(PLACES) + "で"
    if r.random() < 0.4:
        s += r.choice(ADJ)
    s += r.choice(OBJECTS) + "を" + r.choice(VERBS)
    if r.random() < 0.3:
        s += "が、" + r.choice(SUBJECTS) + "は" + r.choice(OBJECTS) + "を" + r.choice(VERBS)
    if r.random() < 0.1:
        s += "（" + str(r.randint(1, 2020)) + "年）"
    return s + "。"


def make_corpus(n_docs: int = 320, seed: int = 0) -> list[list[str]]:
    r = random.Random(seed)
    docs = []
    for d in range(n_docs):
        sents = [make_sentence(r) for _ in range(r.randint(4, 24))]
        if d % 40 == 7:
            sents.insert(r.randint(0, len(sents)), ODD[(d // 40) % len(ODD)])
        docs.append(sents)
    return docs


def write_corpus(path: Path, docs: list[list[str]]) -> Path:
    # Extra blank lines and surrounding whitespace are tolerated like the reference (strip()).
    text = "\n\n\n".join("\n".join(f"  {s} " if i == 0 else s for i, s in enumerate(d)) for d in docs)
    path.write_text("\n" + text + "\n", encoding="utf-8")
    return path


def train_vocab(docs, path: Path, size: int = 480) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from scripts.shared.common import mecab_tagger

    tagger = mecab_tagger()
    lines = [tagger.parse(unicodedata.normalize("NFKC", s)) for d in docs for s in d]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    # A small alphabet limit leaves rare characters out of the vocabulary ([UNK] cases).
    trainer = trainers.WordPieceTrainer(vocab_size=size, special_tokens=SPECIALS + ["[unused0]"],
                                        limit_alphabet=220, continuing_subword_prefix="##")
    tok.train_from_iterator(lines, trainer)
    vocab = tok.get_vocab()
    path.write_text("".join(t + "\n" for t in sorted(vocab, key=vocab.get)), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    d = tmp_path_factory.mktemp("pd")
    docs = make_corpus()
    corpus = write_corpus(d / "corpus_01.txt", docs)
    wp = train_vocab(docs, d / "vocab_wp.txt")
    toks = wp.read_text(encoding="utf-8").splitlines()
    chars = SPECIALS + [t for t in toks[5:] if len(t) == 1][:-5]  # drop a few characters: [UNK]s
    cv = d / "vocab_char.txt"
    cv.write_text("".join(t + "\n" for t in chars), encoding="utf-8")
    return {"dir": d, "docs": docs, "corpus": corpus, "wp_vocab": wp, "char_vocab": cv}


def run_cli(d: Path, corpus: Path, vocab: Path, name: str, *, subword="wordpiece", seed=1, threads=1,
            extra=(), check=True) -> tuple[subprocess.CompletedProcess, Path, Path]:
    out = d / f"{name}.tfrecord.gz"
    stats = d / f"{name}.stats.json"
    cmd = [sys.executable, "-m", "scripts.pretraining_data.create", "--input", str(corpus), "--output", str(out),
           "--vocab-file", str(vocab), "--subword-tokenizer", subword, "--mecab-dic", "unidic_lite",
           "--max-seq-length", str(SEQ), "--max-predictions-per-seq", str(PRED), "--masked-lm-prob", "0.15",
           "--short-seq-prob", "0.1", "--dupe-factor", "5", "--seed", str(seed), "--threads", str(threads),
           "--stats", str(stats), *extra]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    if check and proc.returncode != 0:
        raise AssertionError(f"create_pretraining_data failed ({proc.returncode}):\n{proc.stderr[-4000:]}")
    return proc, out, stats


@pytest.fixture(scope="module")
def built(data):
    d = data["dir"]
    res = {}
    for name, kw in {
        "wp_t1": dict(vocab=data["wp_vocab"], threads=1),
        "wp_t2": dict(vocab=data["wp_vocab"], threads=2),
        "wp_seed2": dict(vocab=data["wp_vocab"], seed=2, threads=2),
        "char_t2": dict(vocab=data["char_vocab"], subword="character", threads=2),
        # many small tokenisation tasks (documents cross task boundaries): same bytes as wp_t1
        "wp_chunks_t2": dict(vocab=data["wp_vocab"], threads=2, extra=["--chunk-bytes", "4500"]),
        # many layout blocks (each with its own random stream): same bytes for 1 and 2 threads
        "wp_blocks_t1": dict(vocab=data["wp_vocab"], threads=1,
                             extra=["--layout-block-tokens", "4000", "--chunk-bytes", "9000"]),
        "wp_blocks_t2": dict(vocab=data["wp_vocab"], threads=2, extra=["--layout-block-tokens", "4000"]),
    }.items():
        vocab = kw.pop("vocab")
        proc, out, stats = run_cli(d, data["corpus"], vocab, name, **kw)
        res[name] = {"proc": proc, "out": out, "stats": json.loads(stats.read_text(encoding="utf-8"))}
    return res


def read_tf(path: Path) -> dict[str, np.ndarray]:
    """Parse every record with TensorFlow (FixedLenFeature specs, GZIP) into stacked arrays."""
    import tensorflow as tf

    spec = {k: tf.io.FixedLenFeature([n], tf.float32 if kind == "float" else tf.int64)
            for k, (kind, n) in FEATURES.items()}
    ds = tf.data.TFRecordDataset(str(path), compression_type="GZIP").map(
        lambda r: tf.io.parse_single_example(r, spec)).batch(4096)
    parts = [{k: v.numpy() for k, v in b.items()} for b in ds]
    return {k: np.concatenate([p[k] for p in parts]) for k in FEATURES}


@pytest.fixture(scope="module")
def parsed(built):
    return {name: read_tf(b["out"]) for name, b in built.items() if name in ("wp_t1", "char_t2")}


def hf_tokenizer(vocab: Path, subword: str):
    import transformers
    from transformers import BertJapaneseTokenizer

    transformers.logging.set_verbosity_error()
    return BertJapaneseTokenizer(str(vocab), word_tokenizer_type="mecab", mecab_kwargs={"mecab_dic": "unidic_lite"},
                                 subword_tokenizer_type=subword, do_lower_case=False)


def original_ids(ex: dict[str, np.ndarray]) -> np.ndarray:
    """input_word_ids with the masked positions put back to their labels."""
    ids = ex["input_word_ids"].copy()
    rows, cols = np.nonzero(ex["masked_lm_weights"] > 0)
    ids[rows, ex["masked_lm_positions"][rows, cols]] = ex["masked_lm_ids"][rows, cols]
    return ids


# ---------------------------------------------------------------------------------------------
# Format
# ---------------------------------------------------------------------------------------------


def test_tensorflow_parses_v2_features(built, parsed):
    ex = parsed["wp_t1"]
    n = built["wp_t1"]["stats"]["instances"]
    assert n > 2000
    for name, (kind, length) in FEATURES.items():
        assert ex[name].shape == (n, length)
        assert ex[name].dtype == (np.float32 if kind == "float" else np.int64)
    # Exactly these feature names, in every record (checked with the pure-Python decoder too).
    first = next(tfrecord.iter_records(built["wp_t1"]["out"]))
    assert set(tfrecord.decode_example(first)) == set(FEATURES)
    assert sum(1 for _ in tfrecord.iter_records(built["wp_t1"]["out"])) == n
    # A single gzip member with mtime 0 and no file name.
    head = built["wp_t1"]["out"].read_bytes()[:10]
    assert head[:4] == b"\x1f\x8b\x08\x00" and head[4:8] == b"\x00\x00\x00\x00"


def test_model_garden_pretrain_dataloader_reads_it(built):
    """The consumer: Model Garden's BERT pretraining data loader (v2 names, GZIP TFRecords)."""
    loader = pytest.importorskip("official.nlp.data.pretrain_dataloader")
    cfg = loader.BertPretrainDataConfig(input_path=str(built["wp_t1"]["out"]), seq_length=SEQ,
                                        max_predictions_per_seq=PRED, global_batch_size=8, is_training=False,
                                        use_v2_feature_names=True, file_type="tfrecord_compressed")
    batch = next(iter(loader.BertPretrainDataLoader(cfg).load()))
    assert set(batch) == set(FEATURES)
    assert tuple(batch["input_word_ids"].shape) == (8, SEQ) and tuple(batch["masked_lm_ids"].shape) == (8, PRED)


def test_cls_sep_segments_and_padding(parsed):
    for ex in parsed.values():
        ids = original_ids(ex)
        mask, types = ex["input_mask"], ex["input_type_ids"]
        ntok = mask.sum(axis=1)
        assert (ntok >= 5).all() and (ntok <= SEQ).all()
        j = np.arange(SEQ)
        assert (mask == (j < ntok[:, None])).all()  # 1s then 0s
        assert (ids[:, 0] == CLS).all()
        sep = ids == SEP
        assert (sep.sum(axis=1) == 2).all()
        first_sep = sep.argmax(axis=1)
        assert (ids[np.arange(len(ids)), ntok - 1] == SEP).all()
        assert (first_sep >= 2).all() and (first_sep <= ntok - 3).all()  # A and B non-empty
        assert (types == ((j > first_sep[:, None]) & (j < ntok[:, None]))).all()
        assert (ex["input_word_ids"][mask == 0] == 0).all()
        assert (ids[:, 1:][mask[:, 1:] == 1] != CLS).all()


def test_masked_lm_fields(parsed):
    for ex in parsed.values():
        w = ex["masked_lm_weights"]
        npred = (w > 0).sum(axis=1)
        assert set(np.unique(w)) <= {0.0, 1.0}
        assert (w == (np.arange(PRED) < npred[:, None])).all()  # 1.0s first, then 0.0 padding
        pos, lab = ex["masked_lm_positions"], ex["masked_lm_ids"]
        assert (pos[w == 0] == 0).all() and (lab[w == 0] == 0).all()
        ntok = ex["input_mask"].sum(axis=1)
        for r in range(len(w)):
            p = pos[r, :npred[r]]
            assert (np.diff(p) > 0).all()  # sorted, distinct
            assert (p >= 1).all() and (p < ntok[r] - 1).all()
        ids = original_ids(ex)
        assert not np.isin(lab[w > 0], [PAD, CLS, SEP]).any()
        rows, cols = np.nonzero(w > 0)
        assert (ids[rows, pos[rows, cols]] == lab[rows, cols]).all()


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------


def test_bytes_identical_across_threads_and_runs(data, built):
    a = built["wp_t1"]["out"].read_bytes()
    assert a == built["wp_t2"]["out"].read_bytes()
    assert a == built["wp_chunks_t2"]["out"].read_bytes()
    blocks = built["wp_blocks_t1"]["out"].read_bytes()
    assert blocks == built["wp_blocks_t2"]["out"].read_bytes() and blocks != a
    st = built["wp_blocks_t1"]["stats"]
    assert st["params"]["block_tokens"] == 4000 and abs(st["nsp_random_next_fraction_unforced"] - 0.5) < 0.03
    _, again, _ = run_cli(data["dir"], data["corpus"], data["wp_vocab"], "wp_again", threads=2)
    assert again.read_bytes() == a
    assert built["wp_seed2"]["out"].read_bytes() != a
    assert "built " in built["wp_t1"]["proc"].stderr and "peak RSS" in built["wp_t1"]["proc"].stderr


# ---------------------------------------------------------------------------------------------
# Distributions
# ---------------------------------------------------------------------------------------------


def test_distribution_statistics(built, parsed):
    st = built["wp_t1"]["stats"]
    ex = parsed["wp_t1"]
    n = st["instances"]
    nsp = ex["next_sentence_labels"][:, 0].mean()
    assert abs(st["nsp_random_next_fraction"] - nsp) < 1e-9
    # Random next: always for one-sentence chunks (as the reference), else with probability 1/2.
    forced = st["nsp_forced_random_fraction"]
    assert forced < 0.3
    assert abs(st["nsp_random_next_fraction_unforced"] - 0.5) < 0.03
    assert abs(nsp - (forced + 0.5 * (1 - forced))) < 0.03
    # Masked count per instance: min(max_pred, max(1, round(0.15 * len(tokens)))) (whole words
    # may leave a little room unfilled).
    ntok = ex["input_mask"].sum(axis=1)
    target = np.minimum(PRED, np.maximum(1, np.round(ntok * 0.15)))
    npred = (ex["masked_lm_weights"] > 0).sum(axis=1)
    assert (npred <= target).all()
    assert npred.sum() / target.sum() > 0.97
    frac = npred.sum() / (ntok - 3).sum()
    assert 0.13 < frac < 0.16, frac
    # 80 / 10 / 10 replacements.
    ids = ex["input_word_ids"]
    rows, cols = np.nonzero(ex["masked_lm_weights"] > 0)
    shown = ids[rows, ex["masked_lm_positions"][rows, cols]]
    label = ex["masked_lm_ids"][rows, cols]
    as_mask = np.mean(shown == MASK)
    kept = np.mean(shown == label)
    assert abs(as_mask - 0.8) < 0.02 and abs(kept - 0.1) < 0.02 and abs(1 - as_mask - kept - 0.1) < 0.02
    # Short target lengths for 10% of the document passes; more short instances than 10% (short
    # targets give more, smaller chunks), and dupe passes of equal size.
    assert abs(st["short_seq_fraction"] - 0.1) < 0.03, st["short_seq_fraction"]
    assert st["short_seq_instance_fraction"] > 0.05
    assert np.mean(ntok < 0.5 * SEQ) > 0.03
    per_dupe = np.array(st["instances_per_dupe"])
    assert len(per_dupe) == 5 and per_dupe.sum() == n
    assert (np.abs(per_dupe / per_dupe.mean() - 1) < 0.1).all()
    assert st["documents"] == 320 and st["unk_tokens"] > 0


def test_truncated_lengths_match_the_reference_loop():
    from scripts.pretraining_data.create import truncated_lengths

    rng = np.random.default_rng(0)
    la = rng.integers(1, 300, 3000)
    lb = rng.integers(1, 300, 3000)
    for m in (5, 61, 125, 509):
        a2, b2 = truncated_lengths(la, lb, m)
        for x, y, ex_a, ex_b in zip(la.tolist(), lb.tolist(), a2.tolist(), b2.tolist()):
            while x + y > m:
                if x > y:
                    x -= 1
                else:
                    y -= 1
            assert (x, y) == (ex_a, ex_b)


# ---------------------------------------------------------------------------------------------
# Tokenisation equals BertJapaneseTokenizer; whole-word masking
# ---------------------------------------------------------------------------------------------


def doc_streams(docs, hf) -> list[str]:
    """Each document's HF ids (line by line, stripped, empty lines dropped) as a string."""
    out = []
    for d in docs:
        ids = [i for s in d for i in hf.encode(s.strip(), add_special_tokens=False)]
        out.append("".join(chr(0x100 + i) for i in ids))
    return out


@pytest.mark.parametrize("name,subword", [("wp_t1", "wordpiece"), ("char_t2", "character")])
def test_ids_equal_bert_japanese_tokenizer(data, parsed, name, subword):
    vocab = data["wp_vocab"] if subword == "wordpiece" else data["char_vocab"]
    streams = doc_streams(data["docs"], hf_tokenizer(vocab, subword))
    joined = "\x00".join(streams)
    starts = np.cumsum([0] + [len(s) + 1 for s in streams])
    ex = parsed[name]
    ids = original_ids(ex)
    ntok = ex["input_mask"].sum(axis=1)
    for r in range(len(ids)):
        seps = np.flatnonzero(ids[r, :ntok[r]] == SEP)
        a = "".join(chr(0x100 + i) for i in ids[r, 1:seps[0]])
        b = "".join(chr(0x100 + i) for i in ids[r, seps[0] + 1:ntok[r] - 1])
        pa = joined.find(a)
        assert pa >= 0, f"instance {r}: segment A is not a token span of any document"
        pb = joined.find(b)
        assert pb >= 0, f"instance {r}: segment B is not a token span of any document"
        if ex["next_sentence_labels"][r, 0] == 0:  # actual next: B follows A in the same document
            found = False
            while pa >= 0 and not found:
                end_doc = starts[np.searchsorted(starts, pa, "right")] - 1
                found = joined.find(b, pa + len(a), end_doc) >= 0
                pa = joined.find(a, pa + 1)
            assert found, f"instance {r}: B does not follow A in one document"


def test_corpus_tokens_and_word_starts_match_hf(data):
    """The shard's token array equals HF ids; word starts are MeCab word boundaries."""
    from scripts.pretraining_data.create import read_corpus
    from scripts.tokenizers.wordpiece import JapaneseTokenizer

    for vocab, subword in ((data["wp_vocab"], "wordpiece"), (data["char_vocab"], "character")):
        hf = hf_tokenizer(vocab, subword)
        ids, starts = [], []
        for d in data["docs"]:
            for s in d:
                for word in hf.word_tokenizer.tokenize(s.strip()):
                    sub = hf.convert_tokens_to_ids(hf.subword_tokenizer.tokenize(word))
                    ids += sub
                    starts += [True] + [False] * (len(sub) - 1)
        corpus = read_corpus(data["corpus"], JapaneseTokenizer(vocab, subword), threads=1)
        got = corpus.tokens & corpus.id_mask
        assert got.tolist() == ids
        assert ((corpus.tokens >> corpus.shift) == 0).tolist() == starts
        assert corpus.n_docs == len(data["docs"])
        assert (np.diff(corpus.sent_off) > 0).all()


@pytest.mark.parametrize("subword,general_groups", [("wordpiece", False), ("character", False),
                                                    ("wordpiece", True)])
def test_whole_word_masking_never_splits_a_mecab_word(data, subword, general_groups):
    """Masks from the production code path, checked against HF/MeCab word boundaries.

    ``general_groups``: the group-size path used when the text has literal [CLS]/[SEP] tokens.
    """
    import scripts.pretraining_data.create as cpd
    from scripts.tokenizers.wordpiece import JapaneseTokenizer

    vocab = data["wp_vocab"] if subword == "wordpiece" else data["char_vocab"]
    hf = hf_tokenizer(vocab, subword)
    word_of_token = []
    w = 0
    for d in data["docs"]:
        for s in d:
            for word in hf.word_tokenizer.tokenize(s.strip()):
                k = len(hf.subword_tokenizer.tokenize(word))
                word_of_token += [w] * k
                w += 1
    word_of_token = np.array(word_of_token)
    tok = JapaneseTokenizer(vocab, subword)
    params = cpd.Params(SEQ, PRED, 0.15, 0.1, 2, 7)
    corpus = cpd.read_corpus(data["corpus"], tok, 1)
    cpd._STATE.clear()
    cpd._STATE.update(params=params, corpus=corpus, vocab_size=tok.vocab_size,
                      vocab_ids=np.arange(tok.vocab_size), cls_id=CLS, sep_id=SEP, mask_id=MASK,
                      off_dtype=np.uint32, literal_specials=general_groups)
    try:
        blocks = cpd.layout_blocks(corpus)
        parts = [cpd._layout_task((dupe, b, int(blocks[b]), int(blocks[b + 1])))
                 for dupe in range(2) for b in range(len(blocks) - 1)]
        desc = {k: np.concatenate([p[k] for p in parts]) for k in ("a_tok", "la", "b_tok", "lb", "flags")}
        multi_token_words = split_checked = 0
        for s in range(0, len(desc["flags"]), 1000):
            dbg: dict = {}
            cpd.materialize(*(desc[k][s:s + 1000] for k in ("a_tok", "la", "b_tok", "lb", "flags")),
                            np.random.default_rng(s), debug=dbg)
            src, masked = dbg["src"], dbg["masked"]
            both = (src[:, :-1] >= 0) & (src[:, 1:] == src[:, :-1] + 1)  # adjacent in one segment
            same_word = np.zeros_like(both)
            same_word[both] = word_of_token[src[:, :-1][both]] == word_of_token[src[:, 1:][both]]
            assert (masked[:, :-1][same_word] == masked[:, 1:][same_word]).all(), "a word was split"
            multi_token_words += int(same_word.sum())
            split_checked += int((same_word & masked[:, :-1]).sum())
            # Masked positions hold exactly the masked_lm labels of the instance.
            arr = dbg["arrays"]
            assert (masked.sum(axis=1) == (arr["masked_lm_weights"] > 0).sum(axis=1)).all()
        assert multi_token_words > 1000 and split_checked > 100  # the check had words to bite on
    finally:
        cpd._STATE.clear()


def test_literal_special_tokens_in_text(data, tmp_path):
    """Text that contains "[SEP]" / "[CLS]" / "[MASK]" tokenises as HF does; they are never masked."""
    r = random.Random(5)
    docs = [[make_sentence(r) for _ in range(6)] for _ in range(40)]
    for k, d in enumerate(docs[::3]):
        d[k % 6] = d[k % 6][:-1] + ["[SEP]", " [CLS]x", "[MASK]です"][k % 3] + "。"
    corpus = write_corpus(tmp_path / "lit.txt", docs)
    _, out, stats = run_cli(tmp_path, corpus, data["wp_vocab"], "lit")
    st = json.loads(stats.read_text(encoding="utf-8"))
    ex = read_tf(out)
    streams = doc_streams(docs, hf_tokenizer(data["wp_vocab"], "wordpiece"))
    joined = "\x00".join(streams)
    ids = original_ids(ex)
    w = ex["masked_lm_weights"] > 0
    assert not np.isin(ex["masked_lm_ids"][w], [CLS, SEP]).any()
    literal = 0
    for r_, (row, types, mask) in enumerate(zip(ids, ex["input_type_ids"], ex["input_mask"])):
        ntok = int(mask.sum())
        b0 = int(np.argmax(types))  # first position of segment B
        a = row[1:b0 - 1]
        b = row[b0:ntok - 1]
        literal += int(np.isin(a, [CLS, SEP]).sum() + np.isin(b, [CLS, SEP]).sum())
        assert "".join(chr(0x100 + i) for i in a) in joined and "".join(chr(0x100 + i) for i in b) in joined
    assert literal > 0 and st["instances"] == len(ids)


def test_tokenizer_equals_hf_on_edge_cases(data):
    from scripts.tokenizers.wordpiece import JapaneseTokenizer

    texts = [s for d in data["docs"][:30] for s in d] + ODD + [
        "梅雨 [SEP] 梅雨（つゆ）は[MASK]です", "abc[CLS]def", "[UNK]", " [SEP]x ", "［SEP］と[sep]",
        "ｱｲｳｴｵ㍿①Ⅻ", "a\u2028b c\x1cd", "ｘ" * 99, "テ" * 101, "\u3000", "カ\u3099と か\u3099",
    ]
    for vocab, subword in ((data["wp_vocab"], "wordpiece"), (data["char_vocab"], "character")):
        hf = hf_tokenizer(vocab, subword)
        ours = JapaneseTokenizer(vocab, subword)
        expect = [hf.encode(t, add_special_tokens=False) for t in texts]
        assert [ours.tokenize(t) for t in texts] == expect
        ids, starts, per_line = ours.encode_lines(texts)
        assert ids.tolist() == [i for e in expect for i in e]
        assert per_line.tolist() == [len(e) for e in expect]
        assert UNK in ids.tolist()


# ---------------------------------------------------------------------------------------------
# Bad input
# ---------------------------------------------------------------------------------------------


def test_no_documents_is_an_input_error(data, tmp_path):
    from scripts.pretraining_data.create import Params, create_pretraining_data

    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n\n", encoding="utf-8")
    out = tmp_path / "o.tfrecord.gz"
    with pytest.raises(InputError, match="no documents"):
        create_pretraining_data(empty, out, data["wp_vocab"], params=Params(dupe_factor=1))
    assert not out.exists() and not list(tmp_path.glob(".o.tfrecord.gz*"))
    proc, out2, stats = run_cli(tmp_path, empty, data["wp_vocab"], "cli_empty", check=False)
    assert proc.returncode == 2 and "no documents" in proc.stderr
    assert not out2.exists() and not stats.exists()


def test_invalid_utf8_names_file_and_line(data, tmp_path):
    head = "東京は日本の首都である。\n大阪もある。\n\n".encode() * 40  # 120 lines
    bad = tmp_path / "bad.txt"
    bad.write_bytes(head + b"ok \xff\xfe broken\n" + "京都。\n".encode())
    # one task, and tasks of ~64 bytes (the bad line is in a late one: line numbers add up)
    for threads, chunk in ((1, 1 << 20), (2, 1 << 20), (1, 64), (2, 64)):
        proc, out, _ = run_cli(tmp_path, bad, data["wp_vocab"], f"bad{threads}_{chunk}", threads=threads,
                               check=False, extra=["--chunk-bytes", str(chunk)])
        assert proc.returncode == 2, proc.stderr
        assert f"{bad}:121: invalid UTF-8 at byte 3" in proc.stderr, proc.stderr[-2000:]
        assert not out.exists()


def test_compressed_input_and_nul_bytes_give_the_same_records(data, built, tmp_path):
    """A .gz shard (decompressed into blocks by the main process, small blocks here) and the
    plain one give the same records; NUL bytes are removed (and counted)."""
    text = Path(data["corpus"]).read_bytes()
    gz = tmp_path / "corpus.txt.gz"
    gz.write_bytes(gzip.compress(text, mtime=0))
    proc, out, stats = run_cli(tmp_path, gz, data["wp_vocab"], "gz_t2", threads=2,
                               extra=["--chunk-bytes", "5000"])
    assert out.read_bytes() == built["wp_t1"]["out"].read_bytes()
    nul = tmp_path / "nul.txt"
    cut = text.index(b"\n", len(text) // 2)
    nul.write_bytes(text[:cut] + b"\0\0" + text[cut:])
    proc, out, stats = run_cli(tmp_path, nul, data["wp_vocab"], "nul_t2", threads=2)
    assert out.read_bytes() == built["wp_t1"]["out"].read_bytes()
    assert "removed 2 NUL bytes" in proc.stderr


def test_single_short_document_and_character_vocab(data, tmp_path):
    one = tmp_path / "one.txt"
    one.write_text("東京は日本の首都である。\n", encoding="utf-8")
    proc, out, stats = run_cli(tmp_path, one, data["char_vocab"], "one", subword="character")
    st = json.loads(stats.read_text(encoding="utf-8"))
    assert st["documents"] == 1 and st["instances"] == 5  # one per dupe pass
    # the digest training's run key takes instead of re-reading the records (scripts/training/runs.py)
    import hashlib

    assert st["output_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert st["output_bytes"] == out.stat().st_size
    ex = read_tf(out)
    assert (ex["next_sentence_labels"] == 1).all()  # a one-sentence chunk always takes a random B


def test_text_of_special_tokens_only(data, tmp_path):
    """No maskable token in some instances: they get no predictions (weights all 0)."""
    odd = tmp_path / "odd.txt"
    odd.write_text("[SEP]\n[CLS]\n\n[SEP][CLS]\n[MASK]\n", encoding="utf-8")
    _, out, stats = run_cli(tmp_path, odd, data["wp_vocab"], "odd")
    ex = read_tf(out)
    npred = (ex["masked_lm_weights"] > 0).sum(axis=1)
    assert len(npred) >= 10 and (npred <= 1).all() and (npred == 0).any()


def test_missing_specials_in_vocab(data, tmp_path):
    v = tmp_path / "v.txt"
    v.write_text("[PAD]\n[UNK]\nあ\n", encoding="utf-8")
    proc, out, _ = run_cli(tmp_path, data["corpus"], v, "novocab", check=False)
    assert proc.returncode == 2 and "lacks special tokens" in proc.stderr and not out.exists()


# ---------------------------------------------------------------------------------------------
# tfrecord module
# ---------------------------------------------------------------------------------------------


def test_crc32_combine_and_gzip_pieces(tmp_path):
    rng = np.random.default_rng(0)
    a, b = rng.bytes(1000), rng.bytes(12345)
    assert tfrecord.crc32_combine(zlib.crc32(a), zlib.crc32(b), len(b)) == zlib.crc32(a + b)
    assert tfrecord.crc32_combine(zlib.crc32(a), zlib.crc32(b""), 0) == zlib.crc32(a)
    path = tmp_path / "x.gz"
    pieces = [rng.bytes(5000) + b"abc" * 3000 for _ in range(4)]
    with open(path, "wb") as fh:
        w = tfrecord.GzipPieceWriter(fh)
        for p in pieces:
            w.write_piece(tfrecord.deflate_piece(p, 1, "zlib"))
        w.close()
    assert gzip.decompress(path.read_bytes()) == b"".join(pieces)
    assert tfrecord.masked_crc32c(b"") == tfrecord.mask_crc(0) == 0xA282EAD8


def test_batch_encoder_equals_reference_serialisation(tmp_path):
    import tensorflow as tf

    rng = np.random.default_rng(1)
    for seq, pred, vocab in ((128, 19, 32768), (512, 76, 250_000), (8, 2, 50)):
        enc = ExampleEncoder([
            ("input_word_ids", "int64", seq, vocab - 1), ("input_mask", "int64", seq, 1),
            ("masked_lm_positions", "int64", pred, seq - 1), ("masked_lm_weights", "float", pred, 0),
            ("next_sentence_labels", "int64", 1, 1)])
        for n in (50, 7):  # a second, smaller batch reuses the encoder's buffers
            arrays = {"input_word_ids": rng.integers(0, vocab, (n, seq)), "input_mask": rng.integers(0, 2, (n, seq)),
                      "masked_lm_positions": rng.integers(0, seq, (n, pred)),
                      "masked_lm_weights": rng.random((n, pred)).astype(np.float32),
                      "next_sentence_labels": rng.integers(0, 2, (n, 1))}
            out, count = enc.encode(arrays)
            assert count == n
            recs = []
            for i in range(n):
                feats = {k: tf.train.Feature(float_list=tf.train.FloatList(value=v[i].tolist()))
                         if v.dtype == np.float32 else tf.train.Feature(int64_list=tf.train.Int64List(value=v[i].tolist()))
                         for k, v in arrays.items()}
                ex = tf.train.Example(features=tf.train.Features(feature=feats))
                parsed = tfrecord.decode_example(ex.SerializeToString())
                assert all(np.array_equal(parsed[k], v[i]) for k, v in arrays.items())
                recs.append(tfrecord.frame_record(tfrecord.encode_example({k: v[i] for k, v in arrays.items()})))
            assert out.tobytes() == b"".join(recs)
        # TensorFlow's own reader accepts the framing and parses our bytes to the same values.
        path = tmp_path / f"enc_{seq}.tfrecord"
        path.write_bytes(out.tobytes())
        got = [tf.train.Example.FromString(r.numpy()) for r in tf.data.TFRecordDataset(str(path))]
        assert list(got[3].features.feature["input_word_ids"].int64_list.value) == arrays["input_word_ids"][3].tolist()
        header = out[:8].tobytes()
        assert struct.unpack("<I", out[8:12].tobytes())[0] == tfrecord.masked_crc32c(header)


def test_isal_pieces_decompress_like_zlib(tmp_path):
    pytest.importorskip("isal")
    rng = np.random.default_rng(2)
    pieces = [rng.bytes(3000) + b"xyz" * 5000 for _ in range(3)]
    path = tmp_path / "i.gz"
    with open(path, "wb") as fh:
        w = tfrecord.GzipPieceWriter(fh)
        for p in pieces:
            w.write_piece(tfrecord.deflate_piece(p, 1, "isal"))
        w.close()
    assert gzip.decompress(path.read_bytes()) == b"".join(pieces)
    assert tfrecord.resolve_compressor("auto") == "isal"


def _exit_on_three(x):
    if x == 3:
        os._exit(1)  # a worker killed (e.g. for memory)
    return x


def test_a_dead_worker_fails_instead_of_hanging():
    from concurrent.futures.process import BrokenProcessPool

    from scripts.shared.common import imap_ordered, process_pool

    with pytest.raises(BrokenProcessPool):
        with process_pool(2) as pool:
            list(imap_ordered(pool, _exit_on_three, range(8)))
    with process_pool(2) as pool:  # order is kept
        assert list(imap_ordered(pool, abs, range(-20, 0))) == list(range(20, 0, -1))


# ---------------------------------------------------------------------------------------------
# Compiled kernels
# ---------------------------------------------------------------------------------------------


def test_kernel_crc32c_equals_google_crc32c():
    from scripts.pretraining_data import kernels

    rng = np.random.default_rng(4)
    buf = np.frombuffer(rng.bytes(5000), np.uint8)
    for s, e in ((0, 0), (0, 1), (3, 11), (7, 4096), (1, 5000)):
        got = int(kernels.masked_crc32c(buf, s, e, kernels.CRC32C_TABLES))
        assert got == tfrecord.masked_crc32c(buf[s:e].tobytes()), (s, e)


@pytest.mark.parametrize("needed", [0, 1, 255, 256, 257, 1000, 5000])
def test_retry_pool_draws_like_a_lazily_refilled_pool(needed):
    """The layout kernel gets a pre-drawn pool of uniforms (longer ones when it runs out); what it
    sees and where the generator is left must equal the reference's refills of 256 on demand."""
    import scripts.pretraining_data.create as cpd

    lazy = cpd._rng(9, 1, 0, 0)
    seen_lazy = []
    pool: list[float] = []
    for _ in range(needed):
        if not pool:
            pool = lazy.random(256).tolist()[::-1]
        seen_lazy.append(pool.pop())
    tried = []

    def run(p):
        tried.append(p.size)
        return (p[:needed].tolist() if p.size >= needed else None), (needed if p.size >= needed else -1)

    rng = cpd._rng(9, 1, 0, 0)
    seen = cpd._layout_pool_draws(rng, run)
    assert seen == seen_lazy
    assert rng.random() == lazy.random()  # the generator is left where the lazy pool leaves it
    assert tried[-1] >= needed and all(t < needed for t in tried[:-1])
