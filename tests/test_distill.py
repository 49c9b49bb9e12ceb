"""DistilBERT distillation (scripts/training/distill.py): each loss term against hand-computed
small cases, the teacher-to-student copy (all layers copied = the teacher's logits), the
tokenizer identity check, and a tiny distillation through the engine to a transformers
``DistilBertForMaskedLM`` directory (CPU, ~20 s)."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

import helpers_tf as h
from test_roberta import corpus_text, family_spec, token_shard

TEACHER_ARCH = {"hidden_size": 32, "num_layers": 4, "num_attention_heads": 2, "intermediate_size": 64,
                "max_position_embeddings": 64, "type_vocab_size": 2, "hidden_activation": "gelu",
                "dropout_rate": 0.1, "attention_dropout_rate": 0.1, "initializer_range": 0.02}
STUDENT_ARCH = {**TEACHER_ARCH, "num_layers": 2, "type_vocab_size": 1}


# ---------------------------------------------------------------------------------------------
# Loss terms by hand
# ---------------------------------------------------------------------------------------------


def _softmax(x):
    e = np.exp(x - x.max(-1, keepdims=True))
    return e / e.sum(-1, keepdims=True)


def test_kl_term_by_hand():
    from scripts.training.distill import kl_sum

    s = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]])
    t = np.array([[2.0, 0.0, 1.0], [1.0, 1.0, 1.0]])
    T = 2.0
    ps, pt = _softmax(s / T), _softmax(t / T)
    want = float((pt * (np.log(pt) - np.log(ps))).sum())
    got = float(kl_sum(torch.tensor(s), torch.tensor(t), T))
    assert math.isclose(got, want, rel_tol=1e-6)
    # equals torch's KLDivLoss (sum), the distillation literature's form
    ref = torch.nn.KLDivLoss(reduction="sum")(torch.log_softmax(torch.tensor(s) / T, -1), torch.softmax(torch.tensor(t) / T, -1))
    assert math.isclose(got, float(ref), rel_tol=1e-6)
    assert float(kl_sum(torch.tensor(t), torch.tensor(t), T)) == pytest.approx(0.0, abs=1e-7)


def test_cosine_term_by_hand():
    from scripts.training.distill import cos_sum

    s = np.array([[1.0, 0.0], [1.0, 1.0], [3.0, 4.0]])
    t = np.array([[0.0, 1.0], [2.0, 2.0], [-3.0, -4.0]])
    want = (1 - 0.0) + (1 - 1.0) + (1 - (-1.0))
    assert float(cos_sum(torch.tensor(s), torch.tensor(t))) == pytest.approx(want, abs=1e-7)
    ref = torch.nn.CosineEmbeddingLoss(reduction="sum")(torch.tensor(s), torch.tensor(t), torch.ones(3))
    assert float(cos_sum(torch.tensor(s), torch.tensor(t))) == pytest.approx(float(ref), abs=1e-6)


def test_total_loss_by_hand_over_non_pad_tokens():
    from scripts.training.distill import loss_terms, total_loss

    g = torch.Generator().manual_seed(0)
    B, L, V, H = 2, 4, 5, 3
    s_log, t_log = torch.randn(B, L, V, generator=g), torch.randn(B, L, V, generator=g)
    s_h, t_h = torch.randn(B, L, H, generator=g), torch.randn(B, L, H, generator=g)
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])
    pos = torch.tensor([[1, 2], [1, 0]])
    lab = torch.tensor([[3, 4], [2, 0]])
    w = torch.tensor([[1.0, 1.0], [1.0, 0.0]])
    T, a = 2.0, dict(alpha_ce=5.0, alpha_mlm=2.0, alpha_cos=1.0)
    terms = loss_terms(s_log, t_log, s_h, t_h, mask, pos, lab, w, temperature=T)
    sel = [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
    kl = sum(float((_softmax(t_log[b, j].numpy() / T) * (np.log(_softmax(t_log[b, j].numpy() / T))
                                                       - np.log(_softmax(s_log[b, j].numpy() / T)))).sum())
             for b, j in sel)
    cos = sum(1 - float(np.dot(s_h[b, j], t_h[b, j]) / np.linalg.norm(s_h[b, j]) / np.linalg.norm(t_h[b, j]))
              for b, j in sel)
    ce = [-math.log(_softmax(s_log[b, j].numpy())[y]) for b, j, y in [(0, 1, 3), (0, 2, 4), (1, 1, 2)]]
    want = 5.0 * kl / 5 * T * T + 2.0 * sum(ce) / 3 + 1.0 * cos / 5
    assert float(total_loss(terms, temperature=T, **a)) == pytest.approx(want, rel=1e-5)
    # restricted to the masked tokens: KL over the 3 masked slots only
    r = loss_terms(s_log, t_log, s_h, t_h, mask, pos, lab, w, temperature=T, restrict_ce_to_mask=True)
    kl3 = sum(float((_softmax(t_log[b, j].numpy() / T) * (np.log(_softmax(t_log[b, j].numpy() / T))
                                                        - np.log(_softmax(s_log[b, j].numpy() / T)))).sum())
              for b, j in [(0, 1), (0, 2), (1, 1)])
    assert float(r["kl_sum"]) == pytest.approx(kl3, rel=1e-5) and int(r["kl_tokens"]) == 3


# ---------------------------------------------------------------------------------------------
# Teacher -> student
# ---------------------------------------------------------------------------------------------


def tiny_teacher(vocab_size=120, layers=4, seed=0):
    from transformers import BertConfig, BertForMaskedLM

    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                     intermediate_size=64, max_position_embeddings=64, hidden_act="gelu_new", layer_norm_eps=1e-12,
                     type_vocab_size=2, pad_token_id=0)
    t = BertForMaskedLM(cfg).eval()
    with torch.no_grad():  # a non-zero token-type row and output bias, so the fold is tested
        t.bert.embeddings.token_type_embeddings.weight.normal_(0, 0.5)
        t.cls.predictions.bias.normal_(0, 0.5)
    return t


def encoder_of(teacher, n_layers):
    c = teacher.config
    return {"hidden_size": c.hidden_size, "num_attention_heads": c.num_attention_heads, "num_layers": n_layers,
            "intermediate_size": c.intermediate_size, "vocab_size": c.vocab_size, "dropout_rate": 0.1,
            "attention_dropout_rate": 0.1, "initializer_range": 0.02}


def test_student_with_every_teacher_layer_computes_the_teachers_logits():
    from scripts.training.distill import student_from_teacher

    t = tiny_teacher()
    s = student_from_teacher(t, encoder_of(t, 4), [0, 1, 2, 3], attn_implementation="eager").eval()
    ids = torch.tensor([[2, 10, 11, 12, 3, 0, 0], [2, 40, 3, 0, 0, 0, 0]])
    att = (ids != 0).long()
    with torch.no_grad():
        want = t(input_ids=ids, attention_mask=att, token_type_ids=torch.zeros_like(ids)).logits
        got = s(input_ids=ids, attention_mask=att).logits
    m = att.bool()
    assert torch.allclose(got[m], want[m], atol=2e-5), (got[m] - want[m]).abs().max()
    assert s.vocab_projector.weight.data_ptr() == s.distilbert.embeddings.word_embeddings.weight.data_ptr()


def test_student_copies_the_chosen_layers_and_folds_token_type_zero():
    from scripts.training.distill import student_from_teacher

    t = tiny_teacher(layers=4)
    s = student_from_teacher(t, encoder_of(t, 2), [0, 3])
    for i, j in [(0, 0), (1, 3)]:
        S, T = s.distilbert.transformer.layer[i], t.bert.encoder.layer[j]
        assert torch.equal(S.attention.q_lin.weight, T.attention.self.query.weight)
        assert torch.equal(S.attention.v_lin.bias, T.attention.self.value.bias)
        assert torch.equal(S.ffn.lin2.weight, T.output.dense.weight)
        assert torch.equal(S.output_layer_norm.weight, T.output.LayerNorm.weight)
    e = t.bert.embeddings
    assert torch.allclose(s.distilbert.embeddings.position_embeddings.weight,
                          e.position_embeddings.weight + e.token_type_embeddings.weight[0])
    assert torch.equal(s.vocab_projector.bias, t.cls.predictions.bias)
    from scripts.shared.common import InputError

    with pytest.raises(InputError, match="does not fit its teacher"):
        student_from_teacher(t, {**encoder_of(t, 2), "hidden_size": 64}, [0, 3])
    with pytest.raises(InputError, match="teacher_layers"):
        student_from_teacher(t, encoder_of(t, 2), [0, 4])


def test_selected_token_forward_equals_the_reference_loss():
    """DistilPretrainer (the engine's module, on non-pad tokens only) = loss_terms on full tensors."""
    from scripts.training.distill import DEFAULTS, DistilPretrainer, loss_terms, student_from_teacher, total_loss

    t = tiny_teacher()
    s = student_from_teacher(t, encoder_of(t, 2), [1, 3], attn_implementation="eager").eval()
    d = dict(DEFAULTS)
    pre = DistilPretrainer(s, t, d).eval()
    ids = torch.tensor([[2, 10, 4, 12, 3, 0], [2, 4, 50, 3, 0, 0]])
    att = (ids != 0).long()
    batch = {"input_ids": ids, "attention_mask": att, "masked_lm_positions": torch.tensor([[2, 3], [1, 0]]),
             "masked_lm_ids": torch.tensor([[11, 12], [40, 0]]), "masked_lm_weights": torch.tensor([[1.0, 1.0], [1.0, 0.0]])}
    loss, stats = pre(batch, torch.tensor(3.0), att.sum().float())
    with torch.no_grad():
        so = s(input_ids=ids, attention_mask=att, output_hidden_states=True)
        to = t(input_ids=ids, attention_mask=att, token_type_ids=torch.zeros_like(ids), output_hidden_states=True)
    terms = loss_terms(so.logits, to.logits, so.hidden_states[-1], to.hidden_states[-1], att,
                       batch["masked_lm_positions"], batch["masked_lm_ids"], batch["masked_lm_weights"],
                       temperature=2.0)
    want = total_loss(terms, temperature=2.0, alpha_ce=5.0, alpha_mlm=2.0, alpha_cos=1.0)
    assert float(loss.detach()) == pytest.approx(float(want), rel=1e-5)
    assert pre.training is False and t.training is False
    pre.train()
    assert t.training is False  # the teacher stays in eval mode


# ---------------------------------------------------------------------------------------------
# A tiny distillation through the engine
# ---------------------------------------------------------------------------------------------


def teacher_dir(root: Path, vocab: Path) -> Path:
    """A converted-BERT directory (as the hf_model stage writes it) of a random tiny teacher."""
    from transformers import BertConfig, BertForPreTraining

    from scripts.hf_model.families import write_tokenizer_files

    torch.manual_seed(0)
    n = len(vocab.read_text(encoding="utf-8").splitlines())
    cfg = BertConfig(vocab_size=n, hidden_size=32, num_hidden_layers=4, num_attention_heads=2, intermediate_size=64,
                     max_position_embeddings=64, hidden_act="gelu_new", layer_norm_eps=1e-12, type_vocab_size=2,
                     pad_token_id=0, architectures=["BertForPreTraining"], tokenizer_class="BertJapaneseTokenizer")
    d = root / "teacher"
    d.mkdir()
    BertForPreTraining(cfg).save_pretrained(str(d))
    tok = root / "tokdir"
    tok.mkdir(exist_ok=True)
    shutil.copyfile(vocab, tok / "vocab.txt")
    write_tokenizer_files(d, kind="wordpiece", tokenizer_dir=tok, mecab_dic="unidic_lite", model_max_length=64)
    return d


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    root = tmp_path_factory.mktemp("distil")
    vocab = h.write_vocab(root / "vocab.txt", h.TINY_VOCAB)
    teacher = teacher_dir(root, vocab)
    text = corpus_text(root / "corpus_01.txt")
    shard = token_shard(root, text, None, raw=False, vocab=vocab)
    fam = {"name": "distilbert", "teacher": {"name": "tiny-teacher", "dir": str(teacher)},
           "tokenizer": {"dir": str(root / "tokdir"), "kind": "wordpiece", "mecab_dic": "unidic_lite"},
           "distillation": {"teacher_layers": [0, 2]}}
    cfg = h.write_stage_config(root / "stage.yaml", family_spec(vocab, fam, STUDENT_ARCH, train_steps=20))
    stage_dir = root / "model" / "stage"
    proc = h.run_module("scripts.training.torch_train", "--config", cfg, "--train-file", shard, "--train-stats",
                        str(shard) + ".stats.json", "--stage-dir", stage_dir, "--threads", "2", "--done",
                        stage_dir / "done.json", timeout=600)
    done = h.read_json(stage_dir / "done.json")
    from scripts.hf_model.families import convert_family

    out = root / "hf"
    convert_family(config=str(cfg), checkpoint=done["checkpoint"], tokenizer_dir=str(root / "tokdir"),
                   subword="wordpiece", mecab_dic="unidic_lite", model_name="distil-tiny",
                   card={"license": "apache-2.0", "description": "test"}, provenance={}, output_dir=str(out))
    return {"root": root, "teacher": teacher, "shard": shard, "cfg": cfg, "done": done, "log": proc.stderr, "hf": out,
            "stage_dir": stage_dir, "vocab": vocab}


def test_distillation_trains_from_the_teacher_and_keys_the_run_to_it(distilled):
    import re

    done, log = distilled["done"], distilled["log"]
    assert done["family"] == "distilbert" and done["final_step"] == 20
    assert "tokenizes as the student's data" in log and "student initialised from teacher" in log
    assert "float32 on cpu (frozen, eval mode)" in log
    losses = [float(x) for x in re.findall(r"\| loss ([0-9.]+) \(mlm", log)]
    assert losses[-1] < losses[0], losses
    m = done["train_metrics"]
    assert {"distill_ce_loss", "distill_cos_loss", "mlm_loss"} <= set(m)
    import json

    parts = json.loads((Path(done["run_dir"]) / "run.json").read_text())["parts"]
    from scripts.training.runs import sha256_file

    weights = sha256_file(str(distilled["teacher"] / "model.safetensors"))
    assert parts["init"]["teacher"] == "tiny-teacher" and parts["init"]["sha256"] == weights
    assert parts["data"][-1]["sha256"] == weights  # the teacher is part of what the run learns from


def test_distilled_student_loads_with_auto_classes_and_fills_masks(distilled):
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    hf = str(distilled["hf"])
    model = AutoModelForMaskedLM.from_pretrained(hf)
    tok = AutoTokenizer.from_pretrained(hf)
    assert type(model).__name__ == "DistilBertForMaskedLM" and model.config.n_layers == 2
    assert type(tok).__name__ == "BertJapaneseTokenizer"
    teacher_tok = AutoTokenizer.from_pretrained(str(distilled["teacher"]))
    for text in ["東京は日本の首都です。", "大学で研究する。"]:
        assert tok(text)["input_ids"] == teacher_tok(text)["input_ids"]
    assert "token_type_ids" not in tok("東京")
    preds = pipeline("fill-mask", model=model, tokenizer=tok)("東京は日本の[MASK]です。")
    assert len(preds) == 5
    assert (distilled["hf"] / "provenance.json").exists() and (distilled["hf"] / "vocab.txt").exists()


def test_a_teacher_with_another_tokenizer_is_rejected(distilled, tmp_path):
    from scripts.shared.common import InputError
    from scripts.training.distill import check_same_tokenizer

    other = tmp_path / "other"
    shutil.copytree(distilled["teacher"], other)
    lines = (other / "vocab.txt").read_text(encoding="utf-8").splitlines()
    lines[20], lines[21] = lines[21], lines[20]
    (other / "vocab.txt").write_text("".join(t + "\n" for t in lines), encoding="utf-8")
    with pytest.raises(InputError, match="vocab.txt differs"):
        check_same_tokenizer(str(other), str(distilled["root"] / "tokdir"), "wordpiece", "unidic_lite")
    with pytest.raises(InputError, match="tokenizer is wordpiece"):
        check_same_tokenizer(str(distilled["teacher"]), str(distilled["root"] / "tokdir"), "character", "unidic_lite")
