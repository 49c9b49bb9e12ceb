"""SentencePiece tokenizers (scripts/tokenizers/sentencepiece.py): MeCab + SentencePiece (LINE style)
and plain SentencePiece (rinna style). Byte-identical models on reruns and for any MeCab thread
count, the trainer-thread decision, the shipped tokenizers (BertJapaneseTokenizer with spm_file;
a fast tokenizer.json) against the data stages' ids, round trips and offsets, and the stats.

Trained on the bundled sample's text (~60 KB): well under a second per model.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SPECIALS_BERT = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
SPECIALS_ROBERTA = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]"]
PROBES = ["東京は日本の首都です。", "ｶﾀｶﾅと１２，３４５円、``引用''も。", "姫路城は[MASK]にある。",
          "[CLS]文の始め[SEP]", "  前後に  空白　 ", "①㈱ＡＢＣ abc", "𠮷𠮷野家で牛丼", "ΩΨЖ語", "a  b\tc"]


def sample_lines(name: str = "wiki_articles.txt") -> list[str]:
    out = []
    for line in (ROOT / "sample" / "source" / name).read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith(("#", "=", "@")):
            out.append(line)
    return out


def train_cli(out: Path, text: Path, *args) -> dict:
    proc = subprocess.run([sys.executable, "-m", "scripts.tokenizers.train_sentencepiece", "--input", str(text),
                           "--output-dir", str(out), *map(str, args)], cwd=ROOT, text=True, capture_output=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "train.stats.json").read_text())


@pytest.fixture(scope="module")
def text(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("sp") / "corpus_sampled.txt"
    p.write_text("".join(s + "\n" for s in sample_lines()), encoding="utf-8")
    return p


@pytest.fixture(scope="module")
def mecab_sp(tmp_path_factory, text) -> Path:
    out = tmp_path_factory.mktemp("mecab_sp")
    train_cli(out, text, "--style", "mecab", "--vocab-size", 3000, "--train-threads", 2, "--threads", 2)
    return out


@pytest.fixture(scope="module")
def raw_sp(tmp_path_factory, text) -> Path:
    out = tmp_path_factory.mktemp("raw_sp")
    train_cli(out, text, "--style", "raw", "--vocab-size", 3000, "--train-threads", 2)
    return out


def hf_dir(tmp: Path, tok_dir: Path, style: str) -> Path:
    """A model directory's tokenizer files, as scripts.hf_model writes them."""
    from scripts.hf_model.families import write_tokenizer_files

    d = tmp / f"hf-{style}"
    d.mkdir()
    write_tokenizer_files(d, kind="mecab_sentencepiece" if style == "mecab" else "sentencepiece",
                          tokenizer_dir=tok_dir, mecab_dic="unidic_lite", model_max_length=128)
    return d


# ---------------------------------------------------------------------------------------------
# Determinism
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("style", ["mecab", "raw"])
def test_models_are_byte_identical_on_reruns_and_for_any_worker_count(tmp_path, text, mecab_sp, raw_sp, style):
    ref = mecab_sp if style == "mecab" else raw_sp
    other = tmp_path / "again"
    train_cli(other, text, "--style", style, "--vocab-size", 3000, "--train-threads", 2,
              "--threads", 1 if style == "mecab" else 2)
    names = ["spiece.model", "vocab.txt"] + (["tokenizer.json"] if style == "raw" else [])
    for name in names:
        assert (other / name).read_bytes() == (ref / name).read_bytes(), name
    # the model names no file of the run (the temporary input, the output prefix)
    from scripts.tokenizers.sentencepiece import _model_pb2

    proto = _model_pb2().ModelProto()
    proto.ParseFromString((ref / "spiece.model").read_bytes())
    assert list(proto.trainer_spec.input) == [] and proto.trainer_spec.model_prefix == ""
    assert proto.trainer_spec.num_threads == 2  # the setting that shapes it is recorded


