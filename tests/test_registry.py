"""Unit tests of scripts/shared/registry.py (cross-reference checks, lookups, code digests)."""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from conftest import ROOT
from scripts.shared import registry

CONFIG = yaml.safe_load((ROOT / "config.yaml").read_text())


def test_shipped_config_is_consistent():
    registry.check(CONFIG)


def test_recipe_models_have_the_recipe_parameters():
    m = CONFIG["models"]["bert-base-japanese-v3"]
    assert [s["name"] for s in m["stages"]] == ["cc-100", "cc-100_wikipedia"]
    s1, s2 = m["stages"]
    assert (s1["global_batch_size"], s1["train_steps"], s1["learning_rate"], s1["warmup_steps"]) == (2048, 1000000, 1e-4, 10000)
    assert (s2["global_batch_size"], s2["corpus"]) == (512, "wikipedia")
    assert CONFIG["models"]["bert-large-japanese-v2"]["stages"][0]["learning_rate"] == 5e-5
    assert CONFIG["corpora"]["cc-100"]["num_shards"] == 64 and CONFIG["corpora"]["wikipedia"]["num_shards"] == 8
    pd = CONFIG["corpora"]["wikipedia"]["pretraining_data"]
    assert (pd["max_seq_length"], pd["max_predictions_per_seq"], pd["dupe_factor"]) == (512, 76, 30)
    tok = CONFIG["tokenizers"]["wordpiece_unidic_lite"]
    assert (tok["vocab_size"], tok["limit_alphabet"], tok["num_unused_tokens"]) == (32768, 7012, 10)
    assert CONFIG["tokenizers"]["character_unidic_lite"]["vocab_size"] == 7027
    assert CONFIG["architectures"]["bert_large"]["num_layers"] == 24


def test_shard_ids_are_one_based_two_digits():
    assert registry.shard_ids(CONFIG, "cc-100")[:2] == ["01", "02"]
    assert registry.shard_ids(CONFIG, "cc-100")[-1] == "64"
    assert len(registry.shard_ids(CONFIG, "wikipedia")) == 8


def test_shard_seed_is_stable_and_distinct():
    a = registry.shard_seed(CONFIG, "cc-100", "01")
    assert a == registry.shard_seed(CONFIG, "cc-100", "01")
    assert a != registry.shard_seed(CONFIG, "cc-100", "02")
    assert a != registry.shard_seed(CONFIG, "wikipedia", "01")
    assert a == 1347220976 if CONFIG["seed"] == 0 else True  # pinned: a change would reshuffle every shard


@pytest.mark.parametrize("mutate,key", [
    (lambda c: c["models"]["bert-base-japanese-v3"].update(tokenizer="x"), "models.bert-base-japanese-v3.tokenizer"),
    (lambda c: c["models"]["bert-base-japanese-char-v3"].update(tokenizer="wordpiece_unidic_lite"), "collide"),
    (lambda c: c["tokenizers"]["character_unidic_lite"].update(base="character_unidic_lite"), ".base"),
    (lambda c: c["tokenizers"]["character_unidic_lite"].update(vocab_size=40000), ".vocab_size"),
    (lambda c: c["corpora"]["cc-100"]["pretraining_data"].update(max_predictions_per_seq=500), "max_predictions_per_seq"),
    (lambda c: c["architectures"]["bert_base"].update(max_position_embeddings=256), "max_seq_length"),
    (lambda c: c["corpora"]["wikipedia"].pop("sample_lines"), "sample_lines"),
])
def test_cross_reference_errors_name_the_key(mutate, key):
    cfg = copy.deepcopy(CONFIG)
    mutate(cfg)
    with pytest.raises(registry.ConfigError, match=key.replace(".", r"\.").replace("[", r"\[")):
        registry.check(cfg)


def test_code_digest_ignores_comments_and_docstrings_but_not_code(tmp_path):
    (tmp_path / "a.py").write_text('"""Doc."""\nfrom scripts import b\n\ndef f():\n    return 1  # one\n')
    (tmp_path / "b.py").write_text("X = 1\n")
    d0 = registry.code_digest("a", scripts_dir=tmp_path)
    (tmp_path / "a.py").write_text('"""Other doc."""\nfrom scripts import b\n\n\ndef f():\n    # comment\n    return 1\n')
    assert registry.code_digest("a", scripts_dir=tmp_path) == d0
    (tmp_path / "b.py").write_text("X = 2\n")  # an imported module counts too
    d1 = registry.code_digest("a", scripts_dir=tmp_path)
    assert d1 != d0
    (tmp_path / "a.py").write_text('from scripts import b\n\ndef f():\n    return 2\n')
    assert registry.code_digest("a", scripts_dir=tmp_path) != d1


