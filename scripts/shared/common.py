"""Shared helpers for every stage: atomic outputs, checked input reading, progress logs, stats.

Every script in ``scripts/`` is a thin CLI over importable functions and uses these helpers so
that the pipeline's guarantees hold in one place:

* outputs are written under a temporary name in the same directory and renamed on success
  (:func:`atomic_path`, :func:`atomic_dir`), so a killed job never leaves something that looks
  complete;
* compressed inputs are read with errors that name the file and line (:func:`iter_lines`);
* long stages log progress and throughput (:class:`Progress`) and a final summary line;
* per-stage counters go to a ``*.stats.json`` (:func:`write_json`).
"""

from __future__ import annotations

import bz2
import contextlib
import errno
import gzip
import json
import logging
import lzma
import os
import shutil
import sys
import time
import zlib
from pathlib import Path
from typing import Iterator

LOG = logging.getLogger("bertja")
MAX_LOGGED_SKIPS = 20


class InputError(Exception):
    """Bad input data; the message names the file and, where known, the line."""

    def __init__(self, path, message: str, line: int | None = None):
        where = f"{path}:{line}" if line is not None else f"{path}"
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


def setup_logging(level: int = logging.INFO) -> logging.Logger:
    """Log to stderr (rules redirect stderr to their ``log:`` file)."""
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    return LOG


# ---------------------------------------------------------------------------------------------
# Atomic outputs
# ---------------------------------------------------------------------------------------------


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def remove_stale_tmp(path: str | os.PathLike) -> list[Path]:
    """Remove the temporary names of ``path`` (``.name.tmp-PID``, file or directory) that a
    killed writer left: those whose PID is not a live process on this machine.

    Every atomic helper calls this before it writes ``path``, so the rerun of a SIGKILLed job
    cleans up after it (a 34 MB leftover of one killed sharding job, never read, otherwise
    stayed forever). A temporary name whose PID is alive is kept: it may be a concurrent
    writer. (A stale name whose PID has since been reused survives until a later rerun.)
    """
    path = Path(path)
    prefix = f".{path.name}.tmp-"
    removed: list[Path] = []
    try:
        entries = list(os.scandir(path.parent))
    except FileNotFoundError:
        return removed
    for e in entries:
        pid = e.name[len(prefix):]
        if not e.name.startswith(prefix) or not pid.isdigit() or _pid_alive(int(pid)):
            continue
        if e.is_dir(follow_symlinks=False):
            shutil.rmtree(e.path, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(e.path)
        removed.append(Path(e.path))
    if removed:
        LOG.info("removed stale temporary output(s) of killed jobs: %s", ", ".join(map(str, removed)))
    return removed


def fsync_path(path: str | os.PathLike) -> None:
    """Flush a file's (or a directory's entries') data to stable storage.

    A rename is atomic but not durable by itself: after a power loss the new name can point at
    a file whose data never reached the disk. So every atomic helper fsyncs the file before the
    rename and the directory after it. Filesystems that cannot fsync a directory are skipped.
    """
    is_dir = os.path.isdir(path)
    fd = os.open(path, os.O_RDONLY | (getattr(os, "O_DIRECTORY", 0) if is_dir else 0))
    try:
        os.fsync(fd)
    except OSError as e:
        if not is_dir and e.errno not in (errno.EINVAL, errno.ENOTSUP):
            raise
    finally:
        os.close(fd)


def _fsync_tree(root: Path) -> None:
    for dirpath, _, filenames in os.walk(root, topdown=False):
        for name in filenames:
            p = os.path.join(dirpath, name)
            if not os.path.islink(p):
                fsync_path(p)
        fsync_path(dirpath)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds.

    The temporary file is removed on any exception, so a failed or killed job leaves either the
    previous complete file or nothing (a SIGKILL may leave a hidden ``.name.tmp-PID`` file, which
    no rule ever reads and the next writer of ``path`` removes). The file is fsynced before the
    rename and its directory after it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path)
    tmp = _tmp_name(path)
    try:
        yield tmp
        fsync_path(tmp)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    fsync_path(path.parent)


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Like :func:`atomic_path` for a directory: build it under a temporary name, then rename
    (every file and directory in it fsynced before, the parent directory after)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_tmp(path)
    tmp = _tmp_name(path)
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        yield tmp
        _fsync_tree(tmp)
        if path.exists():
            shutil.rmtree(path)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fsync_path(path.parent)