def test_trainer_threads_are_a_setting_because_unigram_depends_on_them(tmp_path, text):
    """Why train_threads is config, not the job's cores: the Unigram EM sums per thread."""
    from scripts.tokenizers.sentencepiece import train_model, trainer_options, write_word_tsv, count_words

    tsv = tmp_path / "words.tsv"
    write_word_tsv(count_words(text, "unidic_lite", 1), tsv)
    models = {n: train_model(tsv, "mecab", trainer_options("mecab", vocab_size=3000, train_threads=n))
              for n in (1, 2, 1)}
    again = train_model(tsv, "mecab", trainer_options("mecab", vocab_size=3000, train_threads=1))
    assert again == models[1]
    assert models[1] != models[2]


# ---------------------------------------------------------------------------------------------
# MeCab + SentencePiece (LINE style): BertJapaneseTokenizer with spm_file, no remote code
# ---------------------------------------------------------------------------------------------


def test_mecab_style_vocab_and_stats(mecab_sp):
    vocab = (mecab_sp / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab[:5] == SPECIALS_BERT
    assert not any("\u2581" in p for p in vocab)  # words are encoded one by one: no ▁ pieces
    st = json.loads((mecab_sp / "train.stats.json").read_text())
    assert st["vocab_size"] == len(vocab) and st["vocab_size_requested"] == 3000
    assert st["trainer_options"]["add_dummy_prefix"] is False and st["trainer_options"]["input_format"] == "tsv"
    assert 0 < st["unk_rate"] < 0.01 and 0.99 < st["character_coverage_measured"] <= 1
    assert 0.3 < st["tokens_per_character"] < 1.0
    assert not (mecab_sp / "tokenizer.json").exists()


def test_mecab_style_data_ids_equal_the_shipped_bert_japanese_tokenizer(tmp_path, mecab_sp):
    from transformers import AutoTokenizer

    from scripts.tokenizers.sentencepiece import MecabSentencePieceTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf_dir(tmp_path, mecab_sp, "mecab")))
    assert type(tok).__name__ == "BertJapaneseTokenizer" and tok.subword_tokenizer_type == "sentencepiece"
    assert (tok.pad_token_id, tok.unk_token_id, tok.cls_token_id, tok.sep_token_id, tok.mask_token_id) == (0, 1, 2, 3, 4)
    data = MecabSentencePieceTokenizer(mecab_sp / "spiece.model")
    lines = sample_lines("web_docs.txt") + PROBES
    ids, word_start, per_line = data.encode_lines(lines)
    off = 0
    for line, n in zip(lines, per_line):
        assert ids[off:off + n].tolist() == tok.convert_tokens_to_ids(tok.tokenize(line)), line
        off += n
    # word starts are MeCab's: the first piece of every word
    words = data.tagger.parse(unicodedata.normalize("NFKC", "東京は日本の首都です。")).split()
    ids1, ws1, _ = data.encode_lines(["東京は日本の首都です。"])
    assert int(ws1.sum()) == len(words) and ws1[0]
    enc = tok("東京は日本の首都です。", "二文目。")
    assert enc["input_ids"][0] == 2 and enc["input_ids"][-1] == 3 and max(enc["token_type_ids"]) == 1


def test_mecab_style_round_trip(tmp_path, mecab_sp):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf_dir(tmp_path, mecab_sp, "mecab")))
    for line in sample_lines()[:200]:
        ids = tok(line, add_special_tokens=False)["input_ids"]
        if tok.unk_token_id in ids:
            continue
        # MeCab drops whitespace; everything else comes back (NFKC-normalised)
        want = "".join(unicodedata.normalize("NFKC", line).split())
        assert tok.decode(ids).replace(" ", "") == want


# ---------------------------------------------------------------------------------------------
# Plain SentencePiece (rinna style): a fast tokenizer
# ---------------------------------------------------------------------------------------------