# ---------------------------------------------------------------------------------------------
# Values that passed validation and failed later (issue 11 §3)
# ---------------------------------------------------------------------------------------------


def _mutated(mutate):
    cfg = copy.deepcopy(CONFIG)
    mutate(cfg)
    return cfg


def _key_re(key: str) -> str:
    return "'" + key.replace(".", r"\.").replace("[", r"\[").replace("]", r"\]") + "'"


def test_shipped_config_passes_the_strict_schema():
    registry.check_schema(CONFIG)


@pytest.mark.parametrize("mutate,key", [
    (lambda c: c["corpora"]["sample-cc-100"].update(num_shards=4.0), "corpora.sample-cc-100.num_shards"),
    (lambda c: c["tokenizers"]["sample_wordpiece_unidic_lite"].update(vocab_size=8192.0),
     "tokenizers.sample_wordpiece_unidic_lite.vocab_size"),
    (lambda c: c["tokenizers"]["sample_character_unidic_lite"].update(vocab_size=7027.0),
     "tokenizers.sample_character_unidic_lite.vocab_size"),
    (lambda c: c.update(seed=1.0), "seed"),
    (lambda c: c["corpora"]["sample-cc-100"]["pretraining_data"].update(max_seq_length=64.0),
     "corpora.sample-cc-100.pretraining_data.max_seq_length"),
    (lambda c: c["models"]["bert-tiny-japanese-sample"]["stages"][1].update(train_steps=60.0),
     "models.bert-tiny-japanese-sample.stages[1].train_steps"),
])
def test_integral_floats_are_rejected_naming_the_key(mutate, key):
    """JSON Schema counts 4.0 as an integer (snakemake.utils.validate accepts it); the jobs do not."""
    with pytest.raises(registry.ConfigError, match=_key_re(key) + ".*is a float; an integer is required"):
        registry.check_schema(_mutated(mutate))


@pytest.mark.parametrize("mutate,key,why", [
    (lambda c: c["architectures"]["bert_tiny"].update(type_vocab_size=1),
     "architectures.bert_tiny.type_vocab_size", "minimum"),
    (lambda c: c["tokenizers"]["sample_wordpiece_unidic_lite"].update(wordpieces_prefix="@@"),
     "tokenizers.sample_wordpiece_unidic_lite.wordpieces_prefix", "'##' was expected"),
    (lambda c: c["models"]["bert-tiny-japanese-sample"]["card"].update(license="apache-2.0\ndatasets: [x]"),
     "models.bert-tiny-japanese-sample.card.license", "does not match"),
    (lambda c: c["models"]["bert-tiny-japanese-sample"]["card"].update(license="Apache 2.0"),
     "models.bert-tiny-japanese-sample.card.license", "does not match"),
])
def test_schema_rejects_values_that_fail_later(mutate, key, why):
    with pytest.raises(registry.ConfigError, match=_key_re(key) + ".*" + why):
        registry.check_schema(_mutated(mutate))


def test_schema_licence_pattern_is_the_converters():
    from scripts.hf_model.convert import LICENSE_ID

    schema = yaml.safe_load(registry.SCHEMA_PATH.read_text())
    pattern = schema["$defs"]["model"]["properties"]["card"]["properties"]["license"]["pattern"]
    assert pattern == "^" + LICENSE_ID.pattern + "$"
    for ok in ("apache-2.0", "mit", "cc-by-sa-4.0", "openrail++", "other", "llama3.1"):
        assert LICENSE_ID.fullmatch(ok), ok


