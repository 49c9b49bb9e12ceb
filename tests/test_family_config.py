"""The new families in the registry and the plan: SentencePiece tokenizers, RoBERTa and DistilBERT
models (config checks before any job, the recipe figures, stage YAMLs, the full-size plans from
placeholder dumps)."""

from __future__ import annotations

import copy
import json
import re

import pytest
import yaml

from conftest import ROOT, copy_workflow, snakemake, with_placeholder_dumps
from scripts.shared import registry

CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())


def checked(mutate):
    c = copy.deepcopy(CONFIG)
    mutate(c)
    registry.check_schema(c)
    registry.check(c)


def test_shipped_config_registers_the_families():
    registry.check(CONFIG)
    m = CONFIG["models"]
    assert registry.family(CONFIG, "roberta-base-japanese") == "roberta"
    assert registry.family(CONFIG, "distilbert-base-japanese") == "distilbert"
    assert m["distilbert-base-japanese"]["teacher"] == "bert-base-japanese-v3"
    assert m["distilbert-base-japanese-mecab-sp"]["teacher"] == "bert-base-japanese-mecab-sp"
    line = CONFIG["tokenizers"]["sentencepiece_unidic_lite"]
    assert (line["type"], line["mecab_dic"], line["vocab_size"]) == ("sentencepiece", "unidic_lite", 32768)
    rinna = CONFIG["tokenizers"]["sentencepiece_32000"]
    assert (rinna["mecab_dic"], rinna["vocab_size"], rinna["model_type"]) == (None, 32000, "unigram")
    # rinna's figures: seq 512, 32 x 16 x 8 = 4096 sequences, 6e-4, 3M micro-batches / 16 = 187,500 updates
    st = m["roberta-base-japanese"]["stages"][0]
    assert (st["max_seq_length"], st["global_batch_size"], st["learning_rate"], st["train_steps"]) == \
        (512, 4096, 6e-4, 187500)
    assert CONFIG["architectures"]["roberta_base"]["max_position_embeddings"] == 514
    assert registry.mlm_settings(m["roberta-base-japanese"])["replace"] == "mask"
    d = registry.distillation_settings(m["distilbert-base-japanese"])
    assert (d["alpha_ce"], d["alpha_mlm"], d["alpha_cos"], d["temperature"], d["teacher_layers"]) == \
        (5.0, 2.0, 1.0, 2.0, [0, 2, 4, 7, 9, 11])
    for name in ("bert-tiny-japanese-sample-sp", "distilbert-tiny-japanese-sample-sp", "roberta-tiny-japanese-sample"):
        assert name in CONFIG["default_models"]


@pytest.mark.parametrize("mutate,key,why", [
    (lambda c: c["models"]["distilbert-base-japanese"].update(tokenizer="character_unidic_lite",
                                                              architecture="distilbert_base"),
     "models.distilbert-base-japanese.tokenizer", "tokenize identically"),
    (lambda c: c["models"]["distilbert-base-japanese"]["distillation"].update(teacher_layers=[0, 2, 4]),
     "models.distilbert-base-japanese.distillation.teacher_layers", "6-layer student"),
    (lambda c: c["models"]["distilbert-base-japanese"]["distillation"].update(teacher_layers=[0, 2, 4, 7, 9, 12]),
     "models.distilbert-base-japanese.distillation.teacher_layers", "12-layer teacher"),
    (lambda c: c["models"]["distilbert-base-japanese"].update(teacher="roberta-base-japanese"),
     "models.distilbert-base-japanese.teacher", "must be a bert model"),
    (lambda c: c["models"]["distilbert-base-japanese"].pop("teacher"),
     "models.distilbert-base-japanese.teacher", "required"),
    (lambda c: c["models"]["distilbert-base-japanese"].update(teacher="bert-large-japanese-v2"),
     "architectures.distilbert_base.hidden_size", "differs from the teacher"),
    (lambda c: c["models"]["roberta-base-japanese"].pop("backend"),
     "models.roberta-base-japanese.backend", "torch backend"),
    (lambda c: c["architectures"]["roberta_base"].update(max_position_embeddings=512),
     "architectures.roberta_base.max_position_embeddings", "padding_idx"),
    (lambda c: c["tokenizers"]["sentencepiece_32000"].update(model_type="bpe"),
     "tokenizers.sentencepiece_32000.model_type", "unigram"),
    (lambda c: c["models"]["bert-base-japanese-v3"]["stages"][0].update(max_seq_length=64),
     "models.bert-base-japanese-v3.stages[0]", "roberta and distilbert"),
    (lambda c: c["models"]["roberta-base-japanese"]["stages"][0].update(extra_corpora=["nope"]),
     "models.roberta-base-japanese.stages[0].extra_corpora", "unknown corpus"),
    (lambda c: c["models"]["roberta-base-japanese"].update(teacher="bert-base-japanese-v3"),
     "models.roberta-base-japanese.teacher", "only for distilbert"),
    (lambda c: c["models"]["bert-base-japanese-v3"].update(mlm={"replace": "mask"}),
     "models.bert-base-japanese-v3.mlm", "only for roberta and distilbert"),
    (lambda c: c["tokenizers"]["sample_wordpiece_unidic_lite"].update(mecab_dic=None),
     "tokenizers.sample_wordpiece_unidic_lite.mecab_dic", ""),
    (lambda c: c["tokenizers"]["sentencepiece_32000"].pop("train_threads"),
     "tokenizers.sentencepiece_32000", "train_threads"),
])
def test_family_configs_that_cannot_work_are_rejected_naming_the_key(mutate, key, why):
    with pytest.raises(registry.ConfigError, match=re.escape(f"'{key}") + ".*" + why):
        checked(mutate)


