"""Token shards (scripts/pretraining_data/token_shards.py) and their on-the-fly masking
(scripts/training/mlm_data.py): FULL-SENTENCES packing, the same ids as the TFRecord path,
byte-identical reruns for any thread count; masked fraction, 80/10/10, whole words never split,
always-[MASK], reproducibility from seed and position, consumers and resume."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
CLS, SEP, PAD, MASK, UNK = 2, 3, 0, 4, 1


def synthetic_corpus(rng, n_docs=40, max_sent=8, max_len=30, vocab=200, shift=15):
    from scripts.pretraining_data.create import Corpus

    lens, doc_first, toks = [], [0], []
    for _ in range(n_docs):
        k = int(rng.integers(1, max_sent + 1))
        for _ in range(k):
            n = int(rng.integers(1, max_len + 1))
            ids = rng.integers(5, vocab, n).astype(np.uint16)
            cont = rng.random(n) < 0.4
            cont[0] = False
            toks.append(ids | (cont.astype(np.uint16) << np.uint16(shift)))
            lens.append(n)
        doc_first.append(doc_first[-1] + k)
    sent_off = np.concatenate(([0], np.cumsum(lens))).astype(np.int64)
    return Corpus(np.concatenate(toks), sent_off, np.array(doc_first, np.int64), shift)


def test_full_sentences_packing():
    from scripts.pretraining_data.token_shards import pack

    rng = np.random.default_rng(0)
    corpus = synthetic_corpus(rng)
    L = 32
    rows, st = pack(corpus, L, CLS, SEP, PAD)
    ids = rows & 0x7FFF
    assert (ids[:, 0] == CLS).all()
    sent_of_token = np.repeat(np.arange(len(corpus.sent_off) - 1), np.diff(corpus.sent_off))
    doc_of_sent = np.repeat(np.arange(corpus.n_docs), np.diff(corpus.doc_sent))
    stream, seps = [], 0
    for r in rows:
        n = int(np.flatnonzero((r & 0x7FFF) != PAD).max()) + 1
        assert (r[n:] == PAD).all() and (r[n - 1] & 0x7FFF) == SEP and n >= 3
        body = r[1:n - 1]
        assert not ((body & 0x7FFF) == CLS).any()
        seps += int(((body & 0x7FFF) == SEP).sum())
        stream.extend(int(x) for x in body if (x & 0x7FFF) != SEP)
    # every token once, in order, bits kept; a [SEP] between documents inside a row
    assert stream == corpus.tokens.astype(int).tolist()
    assert seps == st["document_separators"] and st["sequences"] == len(rows)
    # sentences are whole unless longer than a row; a row holds whole sentences
    pos = 0
    for r in rows:
        n = int(np.flatnonzero((r & 0x7FFF) != PAD).max()) + 1
        k = int(((r[1:n - 1] & 0x7FFF) != SEP).sum())
        sents = sent_of_token[pos:pos + k]
        lens = np.diff(corpus.sent_off)
        for s in np.unique(sents):
            if lens[s] <= L - 2:
                assert (sent_of_token == s).sum() == (sents == s).sum(), "a fitting sentence was cut"
        # separators sit exactly where the document changes
        docs = doc_of_sent[sents]
        assert int(((r[1:n - 1] & 0x7FFF) == SEP).sum()) == int((np.diff(docs) != 0).sum())
        pos += k
    # a sentence longer than a row is cut into row-sized pieces
    long = synthetic_corpus(np.random.default_rng(1), n_docs=2, max_sent=1, max_len=100)
    r2, st2 = pack(long, 16, CLS, SEP, PAD)
    assert st2["split_sentences"] >= 1 and ((r2 & 0x7FFF) != PAD).sum() == long.tokens.size + 2 * len(r2) + \
        st2["document_separators"]


@pytest.fixture(scope="module")
def shard_dir(tmp_path_factory):
    from test_sentencepiece import sample_lines

    d = tmp_path_factory.mktemp("ts")
    lines = sample_lines("web_docs.txt")
    text = "".join(("" if i % 5 else "\n") + s + "\n" for i, s in enumerate(lines)).lstrip("\n")
    (d / "corpus_01.txt").write_text(text, encoding="utf-8")
    import helpers_tf as h

    h.write_vocab(d / "vocab.txt", h.TINY_VOCAB)
    return d


def make_shard(d: Path, name: str, threads: int, seq: int = 64) -> Path:
    out = d / f"{name}.npy"
    proc = subprocess.run([sys.executable, "-m", "scripts.pretraining_data.create", "--output-format", "token-shards",
                           "--input", str(d / "corpus_01.txt"), "--output", str(out), "--vocab-file", str(d / "vocab.txt"),
                           "--subword-tokenizer", "wordpiece", "--mecab-dic", "unidic_lite", "--max-seq-length", str(seq),
                           "--threads", str(threads), "--chunk-bytes", "4096"],
                          cwd=ROOT, text=True, capture_output=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


def test_shards_are_byte_identical_for_any_thread_count_and_use_the_tfrecord_tokenisation(shard_dir):
    from scripts.shared.formats import read_stats, read_token_shard
    from scripts.tokenizers.wordpiece import JapaneseTokenizer

    a, b = make_shard(shard_dir, "t1", 1), make_shard(shard_dir, "t2", 2)
    assert a.read_bytes() == b.read_bytes()
    rows, meta = read_token_shard(a)
    assert isinstance(rows, np.memmap) and meta["seq_length"] == 64 and meta["word_boundaries"]
    st = read_stats(str(a) + ".stats.json")
    import hashlib

    assert st["output_sha256"] == hashlib.sha256(a.read_bytes()).hexdigest() and st["output_bytes"] == a.stat().st_size
    tok = JapaneseTokenizer(shard_dir / "vocab.txt")
    lines = [s.strip() for s in (shard_dir / "corpus_01.txt").read_text(encoding="utf-8").splitlines() if s.strip()]
    want = [i for s in lines for i in tok.tokenize(s)]
    got = [int(x) & 0x7FFF for r in rows for x in r if int(x) & 0x7FFF not in (CLS, SEP, PAD)]
    assert got == want
    # the run key pairs the shard with its stats (no re-hash)
    from scripts.training.runs import data_digests

    assert data_digests([str(a)], [str(a) + ".stats.json"]) == [{"sha256": st["output_sha256"], "size": st["output_bytes"]}]


# ---------------------------------------------------------------------------------------------
# Masking
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shards(shard_dir):
    from scripts.training.mlm_data import ShardSet

    return ShardSet([str(make_shard(shard_dir, "m", 1, seq=128))])


def masked(shards, spec, seed=0, epoch=0, index=None):
    from scripts.training.mlm_data import Masker

    index = np.arange(shards.total) if index is None else np.asarray(index)
    return Masker(shards, spec, seed)(shards.gather(index), index, epoch)


def _groups(row, bit=15):
    """Word groups of a row (token positions), as the masker defines them."""
    ids, cont = row & ((1 << bit) - 1), row >> bit
    groups, prev_cand = [], False
    for j, (t, c) in enumerate(zip(ids, cont)):
        cand = t not in (CLS, SEP, PAD)
        if cand and c and prev_cand and groups:
            groups[-1].append(j)
        elif cand:
            groups.append([j])
        prev_cand = cand
    return groups


def test_masked_fraction_whole_words_and_80_10_10(shards):
    from scripts.training.mlm_data import MaskSpec, max_predictions

    P = max_predictions(128, 0.15)
    spec = MaskSpec(0.15, P, whole_word=True, replace="bert")
    rows = shards.gather(np.arange(shards.total)).astype(np.int64)
    reps = [masked(shards, spec, seed=s) for s in range(8)]
    total_m = total_c = 0
    kinds = np.zeros(3)
    for out, counts in reps:
        w = out["masked_lm_weights"] > 0
        for r in range(rows.shape[0]):
            groups = _groups(rows[r])
            ncand = sum(len(g) for g in groups)
            pos = set(out["masked_lm_positions"][r][w[r]].tolist())
            num = min(P, max(1, round(ncand * 0.15)))
            assert 1 <= len(pos) <= num
            for g in groups:  # a word is masked whole or not at all
                inside = [j in pos for j in g]
                assert all(inside) or not any(inside), (g, pos)
            orig = rows[r] & 0x7FFF
            assert all(orig[j] not in (CLS, SEP, PAD) for j in pos)
            np.testing.assert_array_equal(out["masked_lm_ids"][r][w[r]], orig[sorted(pos)])
            total_m += len(pos)
            total_c += ncand
        kinds += counts[:3]
    assert 0.13 < total_m / total_c < 0.155
    frac = kinds / kinds.sum()
    assert abs(frac[0] - 0.8) < 0.03 and abs(frac[1] - 0.1) < 0.02 and abs(frac[2] - 0.1) < 0.02, frac
    # the input carries the replacement: [MASK] where counted so, the original where kept
    out, counts = reps[0]
    ids = out["input_ids"]
    w = out["masked_lm_weights"] > 0
    at = np.take_along_axis(ids, out["masked_lm_positions"], 1)[w]
    assert (at == MASK).sum() == counts[0]


def test_whole_word_off_and_always_mask(shards):
    from scripts.training.mlm_data import MaskSpec

    out, counts = masked(shards, MaskSpec(0.15, 19, whole_word=False, replace="mask"))
    w = out["masked_lm_weights"] > 0
    at = np.take_along_axis(out["input_ids"], out["masked_lm_positions"], 1)[w]
    assert (at == MASK).all() and counts[1] == counts[2] == 0
    # token-level: every row gets exactly its target count
    rows = shards.gather(np.arange(shards.total)).astype(np.int64) & 0x7FFF
    ncand = ((rows != CLS) & (rows != SEP) & (rows != PAD)).sum(1)
    np.testing.assert_array_equal(w.sum(1), np.minimum(19, np.maximum(1, np.round(ncand * 0.15))))


def test_masks_are_reproducible_from_seed_epoch_and_row_alone(shards):
    from scripts.training.mlm_data import MaskSpec

    spec = MaskSpec(0.15, 19)
    a, _ = masked(shards, spec, seed=3, epoch=1)
    b, _ = masked(shards, spec, seed=3, epoch=1, index=np.arange(shards.total)[::-1])
    for k in a:
        np.testing.assert_array_equal(a[k], b[k][::-1])  # batch composition and order do not matter
    c, _ = masked(shards, spec, seed=3, epoch=2)
    d, _ = masked(shards, spec, seed=4, epoch=1)
    assert not np.array_equal(a["masked_lm_positions"], c["masked_lm_positions"])
    assert not np.array_equal(a["masked_lm_positions"], d["masked_lm_positions"])
    assert (a["attention_mask"].sum(1) >= 3).all() and (a["token_type_ids"] == 0).all()


def test_consumers_share_rows_and_resume_exactly(shards):
    from scripts.training.mlm_data import MaskSpec, Masker, MlmStream, masked_batches

    N, B = 3, 5
    seen = []
    for k in range(N):
        st = MlmStream(shards, k, N, seed=1)
        it = st.batches(B)
        idx = np.concatenate([next(it)[0] for _ in range(-(-len(st.owned()) // B))])[:len(st.owned())]
        seen.append(set(idx.tolist()))
    assert set().union(*seen) == set(range(shards.total)) and sum(map(len, seen)) == shards.total
    masker = Masker(shards, MaskSpec(0.15, 19), 1)
    full = masked_batches(shards, masker, MlmStream(shards, 0, N, seed=1), B)
    ref = [next(full) for _ in range(12)]  # crosses an epoch end
    assert ref[-1][1] >= 1
    _, ep, off = ref[6]
    resumed = masked_batches(shards, masker, MlmStream(shards, 0, N, seed=1, epoch=ep, offset=off), B)
    for want in ref[7:]:
        got = next(resumed)
        for k in want[0]:
            np.testing.assert_array_equal(got[0][k], want[0][k])
        assert got[1:] == want[1:]
