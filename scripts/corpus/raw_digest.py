"""sha256 and size of a raw dump, streamed (``corpus/<c>/raw.sha256.json``, used in provenance)."""

from __future__ import annotations

import argparse
import hashlib
import os

from scripts.shared.common import LOG, Progress, run_cli, write_json


def sha256_file(path: str, chunk: int = 1 << 22, progress: Progress | None = None) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
            if progress:
                progress.update(0, len(block))
    return h.hexdigest()


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--input", required=True)
    ap.add_argument("--output", required=True)
    a = ap.parse_args(argv)
    prog = Progress(f"sha256 {a.input}", unit="files")
    digest = sha256_file(a.input, progress=prog)
    write_json(a.output, {"path": a.input, "sha256": digest, "size": os.path.getsize(a.input)})
    LOG.info("built %s: sha256 %s of %s (%s)", a.output, digest, a.input, prog.summary())
    return 0


if __name__ == "__main__":
    run_cli(main)