class AtomicFiles(contextlib.ExitStack):
    """Open several output files at once; all are renamed into place only if all succeed
    (each fsynced before the renames, their directories after)."""

    def __init__(self):
        super().__init__()
        self._pairs: list[tuple[Path, Path]] = []

    def open(self, path, mode: str = "w", **kwargs):
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_tmp(path)
        tmp = _tmp_name(path)
        self._pairs.append((tmp, path))
        return self.enter_context(open(tmp, mode, **kwargs))

    def __exit__(self, exc_type, exc, tb):
        suppressed = super().__exit__(exc_type, exc, tb)  # closes every file first
        if exc_type is None:
            try:
                for tmp, _ in self._pairs:
                    fsync_path(tmp)
            except BaseException:
                self._remove_tmp()
                raise
            for tmp, path in self._pairs:
                os.replace(tmp, path)
            for parent in dict.fromkeys(path.parent for _, path in self._pairs):
                fsync_path(parent)
        else:
            self._remove_tmp()
        return suppressed

    def _remove_tmp(self):
        for tmp, _ in self._pairs:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()


def drop_snakemake_timestamp(directory: str | os.PathLike) -> bool:
    """Remove the ``.snakemake_timestamp`` that Snakemake writes into every ``directory()``
    output after its job, and give the directory that file's mtime (Snakemake takes a
    directory's own mtime when the file is absent, so staleness decisions do not change).
    True if there was one."""
    d = Path(directory)
    ts = d / ".snakemake_timestamp"
    try:
        st = ts.lstat()
    except (FileNotFoundError, NotADirectoryError):
        return False
    ts.unlink()
    os.utime(d, ns=(st.st_atime_ns, st.st_mtime_ns))
    return True


# ---------------------------------------------------------------------------------------------
# Reading inputs
# ---------------------------------------------------------------------------------------------


def open_binary(path: str | os.PathLike):
    """Open a possibly compressed file (by suffix: .gz, .xz, .bz2) for binary reading."""
    path = str(path)
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith(".xz"):
        return lzma.open(path, "rb")
    if path.endswith(".bz2"):
        return bz2.open(path, "rb")
    return open(path, "rb")


