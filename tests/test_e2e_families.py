"""End-to-end: the demo-sized models of the new families, built by the default target (the shared
``demo_run``): a MeCab + SentencePiece BERT teacher, its distilled DistilBERT student, and a RoBERTa
on plain SentencePiece. Each loads with the Auto classes, fills masks and has provenance."""

from __future__ import annotations

import json

import pytest

from conftest import pending

pytestmark = pytest.mark.e2e

TEACHER, STUDENT, ROBERTA = "bert-tiny-japanese-sample-sp", "distilbert-tiny-japanese-sample-sp", "roberta-tiny-japanese-sample"
CLASSES = {TEACHER: ("BertForMaskedLM", "BertJapaneseTokenizer"),
           STUDENT: ("DistilBertForMaskedLM", "BertJapaneseTokenizer"),
           ROBERTA: ("RobertaForMaskedLM", "TokenizersBackend")}


@pytest.mark.parametrize("model", [TEACHER, STUDENT, ROBERTA])
def test_demo_family_models_load_fill_masks_and_have_provenance(demo_run, model):
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    path = demo_run / "hf_model" / model
    tok = AutoTokenizer.from_pretrained(str(path))
    mlm = AutoModelForMaskedLM.from_pretrained(str(path))
    assert (type(mlm).__name__, type(tok).__name__) == CLASSES[model]
    preds = pipeline("fill-mask", model=mlm, tokenizer=tok)("東京は日本の[MASK]です。")
    assert len(preds) == 5 and all(p["score"] >= 0 for p in preds)
    prov = json.loads((path / "provenance.json").read_text())
    assert prov["raw_inputs"] and prov["training"]["backend"] == "torch"
    assert (path / "README.md").is_file()


def test_demo_student_is_distilled_from_the_demo_teacher(demo_run):
    from transformers import AutoTokenizer

    student, teacher = demo_run / "hf_model" / STUDENT, demo_run / "hf_model" / TEACHER
    prov = json.loads((student / "provenance.json").read_text())
    assert prov["config"]["teacher"] == TEACHER and prov["training"]["family"] == "distilbert"
    assert (student / "spiece.model").read_bytes() == (teacher / "spiece.model").read_bytes()
    a, b = AutoTokenizer.from_pretrained(str(student)), AutoTokenizer.from_pretrained(str(teacher))
    assert a("東京は日本の首都です。")["input_ids"] == b("東京は日本の首都です。")["input_ids"]
    cfg = json.loads((teacher / "tokenizer_config.json").read_text())
    assert cfg["subword_tokenizer_type"] == "sentencepiece" and cfg["spm_file"] == "spiece.model"


def test_demo_roberta_needs_no_manual_steps(demo_run):
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    path = str(demo_run / "hf_model" / ROBERTA)
    tok, model = AutoTokenizer.from_pretrained(path), AutoModelForMaskedLM.from_pretrained(path).eval()
    text = "4年に1度[MASK]は開かれる。"
    top = pipeline("fill-mask", model=model, tokenizer=tok)(text)[0]["token"]
    ids = tok(text)["input_ids"]
    with torch.no_grad():
        out = model(input_ids=torch.tensor([ids]), position_ids=torch.arange(2, len(ids) + 2)[None]).logits
    assert int(out[0, ids.index(tok.mask_token_id)].argmax()) == top


def test_changing_the_teacher_plans_its_student(demo_run, tmp_path):
    """A retrained teacher makes its student stale (the teacher is an input of the distillation)."""
    import re
    import shutil

    from conftest import clone_run

    wd = clone_run(demo_run, tmp_path / "run")
    cfg = wd / "config.yaml"
    text = cfg.read_text()
    new = re.sub(r"(bert-tiny-japanese-sample-sp:\n(?:    .*\n)*?      - \{name: cc-100, corpus: sample-cc-100, "
                 r"global_batch_size: 16, train_steps: )40", r"\g<1>30", text)
    assert new != text
    cfg.write_text(new)
    todo = pending(wd)
    assert f"hf_model/{STUDENT}" in todo and f"build/hf_model/{TEACHER}" in todo
    assert f"hf_model/{ROBERTA}" not in todo
    shutil.rmtree(wd)