@pytest.mark.parametrize("mutate,key", [
    (lambda c: c["models"]["bert-tiny-japanese-sample"]["stages"][0].update(summary_interval=15),
     "models.bert-tiny-japanese-sample.stages[0].summary_interval"),
    (lambda c: c["corpora"]["sample-wikipedia"].update(  # (cleaning is a YAML alias: replace, not update)
        cleaning={**c["corpora"]["sample-wikipedia"]["cleaning"], "min_sentence_length": 300}),
     "corpora.sample-wikipedia.cleaning.min_sentence_length"),
    (lambda c: c["alphabets"]["unidic_lite"].update(lex_file="no/such/lex.csv"), "alphabets.unidic_lite.lex_file"),
    (lambda c: c["training"].update(distribution_strategy="tpu", tpu=""), "training.tpu"),
    (lambda c: c["tokenizers"]["sample_character_unidic_lite"].update(vocab_size=7000),
     "tokenizers.sample_character_unidic_lite.vocab_size"),
])
def test_cross_field_errors_name_the_key(mutate, key):
    with pytest.raises(registry.ConfigError, match=_key_re(key)):
        registry.check(_mutated(mutate))


def test_cross_field_checks_accept_what_works(tmp_path, monkeypatch):
    cfg = copy.deepcopy(CONFIG)
    cfg["corpora"]["sample-cc-100"]["cleaning"].update(min_sentence_length=300, max_sentence_length=0)  # 0: no max
    cfg["training"].update(distribution_strategy="tpu", tpu="local")
    cfg["models"]["bert-tiny-japanese-sample"]["stages"][0].update(steps_per_loop=5, summary_interval=20)
    (tmp_path / "lex.csv").write_text("x\n")
    monkeypatch.chdir(tmp_path)  # lex_file is relative to the working directory
    cfg["alphabets"]["unidic_lite"]["lex_file"] = "lex.csv"
    registry.check(cfg)


def test_character_vocab_size_is_checked_against_its_base():
    """character vocab = 5 specials + the base's [unusedN] + its alphabet (at most limit_alphabet)."""
    cfg = copy.deepcopy(CONFIG)
    cfg["tokenizers"]["sample_wordpiece_unidic_lite"].update(limit_alphabet=6000, num_unused_tokens=3)
    cfg["tokenizers"]["sample_character_unidic_lite"]["vocab_size"] = 5 + 3 + 6000
    registry.check(cfg)
    cfg["tokenizers"]["sample_character_unidic_lite"]["vocab_size"] = 5 + 3 + 6000 - 1
    with pytest.raises(registry.ConfigError, match=r"smaller than .* = 6008"):
        registry.check(cfg)


# ---------------------------------------------------------------------------------------------
# Names that would make two rules or two outputs the same
# ---------------------------------------------------------------------------------------------


def test_corpus_names_whose_rule_names_collide_are_rejected():
    cfg = copy.deepcopy(CONFIG)
    cfg["corpora"]["sample_cc_100"] = copy.deepcopy(cfg["corpora"]["sample-cc-100"])
    with pytest.raises(registry.ConfigError, match=r"'corpora\.sample_cc_100'.*corpus_shards_sample_cc_100"
                                                   r".*corpora\.sample-cc-100"):
        registry.check(cfg)
    assert registry.shard_rule_name("sample-cc.100") == "corpus_shards_sample_cc_100"


def test_names_whose_paths_collide_are_rejected():
    """Tokenizer `alphabet` and alphabet `vocab` are both tokenizers/alphabet/vocab.txt."""
    cfg = copy.deepcopy(CONFIG)
    cfg["alphabets"]["vocab"] = {"lex_file": None}
    cfg["tokenizers"]["alphabet"] = copy.deepcopy(cfg["tokenizers"]["sample_wordpiece_unidic_lite"])
    with pytest.raises(registry.ConfigError, match=r"tokenizers/alphabet/vocab\.txt is also an output of"):
        registry.check(cfg)
    # either name alone is fine
    del cfg["alphabets"]["vocab"]
    registry.check(cfg)


def test_a_raw_dump_at_an_output_path_is_rejected():
    cfg = copy.deepcopy(CONFIG)
    cfg["corpora"]["sample-cc-100"]["raw"]["path"] = "corpus/sample-wikipedia/corpus_01.txt"
    with pytest.raises(registry.ConfigError, match=r"'corpora\.sample-cc-100\.raw\.path'.*would overwrite"):
        registry.check(cfg)


