"""RoBERTa (rinna style) through the PyTorch engine: plain SentencePiece, token shards masked on
the fly, MLM only, RoBERTa's special-token and position conventions, conversion to a
transformers ``RobertaForMaskedLM`` directory that needs none of the rinna card's manual steps.

A tiny model (hidden 64, 2 layers) trained for 30 steps on CPU (~15 s)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import helpers_tf as h
from test_sentencepiece import sample_lines

ROBERTA_ARCH = {"hidden_size": 64, "num_layers": 2, "num_attention_heads": 2, "intermediate_size": 128,
                "max_position_embeddings": 66, "type_vocab_size": 1, "hidden_activation": "gelu",
                "dropout_rate": 0.1, "attention_dropout_rate": 0.1, "initializer_range": 0.02}
TORCH_CPU = {"precision": "fp32", "compile": False, "num_workers": 0, "trim_padding": True}
SEQ = 64


def corpus_text(path: Path) -> Path:
    lines = sample_lines() + sample_lines("web_docs.txt")
    path.write_text("".join(("\n" if i and i % 6 == 0 else "") + s + "\n" for i, s in enumerate(lines)), encoding="utf-8")
    return path


def family_spec(vocab_file: Path, family: dict, arch: dict, *, seq: int = SEQ, prob: float = 0.15, **stage) -> dict:
    from scripts.shared.formats import read_vocab
    from scripts.training.mlm_data import max_predictions

    P = max_predictions(seq, prob)
    spec = h.stage_spec(len(read_vocab(vocab_file)), arch=arch, data={"max_seq_length": seq, "max_predictions_per_seq": P},
                        **{"global_batch_size": 16, "train_steps": 30, "warmup_steps": 3, "checkpoint_interval": 10,
                           "steps_per_loop": 5, "summary_interval": 5, "validation_interval": 1000,
                           "validation_steps": 1, **stage})
    spec["torch"] = dict(TORCH_CPU)
    spec["family"] = {**family, "mask": {"masked_lm_prob": prob, "max_predictions": P, **family.get("mask", {})}}
    return spec


def token_shard(root: Path, text: Path, tok_dir: Path, *, raw: bool, seq: int = SEQ, vocab: Path | None = None) -> Path:
    out = root / f"token_shard_01.npy"
    args = ["--output-format", "token-shards", "--input", text, "--output", out, "--max-seq-length", seq,
            "--threads", 1, "--subword-tokenizer", "sentencepiece" if tok_dir else "wordpiece"]
    if raw:
        args += ["--vocab-file", tok_dir / "vocab.txt", "--tokenizer-json", tok_dir / "tokenizer.json", "--mecab-dic", "none"]
    elif tok_dir:
        args += ["--vocab-file", tok_dir / "vocab.txt", "--spm-file", tok_dir / "spiece.model", "--mecab-dic", "unidic_lite"]
    else:
        args += ["--vocab-file", vocab, "--mecab-dic", "unidic_lite"]
    h.run_module("scripts.pretraining_data.create", *args)
    return out


@pytest.fixture(scope="module")
def roberta(tmp_path_factory):
    from scripts.tokenizers.sentencepiece import train

    root = tmp_path_factory.mktemp("roberta")
    text = corpus_text(root / "corpus_01.txt")
    tok = root / "tok"
    train(text, tok, style="raw", vocab_size=2000, train_threads=1, mecab_dic=None)
    shard = token_shard(root, text, tok, raw=True)
    cfg = h.write_stage_config(root / "stage.yaml", family_spec(
        tok / "vocab.txt", {"name": "roberta", "mask": {"whole_word": False, "replace": "mask"}}, ROBERTA_ARCH))
    stage_dir = root / "model" / "stage"
    proc = h.run_module("scripts.training.torch_train", "--config", cfg, "--train-file", shard, "--train-stats",
                        str(shard) + ".stats.json", "--stage-dir", stage_dir, "--threads", "2", "--done",
                        stage_dir / "done.json", timeout=600)
    done = h.read_json(stage_dir / "done.json")
    hf = root / "hf"
    from scripts.hf_model.families import convert_family

    convert_family(config=str(cfg), checkpoint=done["checkpoint"], tokenizer_dir=str(tok), subword="sentencepiece",
                   mecab_dic=None, model_name="roberta-tiny", card={"license": "mit", "description": "test"},
                   provenance={"x": 1}, output_dir=str(hf))
    return {"root": root, "tok": tok, "shard": shard, "cfg": cfg, "done": done, "log": proc.stderr, "hf": hf,
            "stage_dir": stage_dir}


def test_roberta_trains_mlm_only_through_the_engine(roberta):
    done = roberta["done"]
    assert done["family"] == "roberta" and done["final_step"] == 30 and done["backend"] == "torch"
    losses = [float(x) for x in __import__("re").findall(r"\| loss ([0-9.]+) \(mlm", roberta["log"])]
    assert len(losses) >= 3 and losses[-1] < losses[0], losses
    assert "model: RobertaForMaskedLM" in roberta["log"]
    assert done["train_metrics"]["nsp_loss"] == 0.0
    from scripts.training.torch_checkpoint import load_checkpoint

    ck = load_checkpoint(done["checkpoint"])
    assert ck["family"]["name"] == "roberta" and ck["bert_config"]["model_type"] == "roberta"
    assert ck["bert_config"]["pad_token_id"] == 1 and ck["bert_config"]["max_position_embeddings"] == SEQ + 2


def test_rerun_with_the_same_inputs_is_done(roberta, tmp_path):
    proc = h.run_module("scripts.training.torch_train", "--config", roberta["cfg"], "--train-file", roberta["shard"],
                        "--train-stats", str(roberta["shard"]) + ".stats.json", "--stage-dir", roberta["stage_dir"],
                        "--threads", "2", "--done", tmp_path / "done.json")
    assert "already at train_steps" in proc.stderr
    assert h.read_json(tmp_path / "done.json")["run_key"] == roberta["done"]["run_key"]


def test_converted_roberta_loads_with_auto_classes_and_needs_no_manual_steps(roberta):
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    hf = str(roberta["hf"])
    tok = AutoTokenizer.from_pretrained(hf)
    model = AutoModelForMaskedLM.from_pretrained(hf).eval()
    assert type(model).__name__ == "RobertaForMaskedLM" and tok.is_fast
    assert model.config.pad_token_id == tok.pad_token_id == 1 and model.config.max_position_embeddings == SEQ + 2
    text = "姫路城は兵庫県の[MASK]にある。"
    preds = pipeline("fill-mask", model=model, tokenizer=tok)(text)
    # by hand, as the rinna card asks: [CLS] prepended, explicit positions (here RoBERTa's: from
    # padding_idx + 1, as the model was trained)
    ids = tok(text)["input_ids"]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id  # the tokenizer adds them
    pos = torch.arange(2, len(ids) + 2)[None]
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids]), position_ids=pos).logits[0, ids.index(tok.mask_token_id)]
    assert preds[0]["token"] == int(logits.argmax())
    assert not (roberta["hf"] / "README.md").exists()  # the card is the release stage's
    assert json.loads((roberta["hf"] / "provenance.json").read_text()) == {"x": 1}


def test_roberta_default_positions_start_after_the_padding_index(roberta):
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer

    hf = str(roberta["hf"])
    tok = AutoTokenizer.from_pretrained(hf)
    model = AutoModelForMaskedLM.from_pretrained(hf).eval()
    enc = tok(["東京は日本の首都です。", "短い。"], padding=True, return_tensors="pt")
    n = enc["input_ids"].shape[1]
    with torch.no_grad():
        default = model(**enc).logits
        from_two = model(**enc, position_ids=torch.arange(2, n + 2).expand(2, -1)).logits
        from_zero = model(**enc, position_ids=torch.arange(n).expand(2, -1)).logits
    m = enc["attention_mask"].bool()
    assert torch.allclose(default[m], from_two[m], atol=1e-5)
    assert not torch.allclose(default[m], from_zero[m], atol=1e-3)


def test_token_shards_of_another_length_are_rejected(roberta, tmp_path):
    from scripts.training.mlm import load_family
    from scripts.training.torch_config import read_stage
    from scripts.shared.common import InputError

    text = corpus_text(tmp_path / "c.txt")
    other = token_shard(tmp_path, text, roberta["tok"], raw=True, seq=32)
    fam = load_family(str(roberta["cfg"]), [str(other)])
    with pytest.raises(InputError, match="32 tokens"):
        fam.check_data(read_stage(str(roberta["cfg"])))
    assert np.load(other).shape[1] == 32
