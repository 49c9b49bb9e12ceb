"""Workflow-level checks that need no data: plans, lint, config validation, env files."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import RECIPE_DUMPS, ROOT, copy_workflow, pending, snakemake, with_placeholder_dumps
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
    # issue 11 §3: values that passed validation and failed later (the full key is named)
    ("corpora.sample-cc-100.num_shards", 4.0, "'corpora.sample-cc-100.num_shards': 4.0 is a float"),
    ("tokenizers.sample_wordpiece_unidic_lite.vocab_size", 8192.0,
     "'tokenizers.sample_wordpiece_unidic_lite.vocab_size': 8192.0 is a float"),
    ("architectures.bert_tiny.type_vocab_size", 1, "'architectures.bert_tiny.type_vocab_size'"),
    ("tokenizers.sample_wordpiece_unidic_lite.wordpieces_prefix", "@@",
     "'tokenizers.sample_wordpiece_unidic_lite.wordpieces_prefix'"),
    ("models.bert-tiny-japanese-sample.stages.0.summary_interval", 15,
     "'models.bert-tiny-japanese-sample.stages[0].summary_interval'"),
    ("training.distribution_strategy", "tpu", "'training.tpu'"),
    ("alphabets.unidic_lite.lex_file", "no/such/lex.csv", "'alphabets.unidic_lite.lex_file'"),
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


# ---------------------------------------------------------------------------------------------
# issue 11: config problems found before any job, name clashes, job environment, model dirs
# ---------------------------------------------------------------------------------------------


def test_corpora_whose_rule_names_collide_are_rejected_naming_the_key(tmp_path):
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    cfg["corpora"]["sample_cc_100"] = cfg["corpora"]["sample-cc-100"]
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg, allow_unicode=True))
    proc = snakemake(tmp_path, "-s", ROOT / "Snakefile", "-n", "--configfile", bad, "--replace-workflow-config",
                     check=False)
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "config key 'corpora.sample_cc_100'" in err and "corpus_shards_sample_cc_100" in err, err[-3000:]


def test_duplicate_config_keys_are_rejected_naming_file_and_line(tmp_path):
    """In the workflow's own config.yaml (loaded by `configfile:`) and in a --configfile."""
    wd = copy_workflow(tmp_path / "wf")
    text = (wd / "config.yaml").read_text()
    lines = text.splitlines()
    first = next(i for i, ln in enumerate(lines) if ln.startswith("seed:")) + 1
    (wd / "config.yaml").write_text(text + "\nseed: 7\n")
    dup_line = len(lines) + 2
    proc = snakemake(wd, "-n", check=False)
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert f"config.yaml:{dup_line}: duplicate key 'seed' (first at line {first})" in err, err[-3000:]

    extra = tmp_path / "extra.yaml"
    extra.write_text("training:\n  num_gpus: 0\n  num_gpus: 2\n")
    (wd / "config.yaml").write_text(text)
    proc = snakemake(wd, "-n", "--configfile", extra, check=False)
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0 and f"{extra}:3: duplicate key 'training.num_gpus'" in err, err[-3000:]


def test_an_edit_of_the_lex_file_reruns_the_alphabet(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    (wd / "lex.csv").write_text("亜,1,1,1,名詞\n")
    cfg = yaml.safe_load((wd / "config.yaml").read_text())
    cfg["alphabets"]["unidic_lite"]["lex_file"] = "lex.csv"
    (wd / "config.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True))
    target = "tokenizers/alphabet/unidic_lite.txt"
    dry = snakemake(wd, "-n", target).stdout
    assert "input: lex.csv" in dry, dry
    (wd / target).parent.mkdir(parents=True)
    (wd / target).write_text("亜\n")
    snakemake(wd, "--cores", "1", "--touch", target)
    assert pending(wd, target) == set()
    (wd / "lex.csv").write_text("亜,1,1,1,名詞\n伊,1,1,1,名詞\n")
    assert pending(wd, target) == {target}


def test_jobs_run_under_snakemakes_interpreter_without_an_activated_venv(tmp_path):
    """`.venv/bin/snakemake` with a PATH that lacks the venv (and has another `python` first)."""
    import os
    import stat
    import subprocess

    from conftest import SNAKEMAKE

    wd = copy_workflow(tmp_path / "wf")
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "python").write_text("#!/bin/sh\necho \"not the venv's python\" >&2\nexit 3\n")
    (fake / "python").chmod(stat.S_IRWXU)
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH", "PYTHONHOME")}
    env["PATH"] = os.pathsep.join([str(fake), "/usr/bin", "/bin"])
    target = "corpus/sample-cc-100/raw.sha256.json"
    proc = subprocess.run([SNAKEMAKE, "--cores", "1", target], cwd=wd, env=env, capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    assert (wd / target).is_file()


def test_model_dirs_lose_snakemakes_timestamp_file_but_not_its_time(tmp_path):
    import os

    wd = copy_workflow(tmp_path / "wf")
    models = [wd / "hf_model" / "bert-tiny-japanese-sample", wd / "build" / "hf_model" / "bert-tiny-japanese-sample"]
    for model in models:  # the released directory and the conversion's build directory
        model.mkdir(parents=True)
        (model / "config.json").write_text("{}")
        ts = model / ".snakemake_timestamp"
        ts.write_text("")
        os.utime(ts, (1_700_000_000, 1_700_000_000))
    snakemake(wd, "-n")
    for model in models:
        assert sorted(p.name for p in model.iterdir()) == ["config.json"]
        assert os.stat(model).st_mtime == 1_700_000_000


def test_provenance_records_corpus_cleaning_shards_and_sample_size(placeholder_wd):
    """The hf_model job's card JSON (its tracked param, written into provenance.json)."""
    import json
    import shlex

    out = snakemake(placeholder_wd, "-n", "-p", "--", "hf_model/bert-base-japanese-v3").stdout
    line = next(ln for ln in out.splitlines() if "scripts.hf_model.convert" in ln)
    args = shlex.split(line.split("Shell command:", 1)[-1])
    card = json.loads(args[args.index("--card-json") + 1])
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text())
    for c in ("cc-100", "wikipedia"):
        facts = card["corpora"][c]
        assert facts["num_shards"] == cfg["corpora"][c]["num_shards"]
        assert facts["cleaning"] == cfg["corpora"][c]["cleaning"]
    assert card["corpora"]["wikipedia"]["sample_lines"] == cfg["corpora"]["wikipedia"]["sample_lines"]