def iter_lines(path: str | os.PathLike, *, strip_newline: bool = True,
               on_bad_utf8: str = "error", stats: dict | None = None) -> Iterator[tuple[int, str]]:
    """Yield ``(line_number, text)`` for every line of a possibly compressed UTF-8 file.

    * A truncated or corrupt archive raises :class:`InputError` naming the file and the last line
      read, never a silently short stream.
    * Invalid UTF-8 raises :class:`InputError` with the line number (``on_bad_utf8="error"``) or,
      with ``on_bad_utf8="skip"``, skips the line and counts it in ``stats["bad_utf8_lines"]``.
    * CRLF line ends are normalised to LF; NUL bytes are removed, counted in
      ``stats["nul_bytes"]`` (lines: ``stats["nul_lines"]``) and logged with file:line (the
      first ones).
    """
    if stats is None:
        stats = {}
    lineno = 0
    try:
        with open_binary(path) as fh:
            for raw in fh:
                lineno += 1
                if b"\x00" in raw:
                    stats["nul_bytes"] = stats.get("nul_bytes", 0) + raw.count(b"\x00")
                    n = stats["nul_lines"] = stats.get("nul_lines", 0) + 1
                    if n <= MAX_LOGGED_SKIPS:
                        LOG.warning("%s:%d: removed %d NUL byte(s)%s", path, lineno, raw.count(b"\x00"),
                                    " (further ones are only counted)" if n == MAX_LOGGED_SKIPS else "")
                    raw = raw.replace(b"\x00", b"")
                try:
                    text = raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    if on_bad_utf8 == "skip":
                        n = stats["bad_utf8_lines"] = stats.get("bad_utf8_lines", 0) + 1
                        if n <= MAX_LOGGED_SKIPS:  # every skip is counted; the log names the first ones
                            LOG.warning("%s:%d: skipped line with invalid UTF-8 (%s)%s", path, lineno, e.reason,
                                        " (further ones are only counted)" if n == MAX_LOGGED_SKIPS else "")
                        continue
                    raise InputError(path, f"invalid UTF-8 at byte {e.start} ({e.reason})", lineno) from None
                if strip_newline:
                    text = text.rstrip("\n").rstrip("\r")
                yield lineno, text
    except (EOFError, lzma.LZMAError, zlib.error, gzip.BadGzipFile, OSError) as e:
        raise InputError(path, f"corrupt or truncated archive after line {lineno}: {e}", lineno + 1) from None


def read_blocks(path: str | os.PathLike, block_bytes: int = 1 << 20) -> Iterator[tuple[int, bytes]]:
    """Yield ``(first_line_number, bytes)`` blocks of about ``block_bytes`` whole lines of a
    (possibly compressed) file: the work units of the parallel stages.

    Decompression and cutting at line ends run in C in the calling process; decoding and the
    per-line work are left to the workers that get the blocks. A truncated or corrupt archive
    raises :class:`InputError` naming the file and the last line read.
    """
    lineno = 1  # number of the first line of the next block
    carry = b""
    pieces: list[bytes] = []  # decompressed data not yet cut into a block
    pending = 0  # bytes in pieces
    try:
        with open_binary(path) as fh:
            while True:
                # read1: one decompression step at a time, so the data decoded before a
                # truncation or corruption is never lost with the exception (the error then
                # names the last line actually read, not one a whole block earlier)
                piece = fh.read1(block_bytes)
                if not piece:
                    break
                pieces.append(piece)
                pending += len(piece)
                if pending < block_bytes:
                    continue
                data = carry + b"".join(pieces)
                pieces, pending = [], 0
                cut = data.rfind(b"\n") + 1
                if cut == 0:  # no line end yet: a very long line
                    carry = data
                    continue
                block, carry = data[:cut], data[cut:]
                yield lineno, block
                lineno += block.count(b"\n")
        data = carry + b"".join(pieces)
        pieces = []
        cut = data.rfind(b"\n") + 1
        if cut:
            yield lineno, data[:cut]
            lineno += data[:cut].count(b"\n")
        if data[cut:]:
            yield lineno, data[cut:]  # the last line has no line end
    except (EOFError, lzma.LZMAError, zlib.error, gzip.BadGzipFile, OSError) as e:
        last = lineno - 1 + carry.count(b"\n") + sum(p.count(b"\n") for p in pieces)
        raise InputError(path, f"corrupt or truncated archive after line {last}: {e}", last + 1) from None


# ---------------------------------------------------------------------------------------------
# Progress and stats
# ---------------------------------------------------------------------------------------------


