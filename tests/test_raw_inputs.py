"""Raw dumps: several files per corpus (a dump in parts) and digest verification before use.

scripts/corpus/raw_digest.py, the raw_sha256 rule as an input of corpus_wiki and of CC-100
sharding, `corpora.<c>.raw.path` as a list, and the registry checks that go with it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import lzma
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import ROOT, copy_workflow, job_env, pending, snakemake

from scripts.corpus import raw_digest
from scripts.shared import registry
from scripts.shared.common import InputError
from scripts.shared.formats import read_raw_digest

WIKI = ROOT / "sample" / "wikipedia" / "jawiki-sample-cirrussearch-content.json.gz"
CC100 = ROOT / "sample" / "cc-100" / "ja.txt.xz"


def sha(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def run_digest(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "scripts.corpus.raw_digest", *map(str, args)], cwd=ROOT,
                          env=job_env(), capture_output=True, text=True, timeout=120)


# ---------------------------------------------------------------------------------------------
# raw_digest.py
# ---------------------------------------------------------------------------------------------


def test_digest_of_several_files_in_order(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"first part\n")
    b.write_bytes(b"second part\n" * 3)
    out = tmp_path / "raw.sha256.json"
    r = run_digest("--input", b, a, "--output", out, "--sha256", sha(b), sha(a), "--size", b.stat().st_size,
                   a.stat().st_size)
    assert r.returncode == 0, r.stderr
    assert read_raw_digest(out) == [{"path": str(b), "sha256": sha(b), "size": 36},
                                    {"path": str(a), "sha256": sha(a), "size": 11}]
    assert json.loads(out.read_text())["files"][0]["path"] == str(b)
    assert "verified against the configured digest" in r.stderr
    from scripts.hf_model.provenance import build

    assert build([str(out)], {})["raw_inputs"] == read_raw_digest(out)  # every part reaches provenance


def test_wrong_digest_or_size_fails_naming_file_and_both_values(tmp_path):
    a, b = tmp_path / "a.bin", tmp_path / "b.bin"
    a.write_bytes(b"first part\n")
    b.write_bytes(b"second part\n")
    out = tmp_path / "raw.sha256.json"
    wrong = "0" * 64
    r = run_digest("--input", a, b, "--output", out, "--sha256", sha(a), wrong, "--size", 11, 99)
    assert r.returncode == 2
    assert f"{b}: does not match the configured digest: expected sha256 {wrong}, size 99; " \
           f"found sha256 {sha(b)}, size 12" in r.stderr
    assert f"{a}: does not match" not in r.stderr  # the good part is not reported
    assert not out.exists() and list(tmp_path.glob(".*tmp*")) == []
    with pytest.raises(InputError, match="size 5; found sha256"):
        raw_digest.digest_files([a], sizes=[5])
    r = run_digest("--input", a, b, "--output", out, "--sha256", sha(a))
    assert r.returncode != 0 and "--sha256: 1 value(s) for 2 --input file(s)" in r.stderr


# ---------------------------------------------------------------------------------------------
# Registry: raw.path lists, url, sha256/size lists, cleaning.mode
# ---------------------------------------------------------------------------------------------


def shipped_config() -> dict:
    return yaml.safe_load((ROOT / "config.yaml").read_text())


@pytest.mark.parametrize("raw, key, message", [
    ({"path": ["a.json.gz", "b.json.gz"], "url": "https://example.org/a.json.gz"},
     "corpora.sample-wikipedia.raw.url", "single-file dump only"),
    ({"path": ["a.json.gz", "b.json.gz"], "sha256": ["0" * 64]},
     "corpora.sample-wikipedia.raw.sha256", "has 1 values for the 2 files"),
    ({"path": ["a.json.gz", "b.json.gz"], "size": 3},
     "corpora.sample-wikipedia.raw.size", "must be a list of 2 values"),
    ({"path": "a.json.gz", "sha256": ["0" * 64]},
     "corpora.sample-wikipedia.raw.sha256", "must be a single value"),
    ({"path": ["a.json.gz", "./a.json.gz"]}, "corpora.sample-wikipedia.raw.path", "the same file twice"),
])
def test_registry_rejects_inconsistent_raw_entries(raw, key, message):
    cfg = shipped_config()
    cfg["corpora"]["sample-wikipedia"]["raw"] = {"format": "cirrussearch", **raw}
    registry.check_schema(cfg)  # each value alone is valid
    with pytest.raises(registry.ConfigError, match=f"config key '{key}': .*{message}"):
        registry.check(cfg)


def test_registry_rejects_recipe_mode_for_cc100():
    cfg = shipped_config()
    cfg["corpora"]["sample-cc-100"]["cleaning"] = {**cfg["corpora"]["sample-cc-100"]["cleaning"], "mode": "recipe"}
    with pytest.raises(registry.ConfigError, match="corpora.sample-cc-100.cleaning.mode"):
        registry.check(cfg)


def test_shipped_config_puts_the_recipe_corpora_on_recipe_mode():
    cfg = shipped_config()
    registry.check(cfg)
    assert cfg["corpora"]["wikipedia"]["cleaning"]["mode"] == "recipe"
    assert cfg["corpora"]["sample-wikipedia"]["cleaning"]["mode"] == "recipe"
    assert registry.raw_files({"path": "x"}) == ["x"] and registry.raw_files({"path": ["x", "y"]}) == ["x", "y"]


# ---------------------------------------------------------------------------------------------
# The workflow
# ---------------------------------------------------------------------------------------------


def override(tmp_path: Path, corpora: dict) -> Path:
    cfg = tmp_path / "override.yaml"
    cfg.write_text(yaml.safe_dump({"corpora": corpora}))
    return cfg


def test_wrong_digest_of_a_dump_on_disk_stops_the_run_before_any_corpus(tmp_path):
    """raw.sha256 configured, dump present (no download): the raw_sha256 job fails naming the
    file and both digests, and neither the cleaning nor the CC-100 sharding runs."""
    wd = copy_workflow(tmp_path / "wf")
    wrong = "ab" * 32
    cfg = override(tmp_path, {
        "sample-wikipedia": {"raw": {"sha256": wrong, "size": WIKI.stat().st_size}},
        "sample-cc-100": {"raw": {"sha256": sha(CC100), "size": CC100.stat().st_size + 1}},
    })
    proc = snakemake(wd, "--cores", "2", "--keep-going", "corpus/sample-wikipedia/corpus.txt.gz",
                     "corpus/sample-cc-100/corpus_01.txt", "--configfile", cfg, check=False)
    assert proc.returncode != 0
    log = (wd / "logs/corpus/raw_sha256/sample-wikipedia.log").read_text()
    dump = "sample/wikipedia/jawiki-sample-cirrussearch-content.json.gz"
    assert f"{dump}: does not match the configured digest: expected sha256 {wrong}" in log
    assert f"found sha256 {sha(WIKI)}, size {WIKI.stat().st_size}" in log
    log = (wd / "logs/corpus/raw_sha256/sample-cc-100.log").read_text()
    assert f"size {CC100.stat().st_size + 1}; found sha256 {sha(CC100)}, size {CC100.stat().st_size}" in log
    assert not (wd / "corpus/sample-wikipedia/corpus.txt.gz").exists()
    assert not (wd / "corpus/sample-wikipedia/raw.sha256.json").exists()
    assert not list((wd / "corpus").rglob("corpus_*.txt"))
    assert not (wd / "logs/corpus/corpus_wiki").exists()  # never started


def test_dump_in_parts_runs_through_the_workflow(tmp_path):
    """raw.path as a list: each part digested and verified, read in order; the same corpus as
    the one-file dump."""
    wd = copy_workflow(tmp_path / "wf")
    lines = gzip.decompress(WIKI.read_bytes()).split(b"\n")[:-1]
    half = len(lines) // 2 // 2 * 2  # a whole number of records
    parts = []
    for i, chunk in enumerate((lines[:half], lines[half:])):
        p = wd / "data" / "parts" / f"wiki-{i + 1}.json.gz"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(gzip.compress(b"\n".join(chunk) + b"\n", mtime=0))
        parts.append(p)
    cc_parts = []
    docs = lzma.decompress(CC100.read_bytes()).split(b"\n\n")
    for i, chunk in enumerate((docs[: len(docs) // 2], docs[len(docs) // 2:])):
        p = wd / "data" / "parts" / f"cc-{i + 1}.txt.xz"
        p.write_bytes(lzma.compress(b"\n\n".join(chunk).strip(b"\n") + b"\n\n"))
        cc_parts.append(p)
    rel = [str(p.relative_to(wd)) for p in parts]
    cc_rel = [str(p.relative_to(wd)) for p in cc_parts]
    cfg = override(tmp_path, {
        "sample-wikipedia": {"raw": {"path": rel, "sha256": [sha(p) for p in parts],
                                     "size": [p.stat().st_size for p in parts]}},
        "sample-cc-100": {"raw": {"path": cc_rel}},
    })
    snakemake(wd, "--cores", "2", "corpus/sample-wikipedia/corpus.txt.gz", "corpus/sample-cc-100/corpus_01.txt",
              "--configfile", cfg)
    assert read_raw_digest(wd / "corpus/sample-wikipedia/raw.sha256.json") == [
        {"path": r, "sha256": sha(p), "size": p.stat().st_size} for r, p in zip(rel, parts)]
    assert [f["path"] for f in read_raw_digest(wd / "corpus/sample-cc-100/raw.sha256.json")] == cc_rel
    stats = json.loads((wd / "corpus/sample-wikipedia/corpus.stats.json").read_text())
    assert stats["inputs"] == rel and stats["settings"]["mode"] == "recipe"
    # the same bytes as the whole dump gives
    from scripts.corpus import wiki

    ref = wiki.build_wiki_corpus(WIKI, tmp_path / "ref" / "corpus.txt.gz", mode="recipe")
    assert (wd / "corpus/sample-wikipedia/corpus.txt.gz").read_bytes() == (tmp_path / "ref" / "corpus.txt.gz").read_bytes()
    assert stats["sentences_written"] == ref["sentences_written"]
    shard_stats = json.loads((wd / "corpus/sample-cc-100/shards.stats.json").read_text())
    assert shard_stats["inputs"] == cc_rel
    # configuring the digests afterwards re-verifies the dump and rebuilds nothing from it
    targets = ["corpus/sample-wikipedia/corpus.txt.gz", "corpus/sample-cc-100/corpus_01.txt"]
    assert pending(wd, *targets, "--configfile", cfg) == set()
    cfg2 = override(tmp_path, {
        "sample-wikipedia": {"raw": {"path": rel, "sha256": [sha(p) for p in parts],
                                     "size": [p.stat().st_size for p in parts]}},
        "sample-cc-100": {"raw": {"path": cc_rel, "sha256": [sha(p) for p in cc_parts]}},
    })
    # a pin verifies, it changes no data: nothing is planned, and the pin is checked at once
    assert pending(wd, *targets, "--configfile", cfg2) == set()
    wrong = "cd" * 32
    cfg3 = override(tmp_path, {
        "sample-wikipedia": {"raw": {"path": rel}},
        "sample-cc-100": {"raw": {"path": cc_rel, "sha256": [sha(cc_parts[0]), wrong]}},
    })
    proc = snakemake(wd, "-n", *targets, "--configfile", cfg3, check=False)
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert (f"corpora.sample-cc-100.raw: {cc_rel[1]}: does not match the configured digest: expected sha256 "
            f"{wrong}") in err, err[-3000:]
    assert f"found sha256 {sha(cc_parts[1])}, size {cc_parts[1].stat().st_size}" in err


def test_missing_parts_are_all_named_before_any_job(tmp_path):
    wd = copy_workflow(tmp_path / "wf")
    cfg = override(tmp_path, {"sample-cc-100": {"raw": {"path": [
        "sample/cc-100/ja.txt.xz", "data/nowhere/part-2.txt.xz", "data/nowhere/part-3.txt.xz"]}}})
    proc = snakemake(wd, "-n", "corpus/sample-cc-100/corpus_01.txt", "--configfile", cfg, check=False)
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "2 of its 3 files do not exist: data/nowhere/part-2.txt.xz, data/nowhere/part-3.txt.xz" in err, err[-2000:]
    assert "corpora.sample-cc-100.raw.path" in err


def test_cleaning_waits_for_the_digest(tmp_path):
    """In the plan, corpus_wiki and the CC-100 sharding need raw.sha256.json."""
    wd = copy_workflow(tmp_path / "wf")
    dag = snakemake(wd, "--dag", "dot", "corpus/sample-wikipedia/corpus.txt.gz", "corpus/sample-cc-100/corpus_01.txt").stdout
    edges = [line for line in dag.splitlines() if "->" in line]
    labels = {}
    for line in dag.splitlines():
        if "[label" in line:
            node, rest = line.strip().split("[", 1)
            labels[node.strip()] = rest.split('label = "', 1)[1].split("\\n", 1)[0].split('"', 1)[0]
    pairs = {(labels[a.strip()], labels[b.strip().rstrip(";").strip()])
             for a, b in (e.strip().rstrip(";").split("->") for e in edges)}
    assert ("raw_sha256", "corpus_wiki") in pairs
    assert ("raw_sha256", "corpus_shards_sample_cc_100") in pairs
