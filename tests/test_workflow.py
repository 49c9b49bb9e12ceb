"""Workflow-level checks that need no data: plans, lint, config validation, env files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import RECIPE_DUMPS, ROOT, copy_workflow, snakemake, with_placeholder_dumps
from scripts.tools import make_envs

def job_stats(text: str) -> dict[str, int]:
    """The first `Job stats:` table of `snakemake -n --quiet rules` (it is printed twice)."""
    block = text.split("Job stats:", 1)[1].split("\n\n", 1)[0]
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\S+)\s+(\d+)$", block, re.M)}


@pytest.fixture(scope="module")
def placeholder_wd(tmp_path_factory) -> Path:
    return with_placeholder_dumps(copy_workflow(tmp_path_factory.mktemp("recipe")))


@pytest.mark.parametrize("model,tokenizer_rule", [
    ("bert-base-japanese-v3", "wordpiece_vocab"),
    ("bert-large-japanese-char-v2", "character_vocab"),
])
def test_full_recipe_plans_from_placeholder_dumps(placeholder_wd, model, tokenizer_rule):
    out = snakemake(placeholder_wd, "-n", "--quiet", "rules", "--", f"hf_model/{model}").stdout
    stats = job_stats(out)
    assert stats["pretraining_data"] == 64 + 8
    assert stats["train"] == 2 and stats["training_config"] == 2
    assert stats["corpus_shards_cc_100"] == 1 and stats["corpus_shards_wikipedia"] == 1
    assert stats["corpus_wiki"] == 1 and stats["corpus_sample"] == 1 and stats["hf_model"] == 1
    assert stats[tokenizer_rule] == 1


def test_full_recipe_shard_targets(placeholder_wd):
    out = snakemake(placeholder_wd, "-n", "--", "hf_model/bert-base-japanese-v3").stdout
    for path in ["corpus/cc-100/corpus_01.txt", "corpus/cc-100/corpus_64.txt", "corpus/wikipedia/corpus_08.txt",
                 "pretraining_data/wordpiece_unidic_lite/cc-100/pretraining_data_64.tfrecord.gz",
                 "pretraining_data/wordpiece_unidic_lite/wikipedia/pretraining_data_08.tfrecord.gz",
                 "model/wordpiece_unidic_lite/bert_base/training/cc-100/done.json",
                 "model/wordpiece_unidic_lite/bert_base/training/cc-100_wikipedia/done.json"]:
        assert path in out, path
    assert "corpus_65.txt" not in out and "corpus/wikipedia/corpus_09.txt" not in out


def test_missing_dump_fails_before_any_job(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    proc = snakemake(wd, "--cores", "16", "hf_model/bert-base-japanese-v3", check=False)
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "is missing" in err and ("data/cc-100/ja.txt.xz" in err or RECIPE_DUMPS[1] in err)
    assert "https://" in err  # where to get it
    assert not (wd / "corpus").exists() and not (wd / "tokenizers").exists()


def test_rulegraph_and_dag_render(placeholder_wd):
    rg = snakemake(placeholder_wd, "--rulegraph", "--", "hf_model/bert-base-japanese-v3").stdout
    assert rg.lstrip().startswith("digraph") and "pretraining_data" in rg and "hf_model" in rg
    dag = snakemake(placeholder_wd, "--dag", "--", "hf_model/bert-base-japanese-v3").stdout
    assert dag.count("pretraining_data") >= 72


def test_lint_is_clean():
    proc = snakemake(ROOT, "--lint")
    out = proc.stdout + proc.stderr
    assert "Congratulations" in out, out


def test_snakefmt_is_clean():
    import subprocess
    import sys

    exe = str(Path(sys.executable).with_name("snakefmt"))
    proc = subprocess.run([exe, "--check", "Snakefile", "rules/"], cwd=ROOT, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


def test_env_files_match_the_lock():
    pins = make_envs.read_lock()
    for group in make_envs.GROUPS:
        assert (ROOT / "envs" / f"{group}.yaml").read_text() == make_envs.render(group, pins), group


# ---------------------------------------------------------------------------------------------
# Config validation: bad configs are rejected before any job runs, naming the key.
# ---------------------------------------------------------------------------------------------


def _set(cfg, dotted, value):
    keys = dotted.split(".")
    d = cfg
    for k in keys[:-1]:
        d = d[int(k)] if isinstance(d, list) else d[k]
    if value is _DELETE:
        del d[keys[-1]]
    else:
        d[keys[-1]] = value


_DELETE = object()

BAD_CONFIGS = [
    ("default_models", ["no-such-model"], "default_models[0]"),
    ("models.bert-tiny-japanese-sample.tokenizer", "no_such_tokenizer", "models.bert-tiny-japanese-sample.tokenizer"),
    ("models.bert-tiny-japanese-sample.architecture", "bert_huge", "architecture"),
    ("models.bert-tiny-japanese-sample.stages.0.corpus", "no-corpus", "stages[0].corpus"),
    ("corpora.sample-cc-100.num_shards", "four", "num_shards"),
    ("corpora.sample-cc-100.num_shards", -4, "num_shards"),
    ("corpora.sample-cc-100.pretraining_data.dupe_factor", 0, "dupe_factor"),
    ("corpora.sample-cc-100.raw.path", _DELETE, "path"),
    ("corpora.sample-wikipedia.pretraining_data.max_seq_length", 512, "max_seq_length"),
    ("tokenizers.sample_wordpiece_unidic_lite.vocab_size", 100, "vocab_size"),
    ("tokenizers.sample_character_unidic_lite.base", "nope", "base"),
    ("training.distribution_strategy", "gpu_magic", "distribution_strategy"),
    ("corpora.sample-cc-100.cleaning.min_sentence_lenght", 3, "min_sentence_lenght"),
]


@pytest.mark.parametrize("key,value,named", BAD_CONFIGS, ids=[b[0] + "=" + str(b[1]) for b in BAD_CONFIGS])
def test_bad_config_is_rejected_naming_the_key(tmp_path, key, value, named):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    _set(cfg, key, value)
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    proc = snakemake(tmp_path, "-s", ROOT / "Snakefile", "-n", "--configfile", bad, "--replace-workflow-config",
                     check=False)
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert named in err, err[-3000:]
    assert not (tmp_path / "corpus").exists()


def test_lock_installs_from_the_standard_index():
    """Public versions only: no `+local` labels (a `+cpu` build is served only by PyTorch's own
    index or a local wheel cache), no URLs or machine paths, every line a plain `name==version`."""
    lines = [ln.strip() for ln in (ROOT / "requirements.lock").read_text().splitlines()]
    pins = [ln for ln in lines if ln and not ln.startswith("#")]
    assert pins
    for ln in pins:
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(\[[\w,-]+\])?==[0-9][0-9A-Za-z.!]*", ln), \
            f"requirements.lock: {ln!r} is not a public name==version pin"
        assert "+" not in ln and "/" not in ln and "@" not in ln, ln
    for env in sorted((ROOT / "envs").glob("*.yaml")):
        assert "+cpu" not in env.read_text(), env
