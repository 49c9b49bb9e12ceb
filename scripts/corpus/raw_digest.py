"""sha256 and size of a corpus's raw dump files, streamed, and checked against the expected ones.

Usage::

    python -m scripts.corpus.raw_digest --input DUMP [DUMP ...] --output corpus/<c>/raw.sha256.json \\
        [--sha256 HEX [HEX ...]] [--size BYTES [BYTES ...]]

Writes ``corpus/<c>/raw.sha256.json`` (:func:`scripts.shared.formats.write_raw_digest`: one
``{path, sha256, size}`` entry per input file, in read order), which every model's provenance
records.  With ``--sha256`` and/or ``--size`` (one value per input, in the same order; from
``corpora.<c>.raw.sha256`` / ``raw.size``) every file is verified, whether it was downloaded or
put there by hand; the cleaning and sharding rules take this file as an input, so a mismatch
stops the run before anything is built from the dump.  A mismatch is an
:class:`~scripts.shared.common.InputError` naming the file, the expected and the actual sha256
and size (all mismatching files are reported together); no output is written then.
"""

from __future__ import annotations

import argparse
import hashlib
import os

from scripts.corpus import pins
from scripts.shared.common import LOG, InputError, Progress, run_cli
from scripts.shared.formats import write_raw_digest


def sha256_file(path: str, chunk: int = 1 << 22, progress: Progress | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
            if progress:
                progress.update(0, len(block))
    return h.hexdigest()


def digest_files(paths, sha256=None, sizes=None, progress: Progress | None = None) -> list[dict]:
    """``[{path, sha256, size}]`` of ``paths``; with expected ``sha256``/``sizes`` (lists of the
    same length, None entries not checked), raise :class:`InputError` on any mismatch."""
    paths = [str(p) for p in paths]
    for name, values in (("sha256", sha256), ("size", sizes)):
        if values is not None and len(values) != len(paths):
            raise ValueError(f"{len(values)} expected {name} value(s) for {len(paths)} file(s)")
    files, problems = [], []
    for i, path in enumerate(paths):
        if not os.path.isfile(path):
            raise InputError(path, "raw dump not found")
        size = os.path.getsize(path)
        digest = sha256_file(path, progress=progress)
        files.append({"path": path, "sha256": digest, "size": size})
        want_sha = sha256[i] if sha256 is not None else None
        want_size = sizes[i] if sizes is not None else None
        if (problem := pins.mismatch(path, want_sha, want_size, digest, size)) is not None:
            problems.append(problem)
        if progress:
            progress.update(1)
    if problems:
        raise InputError(
            ", ".join(paths),
            "raw dump verification failed (a wrong or damaged dump, or an outdated "
            "corpora.<c>.raw.sha256/size in the config):\n  " + "\n  ".join(problems))
    return files


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m scripts.corpus.raw_digest", description=__doc__.split("\n")[0])
    ap.add_argument("--input", required=True, nargs="+", action="extend", help="the raw dump file(s), in read order")
    ap.add_argument("--output", required=True)
    ap.add_argument("--sha256", nargs="+", action="extend", help="expected sha256 per input")
    ap.add_argument("--size", nargs="+", action="extend", type=int, help="expected size in bytes per input")
    ap.add_argument("--corpus", help=f"take the expected sha256/size of this corpus from ${pins.ENV} (set by the "
                                     "workflow; untracked on purpose, see scripts/corpus/pins.py)")
    a = ap.parse_args(argv)
    if a.corpus:
        pinned = pins.pins_from_env(a.corpus)
        a.sha256 = a.sha256 or pinned.get("sha256")
        a.size = a.size or pinned.get("size")
    for name, values in (("--sha256", a.sha256), ("--size", a.size)):
        if values is not None and len(values) != len(a.input):
            raise SystemExit(f"{name}: {len(values)} value(s) for {len(a.input)} --input file(s)")
    prog = Progress(f"sha256 {', '.join(a.input)}", unit="files")
    files = digest_files(a.input, a.sha256, a.size, progress=prog)
    write_raw_digest(a.output, files)
    verified = "verified against the configured digest" if (a.sha256 or a.size) else "not verified (none configured)"
    for f in files:
        LOG.info("sha256 %s, %s bytes: %s", f["sha256"], f"{f['size']:,}", f["path"])
    LOG.info("built %s: %d file(s), %s (%s)", a.output, len(files), verified, prog.summary())
    return 0


if __name__ == "__main__":
    run_cli(main)
