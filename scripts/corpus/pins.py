"""Configured digests ("pins") of raw dumps, and how they are checked.

A pin (``corpora.<c>.raw.sha256`` / ``raw.size``) verifies a dump; it does not change any data,
so it is deliberately *not* a tracked param of a job: adding a pin for a dump that is already
digested must not rebuild the corpus, tokenizers, records and models that follow from it.
It is checked in two places, so that nothing is ever built from a dump that contradicts it:

* at DAG-build time (``rules/common.smk``), against ``corpus/<c>/raw.sha256.json`` when that
  digest is current (it names the same files, with their current sizes, and is newer than
  each of them) - :func:`recorded_mismatches`;
* otherwise by the ``raw_sha256`` job itself, which is then planned (the dump is new or changed)
  and which every corpus job of that dump waits for. The job reads the pins from the
  environment variable :data:`ENV` (a JSON object ``{corpus: {"sha256": [...], "size": [...]}}``)
  that the workflow sets when it is parsed, which happens again in every cluster job.
"""

from __future__ import annotations

import json
import os

ENV = "BERTJA_RAW_PINS"


def pins_of(raw: dict) -> dict:
    """``{"sha256": [...], "size": [...]}`` for one ``raw`` entry (one value per file; None where
    a file is not pinned); empty when nothing is pinned."""
    paths = raw["path"] if isinstance(raw["path"], list) else [raw["path"]]
    out = {}
    for key in ("sha256", "size"):
        if raw.get(key) is not None:
            values = raw[key] if isinstance(raw[key], list) else [raw[key]]
            if len(values) != len(paths):
                raise ValueError(f"raw.{key}: {len(values)} value(s) for {len(paths)} file(s)")
            out[key] = [None if v is None else (str(v).lower() if key == "sha256" else int(v)) for v in values]
    return out


def pins_env(corpora: dict) -> str:
    return json.dumps({c: p for c, v in corpora.items() if (p := pins_of(v["raw"]))}, sort_keys=True)


def pins_from_env(corpus: str, environ=os.environ) -> dict:
    try:
        return json.loads(environ.get(ENV, "{}")).get(corpus, {})
    except json.JSONDecodeError:
        raise ValueError(f"${ENV} is not valid JSON") from None


def mismatch(path: str, want_sha, want_size, sha: str, size: int) -> str | None:
    """The message for one file that contradicts its pin, or None."""
    if (want_sha is not None and want_sha.lower() != sha) or (want_size is not None and int(want_size) != size):
        return (f"{path}: does not match the configured digest: expected sha256 "
                f"{want_sha or '(not configured)'}, size "
                f"{want_size if want_size is not None else '(not configured)'}; found sha256 "
                f"{sha}, size {size}")
    return None


def recorded_mismatches(digest_path: str, paths: list[str], pins: dict) -> list[str] | None:
    """Check ``pins`` against a recorded digest. None when the record is missing or not current
    (the ``raw_sha256`` job will run and verify), else the list of mismatch messages."""
    from scripts.shared.formats import read_raw_digest

    if not pins or not os.path.exists(digest_path):
        return None
    try:
        files = read_raw_digest(digest_path)
    except Exception:  # an unreadable record is rebuilt by its job
        return None
    if [f["path"] for f in files] != list(paths):
        return None
    when = os.path.getmtime(digest_path)
    for f in files:
        if not os.path.exists(f["path"]) or os.path.getsize(f["path"]) != f["size"] \
                or os.path.getmtime(f["path"]) > when:
            return None
    sha = pins.get("sha256") or [None] * len(files)
    size = pins.get("size") or [None] * len(files)
    return [m for f, s, z in zip(files, sha, size) if (m := mismatch(f["path"], s, z, f["sha256"], f["size"]))]