def test_registry_paths_expand_every_pattern_of_registry_names():
    import string

    from scripts.shared.formats import PATHS

    owners = dict(registry.registry_paths(CONFIG))
    assert owners["tokenizers/alphabet/unidic_lite.txt"] == "alphabets.unidic_lite"
    assert owners["tokenizers/wordpiece_unidic_lite/vocab.txt"] == "tokenizers.wordpiece_unidic_lite"
    assert owners["corpus/cc-100/corpus_64.txt"] == "corpora.cc-100"
    assert owners["hf_model/bert-base-japanese-v3"] == "models.bert-base-japanese-v3"
    assert owners["model/wordpiece_unidic_lite/bert_base/training/cc-100_wikipedia/done.json"].endswith(
        ".stages[1].name")
    assert "corpus/cc-100/corpus_65.txt" not in owners
    names = {"corpus", "shard", "tokenizer", "alphabet", "arch", "stage", "model"}
    for key, pattern in vars(PATHS).items():
        fields = {f for _, f, _, _ in string.Formatter().parse(pattern) if f}
        if fields and fields <= names:
            regex = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(pattern))
            assert any(re.fullmatch(regex, p) for p in owners), f"PATHS.{key} expands to nothing"


# ---------------------------------------------------------------------------------------------
# Config files: repeated keys
# ---------------------------------------------------------------------------------------------


def test_duplicate_yaml_keys_are_found_with_file_and_line(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("seed: 0\ncorpora:\n  a:\n    num_shards: 4\n    num_shards: 8\nseed: 1\n")
    found = registry.duplicate_keys(f)
    assert found == [f"{f}:5: duplicate key 'corpora.a.num_shards' (first at line 4); "
                     "YAML would silently keep the last value",
                     f"{f}:6: duplicate key 'seed' (first at line 1); YAML would silently keep the last value"]
    with pytest.raises(registry.ConfigError, match=r"c\.yaml:5: duplicate key 'corpora\.a\.num_shards'"):
        registry.check_config_files([str(f)])


def test_merge_keys_and_the_shipped_config_have_no_duplicates(tmp_path):
    assert registry.duplicate_keys(ROOT / "config.yaml") == []
    f = tmp_path / "c.yaml"
    f.write_text("base: &b {x: 1, y: 2}\nitems:\n  - {<<: *b, x: 3}\n  - {<<: *b, z: 4}\n")
    assert registry.duplicate_keys(f) == []
    f.write_text("items:\n  - {a: 1, a: 2}\n")
    assert registry.duplicate_keys(f) == [f"{f}:2: duplicate key 'items[0].a' (first at line 2); "
                                          "YAML would silently keep the last value"]
    j = tmp_path / "c.json"
    j.write_text('{"seed": 0,\t"seed": 1}')  # a tab: not YAML, but JSON
    assert registry.duplicate_keys(j) == [f"{j}: duplicate key 'seed'"]


# ---------------------------------------------------------------------------------------------
# Lookups for the model card / provenance, and the job environment
# ---------------------------------------------------------------------------------------------


def test_model_corpora_and_their_facts():
    assert registry.model_corpora(CONFIG, "bert-base-japanese-char-v3") == ["cc-100", "wikipedia"]
    assert registry.model_corpora(CONFIG, "bert-tiny-japanese-sample") == ["sample-cc-100", "sample-wikipedia"]
    facts = registry.corpus_facts(CONFIG, "wikipedia")
    assert facts["num_shards"] == 8 and facts["sample_lines"] == CONFIG["corpora"]["wikipedia"]["sample_lines"]
    assert facts["cleaning"] == CONFIG["corpora"]["wikipedia"]["cleaning"] and facts["format"] == "cirrussearch"
    assert "sample_lines" not in registry.corpus_facts(CONFIG, "cc-100")


def test_interpreter_goes_first_on_path():
    env = {"PATH": "/usr/bin:/bin"}
    assert registry.put_interpreter_first_on_path("/venv/bin/python", env)
    assert env["PATH"] == "/venv/bin:/usr/bin:/bin"
    assert not registry.put_interpreter_first_on_path("/venv/bin/python", env)  # once only
    env = {}
    registry.put_interpreter_first_on_path("/venv/bin/python", env)
    assert env["PATH"] == "/venv/bin"
