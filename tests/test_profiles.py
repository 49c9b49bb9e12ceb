"""Workflow profiles (profiles/*/config.yaml, tests/slurm/profile): they name existing rules and
resolve into the intended per-job resources.

A rule renamed in rules/*.smk would otherwise leave a set-resources/set-threads entry that
Snakemake silently ignores, and the cluster job would run with the defaults.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_workflow, snakemake, with_placeholder_dumps

PROFILES = sorted(ROOT.glob("profiles/*/config.yaml")) + [ROOT / "tests" / "slurm" / "profile" / "config.yaml"]
PROFILE_IDS = [str(p.parent.relative_to(ROOT)) for p in PROFILES]


@pytest.fixture(scope="module")
def rule_names() -> set[str]:
    out = snakemake(ROOT, "--list-rules").stdout
    # one rule per unindented line, its docstring (if any) after the name
    names = {line.split()[0] for line in out.splitlines() if line and not line[0].isspace()}
    assert {"train", "pretraining_data", "hf_model"} <= names, out
    return names


@pytest.fixture(scope="module")
def recipe_wd(tmp_path_factory) -> Path:
    """A copy of the workflow with empty placeholder files at the recipe's raw dump paths."""
    return with_placeholder_dumps(copy_workflow(tmp_path_factory.mktemp("profiles")))


def jobs(dry_run_output: str) -> list[dict]:
    """Per-job blocks of `snakemake -n` output: rule name, resources (as a dict), threads, shell."""
    out = []
    for block in re.split(r"\n(?=\[[^\]]+\]\n(?:local)?rule )", dry_run_output):
        m = re.search(r"^(?:local)?rule (\w+):$", block, re.M)
        if not m:
            continue
        res = re.search(r"^\s+resources: (.*)$", block, re.M)
        threads = re.search(r"^\s+threads: (\d+)$", block, re.M)
        shell = re.search(r"^Shell command: (.*)$", block, re.M)
        out.append({
            "rule": m.group(1),
            "resources": dict(kv.split("=", 1) for kv in res.group(1).split(", ")) if res else {},
            "threads": int(threads.group(1)) if threads else 1,
            "shell": shell.group(1) if shell else "",
        })
    return out


@pytest.mark.parametrize("profile", PROFILES, ids=PROFILE_IDS)
def test_profile_names_only_existing_rules(profile, rule_names):
    cfg = yaml.safe_load(profile.read_text())
    named = set(cfg.get("set-resources") or {}) | set(cfg.get("set-threads") or {})
    unknown = sorted(named - rule_names)
    assert not unknown, f"{profile.relative_to(ROOT)} names rules that do not exist: {unknown}"


@pytest.mark.parametrize("profile", PROFILES, ids=PROFILE_IDS)
def test_profile_configfiles_exist(profile):
    cfg = yaml.safe_load(profile.read_text())
    for name in [cfg["configfile"]] if isinstance(cfg.get("configfile"), str) else cfg.get("configfile") or []:
        assert (profile.parent / name).is_file(), name


def test_slurm_profile_plans_the_recipe_with_cluster_resources(recipe_wd):
    out = snakemake(recipe_wd, "--workflow-profile", "profiles/slurm", "-n",
                    "hf_model/bert-base-japanese-v3").stdout
    planned = jobs(out)
    by_rule: dict[str, list[dict]] = {}
    for j in planned:
        by_rule.setdefault(j["rule"], []).append(j)
    assert len(by_rule["pretraining_data"]) == 64 + 8 and len(by_rule["train"]) == 2

    # training: GPUs (with CPUs per GPU), the GPU partition, a long time limit
    for j in by_rule["train"]:
        r = j["resources"]
        assert r["gpu"] == "8" and r["cpus_per_gpu"] == "8", r
        assert r["slurm_partition"] == "SITE_GPU_PARTITION" and int(r["runtime"]) >= 24 * 60, r
        assert int(r["mem_mb"]) >= 64000, r
    # every other job: CPU partition, memory and a time limit from the profile
    for j in planned:
        if j["rule"] == "train":
            continue
        r = j["resources"]
        assert r.get("slurm_partition") == "SITE_CPU_PARTITION", j
        assert int(r["mem_mb"]) > 0 and int(r["runtime"]) > 0, j
        assert "gpu" not in r or r["gpu"] == "0", j
    assert {j["resources"]["mem_mb"] for j in by_rule["pretraining_data"]} == {"3500"}
    assert by_rule["wordpiece_vocab"][0]["resources"]["mem_mb"] == "16000"
    # the training runtime follows the GPU request (profiles/slurm/training.yaml)
    spec = " ".join(j["shell"] for j in by_rule["training_config"])
    assert '"num_gpus": 8' in spec and '"distribution_strategy": "mirrored"' in spec


def test_slurm_profile_threads(recipe_wd):
    # A dry run caps threads at --cores (default 1); give enough to see the profile's values.
    out = snakemake(recipe_wd, "--workflow-profile", "profiles/slurm", "-n", "--cores", "256",
                    "hf_model/bert-base-japanese-v3").stdout
    threads = {}
    for j in jobs(out):
        threads.setdefault(j["rule"], set()).add(j["threads"])
    assert threads["train"] == {32} and threads["pretraining_data"] == {4}
    assert threads["corpus_wiki"] == {8} and threads["wordpiece_vocab"] == {16}


def test_tpu_vm_profile_trains_on_the_tpu_with_checkpoints_on_gcs(recipe_wd):
    out = snakemake(recipe_wd, "--workflow-profile", "profiles/tpu-vm", "-n",
                    "hf_model/bert-base-japanese-v3").stdout
    by_rule = {}
    for j in jobs(out):
        by_rule.setdefault(j["rule"], []).append(j)
    spec = " ".join(j["shell"] for j in by_rule["training_config"])
    assert '"distribution_strategy": "tpu"' in spec and '"tpu": "local"' in spec
    assert '"mixed_precision_dtype": "bfloat16"' in spec
    for j in by_rule["train"]:
        assert "--stage-dir gs://BUCKET/bertja/model/wordpiece_unidic_lite/bert_base/training/" in j["shell"]
    # convert converts the checkpoint that the final stage's done.json names (a gs:// path there)
    assert "--checkpoint" not in by_rule["convert"][0]["shell"]
    assert "--done model/wordpiece_unidic_lite/bert_base/training/cc-100_wikipedia/done.json" in by_rule["convert"][0]["shell"]
    # and the card (rule hf_model) reads the stages' event files from there too
    assert '"done": "model/wordpiece_unidic_lite/bert_base/training/cc-100/done.json"' in by_rule["hf_model"][0]["shell"]


def test_local_profile_plans(recipe_wd):
    out = snakemake(recipe_wd, "--workflow-profile", "profiles/local", "-n",
                    "hf_model/bert-base-japanese-v3").stdout
    planned = jobs(out)
    assert len([j for j in planned if j["rule"] == "pretraining_data"]) == 72
    # --resources caps what a job may ask for: nothing above the profile's mem_mb / gpu
    for j in planned:
        assert int(j["resources"]["mem_mb"]) <= 60000, j
        assert int(j["resources"].get("gpu", 0)) <= 1, j
