"""Download a raw dump over HTTP(S): resumable, verified, and renamed into place only when good.

::

    python -m scripts.download.fetch --url URL --output PATH [--sha256 HEX] [--size N]

* **Resumable.** Bytes go to ``PATH.part``. A later run (or a retry) continues from its end with
  a ``Range: bytes=N-`` request; a ``206`` answer is appended, a ``200`` (a server that ignores
  ``Range``) restarts the file from byte 0, a ``416`` on a part that already holds everything
  goes straight to verification.
* **Verified.** With ``--size`` / ``--sha256`` (``corpora.<c>.raw.size`` / ``.sha256`` in
  config.yaml) the finished ``.part`` is checked; a mismatch deletes it and fails naming both
  values, so the next run starts clean. The sha256 is computed while streaming (the existing
  prefix of a resumed part is read once), and always logged, so it can be pasted into config.
* **Atomic.** ``PATH`` appears (``os.replace``) only after verification; a killed job leaves at
  most the ``.part``, which no rule reads.
* **Transient errors** (connection reset or refused, timeouts, a short read, HTTP 408/429/5xx)
  are retried ``--retries`` times with exponential backoff; the count starts again whenever a
  try made progress, so a flaky but moving transfer of a 15 GB dump is not given up. Other HTTP
  errors (404, 403, ...) fail at once.
* **Progress** every ``--progress-every`` seconds: bytes, percent, MB/s and ETA; the last line is
  ``built PATH: N bytes, sha256 HEX``.

Only the standard library (urllib); ``file://`` URLs work too (no resume: always a full copy).
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import time
import urllib.error
import urllib.request
from pathlib import Path

from scripts.shared.common import LOG, run_cli

CHUNK = 1 << 20
TRANSIENT_HTTP = {408, 425, 429, 500, 502, 503, 504}
USER_AGENT = "bertja-download/1 (python-urllib)"


class DownloadError(Exception):
    """A download that cannot succeed as asked (bad checksum, HTTP 404, retries used up)."""


class _Transient(Exception):
    """An error worth retrying."""


def _fmt_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:,.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    return f"{n} B"


def _fmt_eta(seconds: float) -> str:
    seconds = int(seconds)
    h, rem = divmod(seconds, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s"


class _Progress:
    def __init__(self, total: int | None, every_s: float):
        self.total = total
        self.every_s = every_s
        self.start = time.monotonic()
        self.last = self.start
        self.session_bytes = 0  # bytes received by this process (the rate's numerator)

    def update(self, done: int, n: int, force: bool = False) -> None:
        self.session_bytes += n
        now = time.monotonic()
        if not force and now - self.last < self.every_s:
            return
        self.last = now
        rate = self.session_bytes / max(now - self.start, 1e-9)
        parts = [f"{_fmt_bytes(done)}"]
        if self.total:
            parts[0] += f" / {_fmt_bytes(self.total)} ({100 * done / self.total:.1f}%)"
        parts.append(f"{rate / 1e6:,.2f} MB/s")
        if self.total and rate > 0:
            parts.append(f"ETA {_fmt_eta((self.total - done) / rate)}")
        LOG.info("download: %s", ", ".join(parts))


class _Hash:
    """sha256 of the bytes in ``.part`` so far; re-read from the file whenever the two may
    differ (a part left by an earlier process, a write that failed halfway)."""

    def __init__(self):
        self.h, self.n = hashlib.sha256(), 0

    def update(self, block: bytes) -> None:
        self.h.update(block)
        self.n += len(block)

    def sync(self, path: Path) -> None:
        size = path.stat().st_size if path.exists() else 0
        if size == self.n:
            return
        self.h, self.n = hashlib.sha256(), 0
        if size:
            LOG.info("download: hashing the %s already in %s", _fmt_bytes(size), path)
            with open(path, "rb") as fh:
                while block := fh.read(CHUNK):
                    self.update(block)

    def hexdigest(self) -> str:
        return self.h.hexdigest()


def _content_range(value: str | None) -> tuple[int | None, int | None, int | None]:
    """``bytes START-END/TOTAL`` (or ``bytes */TOTAL``) -> (start, end, total); Nones if absent."""
    m = re.match(r"\s*bytes\s+(?:(\d+)-(\d+)|\*)/(\d+|\*)", value or "")
    if not m:
        return None, None, None
    start, end, total = m.groups()
    return (int(start) if start else None, int(end) if end else None,
            int(total) if total and total != "*" else None)


def _attempt(url: str, part: Path, hasher: _Hash, progress: _Progress, timeout: float) -> None:
    """One request: append to (or restart) ``part`` until the server's end of the file.

    Raises _Transient for errors worth retrying, DownloadError for the rest.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": USER_AGENT, "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:
            _, _, total = _content_range(e.headers.get("Content-Range"))
            if total == offset or (progress.total and progress.total == offset):
                LOG.info("download: %s already complete (%s); verifying", part, _fmt_bytes(offset))
                return
            LOG.warning("download: server refused range from byte %d (416); restarting from 0", offset)
            part.unlink()
            raise _Transient("range not satisfiable; restarting") from None
        if e.code in TRANSIENT_HTTP:
            raise _Transient(f"HTTP {e.code} {e.reason}") from None
        raise DownloadError(f"{url}: HTTP {e.code} {e.reason}") from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        if isinstance(e, urllib.error.URLError) and url.startswith("file:"):
            raise DownloadError(f"{url}: {reason}") from None
        raise _Transient(f"{type(e).__name__}: {reason}") from None

    with resp:
        status = getattr(resp, "status", None) or 200  # file:// responses have no status
        if status == 206:
            start, _, total = _content_range(resp.headers.get("Content-Range"))
            if start != offset:
                LOG.warning("download: asked for byte %d, server sent a range starting at %s; restarting",
                            offset, start)
                part.unlink()
                raise _Transient("unexpected Content-Range")
            mode = "ab"
        else:
            if offset:
                LOG.warning("download: server ignored the Range request (HTTP %d); restarting from byte 0",
                            status)
            offset, mode, total = 0, "wb", None
        length = resp.headers.get("Content-Length")
        expected_end = offset + int(length) if length and length.isdigit() else total
        if progress.total is None and expected_end:
            progress.total = expected_end
        if mode == "wb":
            part.unlink(missing_ok=True)
        hasher.sync(part)
        done = offset
        try:
            with open(part, mode) as fh:
                while True:
                    block = resp.read(CHUNK)
                    if not block:
                        break
                    fh.write(block)
                    hasher.update(block)
                    done += len(block)
                    progress.update(done, len(block))
                fh.flush()
                os.fsync(fh.fileno())
        except (OSError, http.client.HTTPException) as e:
            # the bytes written so far are kept (and hashed): the next try continues after them
            raise _Transient(f"connection lost after {_fmt_bytes(done)}: {type(e).__name__}: {e}") from None
        if expected_end is not None and done < expected_end:
            raise _Transient(f"connection closed at byte {done} of {expected_end}")