class Progress:
    """Periodic progress lines with throughput: ``<what>: 1,234 docs, 12.3 MB (4.1 MB/s)``."""

    def __init__(self, what: str, unit: str = "items", every_s: float = 10.0, logger=None):
        self.what, self.unit, self.every_s = what, unit, every_s
        self.log = logger or LOG
        self.count = 0
        self.nbytes = 0
        self.start = time.monotonic()
        self._last = self.start

    def update(self, n: int = 1, nbytes: int = 0) -> None:
        self.count += n
        self.nbytes += nbytes
        now = time.monotonic()
        if now - self._last >= self.every_s:
            self._last = now
            self.log.info("%s: %s", self.what, self.summary())

    @property
    def elapsed(self) -> float:
        return max(time.monotonic() - self.start, 1e-9)

    def summary(self) -> str:
        mb = self.nbytes / 1e6
        size = f"{mb:,.1f} MB ({mb / self.elapsed:,.2f} MB/s), " if self.nbytes else ""
        return f"{self.count:,} {self.unit} ({self.count / self.elapsed:,.0f}/s), {size}{self.elapsed:,.1f} s"


def chunked(items, max_items: int, max_chars: int, size=len):
    """Group ``items`` into lists of at most ``max_items`` items or about ``max_chars`` characters
    (``size(item)`` each), in order: the work units of the parallel stages."""
    chunk, total = [], 0
    for item in items:
        chunk.append(item)
        total += size(item)
        if len(chunk) >= max_items or total >= max_chars:
            yield chunk
            chunk, total = [], 0
    if chunk:
        yield chunk


@contextlib.contextmanager
def process_pool(threads: int, initializer=None, initargs=()):
    """A fork process pool for ``threads > 1``, else ``None`` (the caller runs in-process).

    ``ProcessPoolExecutor`` rather than ``multiprocessing.Pool``: a worker that dies (e.g. killed
    for memory) fails the job (``BrokenProcessPool``) instead of hanging it, and an error in the
    main process shuts the workers down without the races of ``Pool.terminate``.
    """
    if threads <= 1:
        yield None
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor

    ex = ProcessPoolExecutor(threads, mp_context=mp.get_context("fork"), initializer=initializer,
                             initargs=initargs)
    try:
        yield ex
    finally:
        ex.shutdown(wait=True, cancel_futures=True)


def imap_ordered(pool, func, tasks, window: int = 0):
    """``map(func, tasks)`` in order; with a pool, at most ``window`` (default ``2 * workers +
    1``) tasks are in flight, so a lazily produced task stream is never read far ahead (the
    memory stays bounded whatever the input size)."""
    if pool is None:
        yield from map(func, tasks)
        return
    import collections

    window = window or 2 * pool._max_workers + 1
    pending: collections.deque = collections.deque()
    for task in tasks:
        pending.append(pool.submit(func, task))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def ordered_map(func, items, threads: int, initializer=None, initargs=(), window: int = 0):
    """Yield ``func(item)`` for every item, in input order, using ``threads`` processes (with
    ``threads <= 1`` everything runs in this process: same function, same results)."""
    if threads <= 1 and initializer is not None:
        initializer(*initargs)
    with process_pool(threads, initializer, initargs) as pool:
        yield from imap_ordered(pool, func, items, window)


def write_json(path: str | os.PathLike, obj) -> None:
    """Write ``obj`` as stable, sorted JSON, atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump(obj, fh, ensure_ascii=False, indent=2, sort_keys=True)
            fh.write("\n")


def peak_rss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def mecab_tagger(dic: str = "unidic_lite", extra: str = ""):
    """A ``MeCab.Tagger`` in wakati mode for a packaged dictionary (``unidic_lite``)."""
    import MeCab

    if dic == "unidic_lite":
        import unidic_lite

        dicdir = unidic_lite.DICDIR
    else:
        raise ValueError(f"unknown MeCab dictionary: {dic!r} (supported: unidic_lite)")
    rc = os.path.join(dicdir, "mecabrc")
    args = f'-r "{rc}" -d "{dicdir}" -Owakati {extra}'.strip()
    return MeCab.Tagger(args)


def run_cli(main, argv=None) -> None:
    """Run a stage's ``main(argv)``: bad input exits 2 with the file:line message, no traceback."""
    setup_logging()
    try:
        rc = main(argv)
    except InputError as e:
        LOG.error("%s", e)
        sys.exit(2)
    sys.exit(rc or 0)
