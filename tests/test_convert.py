"""scripts.hf_model.convert / scripts.hf_model.bert_mapping: Model Garden checkpoint -> transformers BERT.

The TF pretrainer and ``transformers.BertForPreTraining.from_pretrained(out)`` must give the same
MLM and NSP logits (max abs difference < 1e-4) on inputs with padding and both token types.
Two checkpoints: one from a real ``scripts.training.model_garden`` run (trainer layout, optimizer state) and one
with every weight set to distinct random values (so that a transposed or swapped tensor, or the
exact-vs-tanh GELU choice, shows up clearly).
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest

import helpers_tf as h
from scripts.hf_model.bert_mapping import MappingError, expected_shapes, map_variables

VOCAB = h.TINY_VOCAB
# The shape rules/common.smk (hf_card) passes.
CARD = {"model": "bert-tiny-test", "license": "apache-2.0", "description": "Tiny test BERT.",
        "architecture": {"name": "bert_tiny", **h.TINY_ARCH}, "seed": 0,
        "stages": [{**h.TINY_STAGE, "corpus": "cc-100", "train_steps": 12,
                    "pretraining_data": {"max_seq_length": 64, "max_predictions_per_seq": 10}}],
        "tokenizer": {"name": "test_wordpiece", "type": "wordpiece", "vocab_size": VOCAB, "mecab_dic": "unidic_lite"}}
PROVENANCE = {"code": {"commit": "abc", "dirty": False}, "raw_inputs": [{"path": "x", "sha256": "0"}]}


def convert_cli(cfg, ckpt, vocab, out, *extra, check=True):
    return h.run_module("scripts.hf_model.convert", "--config", cfg, "--checkpoint", ckpt, "--vocab-file", vocab,
                        "--subword-tokenizer", "wordpiece", "--mecab-dic", "unidic_lite",
                        "--model-name", "bert-tiny-test", "--card-json", json.dumps(CARD),
                        "--provenance-json", json.dumps(PROVENANCE), "--output-dir", out, *extra, check=check)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """The shared tiny stage-1 run (vocabulary, config, model dir)."""
    return h.tiny_stage1(tmp_path_factory)


@pytest.fixture(scope="module")
def trained(work):
    """The conversion of the trained stage-1 checkpoint, through the CLI."""
    out = work["root"] / "hf_model" / "bert-tiny-test"
    proc = convert_cli(work["cfg"], work["model_dir"], work["vocab"], out)
    return {"model_dir": work["model_dir"], "out": out, "proc": proc}


@pytest.fixture(scope="module")
def randomized(work, tmp_path_factory):
    """A checkpoint in the trainer's layout whose every weight is a distinct random value,
    converted in-process."""
    import tensorflow as tf

    from scripts.hf_model.convert import build_pretrainer, convert
    from scripts.training.model_garden import load_params

    root = tmp_path_factory.mktemp("random")
    params = load_params(str(work["cfg"]))
    model = build_pretrainer(params)
    rng = np.random.default_rng(123)
    for v in model.variables:
        name = v.name
        if "gamma" in name:
            val = 1.0 + 0.2 * rng.standard_normal(v.shape)
        elif "beta" in name or "bias" in name:
            val = 0.1 * rng.standard_normal(v.shape)
        else:
            val = 0.08 * rng.standard_normal(v.shape)
        v.assign(val.astype(np.float32))
    ckpt_dir = root / "random_ckpt"
    ckpt = tf.train.Checkpoint(global_step=tf.Variable(7, dtype=tf.int64), model=model, **model.checkpoint_items)
    tf.train.CheckpointManager(ckpt, str(ckpt_dir), max_to_keep=1).save(checkpoint_number=7)
    out = root / "hf_model" / "random"
    convert(config=str(work["cfg"]), checkpoint=str(ckpt_dir), vocab_file=str(work["vocab"]), subword="wordpiece",
            mecab_dic="unidic_lite", model_name="random", card=CARD, provenance=PROVENANCE, output_dir=str(out))
    return {"ckpt": str(ckpt_dir / "ckpt-7"), "out": out, "params": params}


def batch(seq: int = 24):
    """3 sequences: full length, padded after 15, padded after 6; segments A and B."""
    rng = np.random.default_rng(5)
    ids = rng.integers(5, VOCAB, (3, seq))
    ids[:, 0] = 2
    mask = np.ones((3, seq), np.int64)
    types = np.zeros((3, seq), np.int64)
    types[0, 12:] = 1
    mask[1, 15:], ids[1, 15:], types[1, 8:15] = 0, 0, 1
    mask[2, 6:], ids[2, 6:], types[2, 3:6] = 0, 0, 1
    return ids, mask, types


def max_logit_diffs(tf_model, hf_dir: Path, hidden_act: str | None = None) -> tuple[float, float]:
    import tensorflow as tf
    import torch
    from transformers import BertConfig, BertForPreTraining

    ids, mask, types = batch()
    pos = np.tile(np.arange(ids.shape[1]), (ids.shape[0], 1))  # MLM logits at every position
    out = tf_model({"input_word_ids": tf.constant(ids, tf.int32), "input_mask": tf.constant(mask, tf.int32),
                    "input_type_ids": tf.constant(types, tf.int32),
                    "masked_lm_positions": tf.constant(pos, tf.int32)}, training=False)
    kw = {}
    if hidden_act:
        cfg = BertConfig.from_pretrained(hf_dir)
        cfg.hidden_act = hidden_act
        kw["config"] = cfg
    hf = BertForPreTraining.from_pretrained(hf_dir, **kw).eval()
    with torch.no_grad():
        o = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types))
    mlm = float(np.abs(out["mlm_logits"].numpy() - o.prediction_logits.numpy()).max())
    nsp = float(np.abs(out["next_sentence"].numpy() - o.seq_relationship_logits.numpy()).max())
    return mlm, nsp


# ---------------------------------------------------------------------------------------------


def test_mapping_rules_cover_everything():
    shapes = expected_shapes(vocab_size=10, hidden_size=4, num_layers=1, intermediate_size=8,
                             max_position_embeddings=6, type_vocab_size=2)
    L = "transformer/layer_0/"
    tf_vars = {"word_embeddings/embeddings": np.zeros((10, 4)), "position_embedding/embeddings": np.zeros((6, 4)),
               "type_embeddings/embeddings": np.zeros((2, 4)), "embeddings/layer_norm/gamma": np.ones(4),
               "embeddings/layer_norm/beta": np.zeros(4),
               "pooler_transform/kernel": np.zeros((4, 4)), "pooler_transform/bias": np.zeros(4)}
    for n in ("query", "key", "value"):
        tf_vars[L + f"self_attention/{n}/kernel"] = np.arange(16.0).reshape(4, 2, 2)
        tf_vars[L + f"self_attention/{n}/bias"] = np.zeros((2, 2))
    tf_vars.update({L + "self_attention/attention_output/kernel": np.arange(16.0).reshape(2, 2, 4),
                    L + "self_attention/attention_output/bias": np.zeros(4),
                    L + "self_attention_layer_norm/gamma": np.ones(4),
                    L + "self_attention_layer_norm/beta": np.zeros(4),
                    L + "intermediate/kernel": np.zeros((4, 8)), L + "intermediate/bias": np.zeros(8),
                    L + "output/kernel": np.zeros((8, 4)), L + "output/bias": np.zeros(4),
                    L + "output_layer_norm/gamma": np.ones(4), L + "output_layer_norm/beta": np.zeros(4),
                    "bert/cls/predictions/transform/dense/kernel": np.zeros((4, 4)),
                    "bert/cls/predictions/transform/dense/bias": np.zeros(4),
                    "bert/cls/predictions/transform/LayerNorm/gamma": np.ones(4),
                    "bert/cls/predictions/transform/LayerNorm/beta": np.zeros(4),
                    "bert/cls/predictions/output_bias/bias": np.zeros(10),
                    "bert/next_sentence/pooler_dense/kernel": np.zeros((4, 4)),
                    "bert/next_sentence/pooler_dense/bias": np.zeros(4),
                    "bert/next_sentence/logits/kernel": np.zeros((4, 2)),
                    "bert/next_sentence/logits/bias": np.zeros(2)})
    hf, dropped = map_variables(tf_vars, shapes)
    assert set(hf) == set(shapes) and set(dropped) == {"pooler_transform/kernel", "pooler_transform/bias"}
    # Attention output: EinsumDense [heads, head_size, H] -> Linear [H, heads*head_size].
    w = hf["bert.encoder.layer.0.attention.output.dense.weight"]
    assert w[3, 1] == tf_vars[L + "self_attention/attention_output/kernel"][0, 1, 3]
    q = hf["bert.encoder.layer.0.attention.self.query.weight"]
    assert q[1 * 2 + 0, 3] == tf_vars[L + "self_attention/query/kernel"][3, 1, 0]

    with pytest.raises(MappingError, match="no transformers counterpart: bert/extra/w"):
        map_variables({**tf_vars, "bert/extra/w": np.zeros(3)}, shapes)
    partial = dict(tf_vars)
    del partial["bert/next_sentence/logits/bias"]
    with pytest.raises(MappingError, match="cls.seq_relationship.bias"):
        map_variables(partial, shapes)
    with pytest.raises(MappingError, match="shape mismatch"):
        map_variables({**tf_vars, "type_embeddings/embeddings": np.zeros((3, 4))}, shapes)


def test_converted_directory(trained, work):
    out = trained["out"]
    # the build directory: no model card (the release stage writes it, after the evaluation)
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json", "model.safetensors", "provenance.json", "special_tokens_map.json",
        "tokenizer_config.json", "vocab.txt"]
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # temp dir renamed away
    cfg = h.read_json(out / "config.json")
    assert cfg["architectures"] == ["BertForPreTraining"] and cfg["model_type"] == "bert"
    assert (cfg["vocab_size"], cfg["hidden_size"], cfg["num_hidden_layers"], cfg["num_attention_heads"],
            cfg["intermediate_size"], cfg["max_position_embeddings"], cfg["type_vocab_size"]) == (
        VOCAB, 64, 2, 2, 256, 128, 2)
    assert cfg["hidden_act"] == "gelu_new" and cfg["layer_norm_eps"] == 1e-12 and cfg["pad_token_id"] == 0
    tok = h.read_json(out / "tokenizer_config.json")
    assert tok["tokenizer_class"] == "BertJapaneseTokenizer" and tok["do_lower_case"] is False
    assert tok["word_tokenizer_type"] == "mecab" and tok["subword_tokenizer_type"] == "wordpiece"
    assert tok["mecab_kwargs"] == {"mecab_dic": "unidic_lite"} and tok["model_max_length"] == 128
    assert (out / "vocab.txt").read_bytes() == work["vocab"].read_bytes()
    assert h.read_json(out / "provenance.json") == PROVENANCE
    assert "not converted: pooler_transform/kernel" in trained["proc"].stderr
    m = re.search(rf"built {re.escape(str(out))}: (\d+) parameters$", trained["proc"].stderr.strip())
    assert m, trained["proc"].stderr[-2000:]
    n = int(m.group(1))
    from transformers import BertForPreTraining

    assert n == sum(p.numel() for p in BertForPreTraining.from_pretrained(out).parameters())


def test_logits_match_trained_checkpoint(trained, work):
    from scripts.hf_model.convert import load_pretrainer
    from scripts.training.model_garden import load_params

    model = load_pretrainer(load_params(str(work["cfg"])), str(trained["model_dir"] / "ckpt-20"))
    mlm, nsp = max_logit_diffs(model, trained["out"])
    print(f"trained checkpoint: max |MLM diff| {mlm:.3g}, max |NSP diff| {nsp:.3g}")
    assert mlm < 1e-4 and nsp < 1e-4


def test_logits_match_random_weights(randomized):
    from scripts.hf_model.convert import load_pretrainer

    model = load_pretrainer(randomized["params"], randomized["ckpt"])
    mlm, nsp = max_logit_diffs(model, randomized["out"])
    print(f"random weights: max |MLM diff| {mlm:.3g}, max |NSP diff| {nsp:.3g}")
    assert mlm < 1e-4 and nsp < 1e-4
    # The activation matters: transformers' exact-erf "gelu" would not reproduce the model.
    mlm_exact, _ = max_logit_diffs(model, randomized["out"], hidden_act="gelu")
    assert mlm_exact > 1e-4  # (measured: ~8e-4 vs ~2e-6 for gelu_new)


def test_loads_with_auto_classes_and_fill_mask(trained):
    from transformers import AutoModelForMaskedLM, AutoTokenizer, BertJapaneseTokenizer, pipeline

    tok = AutoTokenizer.from_pretrained(trained["out"])
    assert isinstance(tok, BertJapaneseTokenizer)
    assert tok.tokenize("東京は日本の首都です。") == ["東京", "は", "日本", "の", "首都", "です", "。"]
    enc = tok("東京は日本の首都です。", "大学で研究する。")
    assert enc["input_ids"][0] == tok.cls_token_id and set(enc["token_type_ids"]) == {0, 1}
    model = AutoModelForMaskedLM.from_pretrained(trained["out"])
    fill = pipeline("fill-mask", model=model, tokenizer=tok, top_k=3)
    preds = fill("東京は日本の[MASK]です。")
    assert len(preds) == 3 and all("token_str" in p and 0 <= p["score"] <= 1 for p in preds)


def test_character_tokenizer_config(trained, tmp_path):
    from transformers import AutoTokenizer

    from scripts.hf_model.convert import tokenizer_config

    out = tmp_path / "char"
    shutil.copytree(trained["out"], out)
    (out / "tokenizer_config.json").write_text(json.dumps(tokenizer_config(
        subword="character", mecab_dic="unidic_lite", model_max_length=128)), encoding="utf-8")
    tok = AutoTokenizer.from_pretrained(out)
    assert tok.tokenize("東京は日本の首都です。") == list("東京は日本の首都です。")


def test_conversion_errors(work, randomized, tmp_path):
    from scripts.hf_model import convert as convert_to_hf
    from scripts.shared.common import InputError

    def args(ckpt, vocab, card=CARD):
        return ["--config", str(work["cfg"]), "--checkpoint", str(ckpt), "--vocab-file", str(vocab),
                "--subword-tokenizer", "wordpiece", "--model-name", "x", "--card-json", json.dumps(card),
                "--provenance-json", "{}", "--output-dir", str(tmp_path / "out")]

    small_vocab = h.write_vocab(tmp_path / "vocab.txt", VOCAB - 1)
    with pytest.raises(InputError, match=f"{VOCAB - 1} tokens, but the model's vocab_size is {VOCAB}"):
        convert_to_hf.main(args(randomized["ckpt"], small_vocab))
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(InputError, match="directory holds no checkpoint"):
        convert_to_hf.main(args(empty, work["vocab"]))
    with pytest.raises(InputError, match="missing key 'license'"):
        convert_to_hf.main(args(randomized["ckpt"], work["vocab"], card={"description": "x"}))
    assert not (tmp_path / "out").exists()


# ---------------------------------------------------------------------------------------------
# The card facts the conversion checks (the model card itself: tests/test_release.py)
# ---------------------------------------------------------------------------------------------


def test_card_licence_must_be_a_hub_licence_id():
    from scripts.hf_model.convert import check_card
    from scripts.shared.common import InputError

    check_card({"license": "cc-by-sa-4.0", "description": "x"})
    for bad in ("apache-2.0\ndatasets: [x]", "Apache License 2.0", "", 2):
        with pytest.raises(InputError, match="license|must be a string"):
            check_card({"license": bad, "description": "x"})
    with pytest.raises(InputError, match="missing key 'description'"):
        check_card({"license": "mit"})