def test_raw_style_fast_tokenizer_equals_sentencepiece(raw_sp):
    import sentencepiece as spm
    from tokenizers import Tokenizer

    vocab = (raw_sp / "vocab.txt").read_text(encoding="utf-8").splitlines()
    assert vocab[:5] == SPECIALS_ROBERTA
    sp = spm.SentencePieceProcessor(model_file=str(raw_sp / "spiece.model"))
    fast = Tokenizer.from_file(str(raw_sp / "tokenizer.json"))
    lines = sample_lines() + sample_lines("web_docs.txt") + PROBES
    for line in lines:
        if any(t in line for t in ("[CLS]", "[SEP]", "[PAD]", "[UNK]")):
            continue  # sentencepiece reads control symbols as text; the shipped tokenizer (and the data) do not
        assert fast.encode(line, add_special_tokens=False).ids == sp.encode(line), line
    assert fast.encode("[CLS]文[SEP]", add_special_tokens=False).ids[::len(fast.encode("[CLS]文[SEP]",
                                                                          add_special_tokens=False).ids) - 1] == [0, 2]
    st = json.loads((raw_sp / "train.stats.json").read_text())
    assert st["fast_vs_sentencepiece_mismatched_lines"] == 0 and st["measured_lines"] > 100
    assert 0 <= st["unk_rate"] < 0.01 and 0.3 < st["tokens_per_character"] < 1.0


def test_raw_style_ships_as_a_fast_tokenizer_with_offsets_and_start_end_tokens(tmp_path, raw_sp):
    from transformers import AutoTokenizer

    from scripts.tokenizers.sentencepiece import RawSentencePieceTokenizer

    tok = AutoTokenizer.from_pretrained(str(hf_dir(tmp_path, raw_sp, "raw")))
    assert tok.is_fast
    assert (tok.cls_token_id, tok.pad_token_id, tok.sep_token_id, tok.unk_token_id, tok.mask_token_id) == (0, 1, 2, 3, 4)
    text = "姫路城は兵庫県にある。"
    enc = tok(text, return_offsets_mapping=True)
    assert enc["input_ids"][0] == 0 and enc["input_ids"][-1] == 2
    spans = [text[a:b] for a, b in enc["offset_mapping"][1:-1]]
    assert "".join(spans).startswith("姫路") and all(b >= a for a, b in enc["offset_mapping"])
    data = RawSentencePieceTokenizer(raw_sp / "tokenizer.json")
    ids, word_start, per_line = data.encode_lines([text])
    assert ids.tolist() == enc["input_ids"][1:-1] and word_start.all()
    # a typed [MASK] segments the text after it as inside a sentence (no new ▁ prefix)
    plain = tok(text, add_special_tokens=False)["input_ids"]
    masked = tok("姫路城は[MASK]にある。", add_special_tokens=False)["input_ids"]
    after = masked[masked.index(tok.mask_token_id) + 1:]
    assert after and plain[-len(after):] == after
    assert not tok.convert_ids_to_tokens(after)[0].startswith("\u2581")
    for line in sample_lines()[:100]:
        ids = tok(line, add_special_tokens=False)["input_ids"]
        if tok.unk_token_id not in ids:
            assert tok.decode(ids) == " ".join(unicodedata.normalize("NFKC", line).split())


def test_the_cli_rejects_a_bpe_fast_tokenizer(tmp_path, text):
    proc = subprocess.run([sys.executable, "-m", "scripts.tokenizers.train_sentencepiece", "--input", str(text),
                           "--output-dir", str(tmp_path), "--style", "raw", "--vocab-size", "100", "--model-type", "bpe"],
                          cwd=ROOT, text=True, capture_output=True, timeout=60)
    assert proc.returncode == 2 and "unigram" in proc.stderr


def test_copy_of_tokenizer_files_is_what_the_data_used(tmp_path, raw_sp):
    d = hf_dir(tmp_path, raw_sp, "raw")
    assert (d / "tokenizer.json").read_bytes() == (raw_sp / "tokenizer.json").read_bytes()
    shutil.rmtree(d)