def test_model_corpora_include_extra_corpora_and_the_max_predictions_rule():
    assert registry.model_corpora(CONFIG, "roberta-base-japanese") == ["cc-100", "wikipedia"]
    assert registry.mlm_max_predictions(512, 0.15) == 76 and registry.mlm_max_predictions(128, 0.15) == 19


@pytest.fixture(scope="module")
def placeholder_wd(tmp_path_factory):
    return with_placeholder_dumps(copy_workflow(tmp_path_factory.mktemp("families")))


def _job_stats(text: str) -> dict[str, int]:
    block = text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+(\d+)$", block, re.M)}


def test_full_size_families_plan_from_placeholder_dumps(placeholder_wd):
    targets = ["hf_model/roberta-base-japanese", "hf_model/distilbert-base-japanese",
               "hf_model/distilbert-base-japanese-mecab-sp"]
    out = snakemake(placeholder_wd, "-n", "--quiet", "rules", "--", *targets).stdout
    stats = _job_stats(out)
    assert stats["sentencepiece_raw"] == 1 and stats["sentencepiece_mecab"] == 1 and stats["wordpiece_vocab"] == 1
    # 64 + 8 token shards per (tokenizer, 512): RoBERTa's, and each student's
    assert stats["token_shards"] == 3 * (64 + 8)
    # the two teachers' TFRecords (bert-base-japanese-v3 and the MeCab + SentencePiece one)
    assert stats["pretraining_data"] == 2 * (64 + 8) and stats["train"] == 4
    assert stats["train_torch"] == 3 and stats["training_config_torch"] == 3
    assert stats["convert"] == 5 and stats["hf_model"] == 3  # teachers converted, not released
    plan = snakemake(placeholder_wd, "-n", "--", "hf_model/distilbert-base-japanese").stdout
    for path in ["pretraining_data/wordpiece_unidic_lite/cc-100/seq512/token_shard_64.npy",
                 "pretraining_data/wordpiece_unidic_lite/wikipedia/seq512/token_shard_08.npy",
                 "build/hf_model/bert-base-japanese-v3",
                 "model/wordpiece_unidic_lite/distilbert_base/training-torch/cc-100_wikipedia/done.json"]:
        assert path in plan, path


def test_stage_yaml_of_a_student_names_its_teacher_and_masking(placeholder_wd):
    """The spec the training_config_torch job gets (rules/inputs/training.smk), from the plan."""
    out = snakemake(placeholder_wd, "-n", "-p", "--", "model/wordpiece_unidic_lite/distilbert_base/training-torch/"
                                                       "cc-100_wikipedia.yaml").stdout
    spec = json.loads(re.search(r"--spec '(\{.*?\})' --vocab-file", out).group(1))
    fam = spec["family"]
    assert fam["name"] == "distilbert" and fam["teacher"] == {"name": "bert-base-japanese-v3",
                                                              "dir": "build/hf_model/bert-base-japanese-v3"}
    assert fam["mask"] == {"masked_lm_prob": 0.15, "whole_word": True, "replace": "bert", "max_predictions": 76}
    assert fam["tokenizer"] == {"dir": "tokenizers/wordpiece_unidic_lite", "kind": "wordpiece", "mecab_dic": "unidic_lite"}
    assert spec["data"] == {"max_seq_length": 512, "max_predictions_per_seq": 76}
    assert spec["torch"]["micro_batch_size"] == 16  # the model's own torch option
