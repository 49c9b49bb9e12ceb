"""scripts/download/fetch.py against a local HTTP server (127.0.0.1, ephemeral port, in a thread).

The server serves fixture bytes with Range support and can misbehave on request: drop the
connection after N bytes, ignore Range (answer 200 with the whole file), or fail with a status.
Every request's Range header is recorded, so the tests can see what the client asked for.
"""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from conftest import ROOT

PAYLOAD = os.urandom(3 * (1 << 20) + 12345)  # a bit more than 3 chunks of the client's 1 MiB
SHA = hashlib.sha256(PAYLOAD).hexdigest()


class Behaviour:
    def __init__(self):
        self.files: dict[str, bytes] = {"/dump.bin": PAYLOAD}
        self.requests: list[dict] = []
        self.drop_after: list[int] = []      # per request, in order: close after this many bytes
        self.ignore_range = False
        self.statuses: list[int] = []        # per request, in order: answer with this error status
        self.lock = threading.Lock()


class Handler(http.server.BaseHTTPRequestHandler):
    behaviour: Behaviour  # set per server
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):  # quiet
        pass

    def do_GET(self):
        b = self.behaviour
        with b.lock:
            b.requests.append({"path": self.path, "range": self.headers.get("Range")})
            status = b.statuses.pop(0) if b.statuses else None
            drop = b.drop_after.pop(0) if b.drop_after else None
        if status:
            self.send_error(status)
            return
        data = b.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = 0
        m = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if m and not b.ignore_range:
            start = int(m.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        if drop is not None:
            self.wfile.write(body[:drop])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(body)


@pytest.fixture
def server():
    behaviour = Behaviour()
    handler = type("BoundHandler", (Handler,), {"behaviour": behaviour})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    behaviour.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield behaviour
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


def download(url, output, *extra, timeout=60):
    cmd = [sys.executable, "-m", "scripts.download.fetch", "--url", url, "--output", str(output),
           "--backoff", "0.05", "--timeout", "5", *map(str, extra)]
    env = dict(os.environ, PYTHONPATH=str(ROOT), NO_PROXY="*", no_proxy="*")
    for k in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy"):
        env.pop(k, None)
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def test_good_download_is_verified_and_logged(server, tmp_path):
    out = tmp_path / "data" / "dump.bin"
    proc = download(f"{server.url}/dump.bin", out, "--sha256", SHA, "--size", len(PAYLOAD),
                    "--progress-every", "0")
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == PAYLOAD
    assert not out.with_name("dump.bin.part").exists()
    assert f"built {out}: {len(PAYLOAD)} bytes, sha256 {SHA}" in proc.stderr
    assert re.search(r"MB/s, ETA \d+m\d\ds", proc.stderr), proc.stderr  # progress lines
    assert [r["range"] for r in server.requests] == [None]


def test_wrong_checksum_fails_and_leaves_no_file(server, tmp_path):
    out = tmp_path / "dump.bin"
    proc = download(f"{server.url}/dump.bin", out, "--sha256", "0" * 64)
    assert proc.returncode == 1
    assert "sha256" in proc.stderr and SHA in proc.stderr and "0" * 64 in proc.stderr
    assert not out.exists() and not out.with_name("dump.bin.part").exists()
    assert "Traceback" not in proc.stderr


def test_wrong_size_fails(server, tmp_path):
    out = tmp_path / "dump.bin"
    proc = download(f"{server.url}/dump.bin", out, "--size", len(PAYLOAD) + 1)
    assert proc.returncode == 1 and f"expected {len(PAYLOAD) + 1}" in proc.stderr
    assert not out.exists() and not out.with_name("dump.bin.part").exists()


def test_interrupted_transfer_resumes_from_the_part_on_rerun(server, tmp_path):
    out = tmp_path / "dump.bin"
    part = out.with_name("dump.bin.part")
    cut = len(PAYLOAD) // 2 + 7
    server.drop_after = [cut]
    first = download(f"{server.url}/dump.bin", out, "--sha256", SHA, "--retries", 0)
    assert first.returncode == 1, first.stderr
    assert not out.exists()
    assert part.read_bytes() == PAYLOAD[:cut]  # the bytes received so far are kept
    assert "rerun to resume" in first.stderr

    second = download(f"{server.url}/dump.bin", out, "--sha256", SHA)
    assert second.returncode == 0, second.stderr
    assert out.read_bytes() == PAYLOAD and not part.exists()
    assert [r["range"] for r in server.requests] == [None, f"bytes={cut}-"]
    assert f"sha256 {SHA}" in second.stderr


def test_drops_are_retried_within_one_run(server, tmp_path):
    out = tmp_path / "dump.bin"
    server.drop_after = [1000, 1 << 20, 5]  # three drops, each after some progress
    proc = download(f"{server.url}/dump.bin", out, "--sha256", SHA, "--retries", 2)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == PAYLOAD
    ranges = [r["range"] for r in server.requests]
    assert ranges == [None, "bytes=1000-", f"bytes={1000 + (1 << 20)}-", f"bytes={1005 + (1 << 20)}-"]


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    out = tmp_path / "dump.bin"
    part = out.with_name("dump.bin.part")
    stale = b"stale bytes that are not the file's beginning"
    part.write_bytes(stale)
    server.ignore_range = True
    proc = download(f"{server.url}/dump.bin", out, "--sha256", SHA)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == PAYLOAD
    assert [r["range"] for r in server.requests] == [f"bytes={len(stale)}-"]
    assert "ignored the Range request" in proc.stderr


def test_complete_part_is_only_verified(server, tmp_path):
    out = tmp_path / "dump.bin"
    out.with_name("dump.bin.part").write_bytes(PAYLOAD)
    proc = download(f"{server.url}/dump.bin", out, "--sha256", SHA)
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == PAYLOAD
    assert "already complete" in proc.stderr


def test_transient_status_is_retried_and_404_is_not(server, tmp_path):
    server.statuses = [503, 502]
    ok = download(f"{server.url}/dump.bin", tmp_path / "a.bin", "--retries", 3)
    assert ok.returncode == 0, ok.stderr
    assert len(server.requests) == 3 and "HTTP 503" in ok.stderr

    server.requests.clear()
    missing = download(f"{server.url}/nope.bin", tmp_path / "b.bin", "--retries", 3)
    assert missing.returncode == 1 and "HTTP 404" in missing.stderr
    assert len(server.requests) == 1
    assert not (tmp_path / "b.bin").exists()


def test_retries_are_bounded_when_nothing_arrives(server, tmp_path):
    server.statuses = [503] * 10
    proc = download(f"{server.url}/dump.bin", tmp_path / "a.bin", "--retries", 2)
    assert proc.returncode == 1 and "giving up after 2 retries" in proc.stderr
    assert len(server.requests) == 3


def test_file_url(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(PAYLOAD[:5000])
    out = tmp_path / "out.bin"
    proc = download(src.as_uri(), out, "--sha256", hashlib.sha256(PAYLOAD[:5000]).hexdigest())
    assert proc.returncode == 0, proc.stderr
    assert out.read_bytes() == PAYLOAD[:5000]


# ---------------------------------------------------------------------------------------------
# Rule download_raw in the workflow (rules/download.smk, once the Snakefile includes it)
# ---------------------------------------------------------------------------------------------

WIRED = 'include: "rules/download.smk"' in (ROOT / "Snakefile").read_text()
needs_wiring = pytest.mark.skipif(not WIRED, reason="rules/download.smk is not included in the Snakefile yet")
SAMPLE_DUMP = ROOT / "sample" / "cc-100" / "ja.txt.xz"


def _override(tmp_path, raw: dict) -> Path:
    import yaml

    cfg = tmp_path / "override.yaml"
    cfg.write_text(yaml.safe_dump({"download_missing_dumps": True, "corpora": {"sample-cc-100": {"raw": raw}}}))
    return cfg


@needs_wiring
def test_recipe_dumps_with_a_url_are_planned_as_downloads(tmp_path):
    from conftest import copy_workflow, snakemake
    from test_workflow import job_stats

    wd = copy_workflow(tmp_path / "wf")
    out = snakemake(wd, "-n", "--quiet", "rules", "--config", "download_missing_dumps=True", "--",
                    "hf_model/bert-base-japanese-v3").stdout
    stats = job_stats(out)
    assert stats["download_raw"] == 2 and stats["raw_sha256"] == 2, stats


@needs_wiring
def test_download_rule_fetches_verifies_and_feeds_the_dag(server, tmp_path):
    from conftest import copy_workflow, pending, snakemake

    data = SAMPLE_DUMP.read_bytes()
    server.files["/cc-100/ja.txt.xz"] = data
    wd = copy_workflow(tmp_path / "wf")
    # a url alone (as in config.yaml for the recipe dumps): downloaded, not verified
    plain = _override(tmp_path, {"path": "data/plain/ja.txt.xz", "url": f"{server.url}/cc-100/ja.txt.xz"})
    snakemake(wd, "--cores", "1", "data/plain/ja.txt.xz", "--configfile", plain)
    assert (wd / "data/plain/ja.txt.xz").read_bytes() == data
    # with sha256 and size: verified, and the dump feeds the DAG
    cfg = _override(tmp_path, {"path": "data/sample-dl/ja.txt.xz", "url": f"{server.url}/cc-100/ja.txt.xz",
                               "sha256": hashlib.sha256(data).hexdigest(), "size": len(data)})
    target = "corpus/sample-cc-100/raw.sha256.json"
    snakemake(wd, "--cores", "1", target, "--configfile", cfg)
    assert (wd / "data/sample-dl/ja.txt.xz").read_bytes() == data
    log = (wd / "logs/download/data/sample-dl/ja.txt.xz.log").read_text()
    assert f"built data/sample-dl/ja.txt.xz: {len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()}" in log
    assert any((wd / "logs/benchmarks/download").rglob("*.tsv"))
    assert '"path": "data/sample-dl/ja.txt.xz"' in (wd / target).read_text()
    assert pending(wd, target, "--configfile", cfg) == set()  # nothing to redo

    # a wrong checksum in config: the job fails, no dump appears, nothing downstream runs
    (wd / "data/sample-dl/ja.txt.xz").unlink()
    bad = _override(tmp_path, {"path": "data/sample-dl/ja.txt.xz", "url": f"{server.url}/cc-100/ja.txt.xz",
                               "sha256": "0" * 64})
    proc = snakemake(wd, "--cores", "1", "--retries", "0", "data/sample-dl/ja.txt.xz", "--configfile", bad,
                     check=False)
    assert proc.returncode != 0
    assert not (wd / "data/sample-dl/ja.txt.xz").exists()
    assert not (wd / "data/sample-dl/ja.txt.xz.part").exists()
    assert "0" * 64 in (wd / "logs/download/data/sample-dl/ja.txt.xz.log").read_text()


def test_missing_dump_without_url_fails_before_any_job(tmp_path):
    from conftest import copy_workflow, snakemake

    wd = copy_workflow(tmp_path / "wf")
    cfg = _override(tmp_path, {"path": "data/nowhere/ja.txt.xz"})
    proc = snakemake(wd, "-n", "corpus/sample-cc-100/corpus_01.txt", "--configfile", cfg, check=False)
    err = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "is missing" in err and "data/nowhere/ja.txt.xz" in err, err[-2000:]
    assert not (wd / "corpus").exists()