def download(url: str, output: str | os.PathLike, sha256: str | None = None, size: int | None = None,
             retries: int = 5, backoff: float = 2.0, timeout: float = 60.0, progress_every: float = 10.0) -> str:
    """Download ``url`` to ``output`` (see the module docstring); returns the sha256."""
    output = Path(output)
    output.parent.mkdir(parents=True, exist_ok=True)
    part = output.with_name(output.name + ".part")
    if part.exists():
        LOG.info("download: resuming %s from byte %d", part, part.stat().st_size)
    if size is not None and part.exists() and part.stat().st_size > size:
        LOG.warning("download: %s is larger than the expected %d bytes; restarting", part, size)
        part.unlink()
    progress = _Progress(size, progress_every)
    hasher = _Hash()
    failures = 0
    while True:
        before = part.stat().st_size if part.exists() else 0
        try:
            _attempt(url, part, hasher, progress, timeout)
            break
        except _Transient as e:
            after = part.stat().st_size if part.exists() else 0
            failures = 1 if after > before else failures + 1
            if failures > retries:
                kept = f" ({part} kept: {after} bytes; rerun to resume)" if after else ""
                raise DownloadError(f"{url}: giving up after {retries} retries without progress: {e}{kept}") from None
            delay = min(backoff * 2 ** (failures - 1), 300)
            LOG.warning("download: %s; retry %d/%d in %.1f s from byte %d", e, failures, retries, delay, after)
            time.sleep(delay)

    got_size = part.stat().st_size
    hasher.sync(part)
    digest = hasher.hexdigest()
    progress.update(got_size, 0, force=True)
    problems = []
    if size is not None and got_size != size:
        problems.append(f"size {got_size} bytes, expected {size}")
    if sha256 is not None and digest != sha256.lower():
        problems.append(f"sha256 {digest}, expected {sha256.lower()}")
    if problems:
        part.unlink()
        raise DownloadError(f"{url}: downloaded file is not the expected one: {'; '.join(problems)}. "
                            f"Deleted {part}; check corpora.<name>.raw.sha256/size in the config, then rerun.")
    os.replace(part, output)
    return digest


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--output", required=True)
    ap.add_argument("--sha256", help="expected sha256 (hex); a mismatch fails and deletes the download")
    ap.add_argument("--size", type=int, help="expected size in bytes")
    ap.add_argument("--retries", type=int, default=5, help="retries of a transient error without progress")
    ap.add_argument("--backoff", type=float, default=2.0, help="first retry delay in seconds (doubles)")
    ap.add_argument("--timeout", type=float, default=60.0, help="socket timeout in seconds")
    ap.add_argument("--progress-every", type=float, default=10.0, help="seconds between progress lines")
    a = ap.parse_args(argv)
    if a.sha256 is not None and not re.fullmatch(r"[0-9a-fA-F]{64}", a.sha256):
        ap.error("--sha256 must be 64 hex digits")
    t0 = time.monotonic()
    try:
        digest = download(a.url, a.output, a.sha256, a.size, a.retries, a.backoff, a.timeout, a.progress_every)
    except DownloadError as e:
        LOG.error("%s", e)
        return 1
    n = os.path.getsize(a.output)
    secs = time.monotonic() - t0
    LOG.info("built %s: %d bytes, sha256 %s (%.1f s, %.2f MB/s this run)", a.output, n, digest, secs,
             n / 1e6 / max(secs, 1e-9))
    return 0


if __name__ == "__main__":
    run_cli(main)
