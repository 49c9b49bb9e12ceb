"""Bad-input catalogue entries not covered per stage elsewhere (see README "Failure behaviour")."""

from __future__ import annotations

import gzip
import json
import lzma
import subprocess
import sys

from conftest import ROOT, job_env


def run(module: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", f"scripts.{module}", *map(str, args)], cwd=ROOT, env=job_env(),
                          capture_output=True, text=True, timeout=600)


def test_a_10mb_single_line_in_cc100_is_processed_not_fatal(tmp_path):
    line = ("長い一行の文書です。" * 1_000_000)[: 10 * 2**20 // 3]  # ~10 MB of UTF-8 on one line
    text = "最初の文書です。\n\n" + line + "\n\n最後の文書です。\n\n"
    src = tmp_path / "ja.txt.xz"
    src.write_bytes(lzma.compress(text.encode("utf-8"), preset=0))
    out = tmp_path / "out"
    r = run("corpus.shard", "--input", src, "--format", "cc100", "--output-dir", out, "--num-shards", 1,
            "--seed", 0, "--stats", out / "s.json")
    assert r.returncode == 0, r.stderr
    assert (out / "corpus_01.txt").read_text(encoding="utf-8").count("\n\n") == 3


def test_a_10mb_wikipedia_page_is_processed(tmp_path):
    text = "これは非常に長い記事の文章です。" * (10 * 2**20 // 48)
    dump = tmp_path / "d.json.gz"
    with gzip.open(dump, "wt", encoding="utf-8") as fh:
        fh.write('{"index":{"_type":"_doc","_id":"1"}}\n')
        fh.write(json.dumps({"title": "長い", "namespace": 0, "text": text}, ensure_ascii=False) + "\n")
    r = run("corpus.wiki", "--input", dump, "--output", tmp_path / "c.txt.gz", "--stats", tmp_path / "s.json")
    assert r.returncode == 0, r.stderr
    stats = json.loads((tmp_path / "s.json").read_text())
    assert stats["sentences_written"] > 100_000


def test_an_empty_cc100_dump_is_an_error_naming_the_file(tmp_path):
    src = tmp_path / "ja.txt.xz"
    src.write_bytes(lzma.compress(b""))
    out = tmp_path / "out"
    r = run("corpus.shard", "--input", src, "--format", "cc100", "--output-dir", out, "--num-shards", 2,
            "--seed", 0, "--stats", out / "s.json")
    assert r.returncode == 2 and str(src) in r.stderr
    assert not list(out.glob("corpus_*.txt")) if out.exists() else True
