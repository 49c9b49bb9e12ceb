"""``hf_model/<name>/``: the converted model with a model card written from the run.

::

    python -m scripts.release.assemble --spec '{"model", "stages", "tokenizer", "corpora", "jglue"}' \\
        --build build/hf_model/<name> --output hf_model/<name> [--threads N]

The output directory is built under a temporary name and renamed whole: every file of the build
directory (hard links where the file system allows, else copies; hidden files and a build
``README.md`` left out), then ``card.json`` (:func:`scripts.release.facts.gather`: the facts, with
the parameter count and the fill-mask example from loading the model in the new directory) and
``README.md`` (:func:`scripts.release.card.model_card`). The spec is described in
:mod:`scripts.release.facts`.

*Decision: hard links.* The weights are the build's bytes (a model is not stored twice), and a
rebuilt conversion replaces its directory whole (new files), so it never changes a released
directory's files underneath it.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import shutil
from pathlib import Path

from scripts.release.card import model_card
from scripts.release.facts import gather
from scripts.shared.common import LOG, InputError, atomic_dir, run_cli, write_json

GENERATED = ("README.md", "card.json")


def link_or_copy(src: Path, dst: Path) -> str:
    """Hard-link ``src`` to ``dst`` (``"link"``), or copy it where links are impossible (``"copy"``)."""
    try:
        os.link(src, dst)
        return "link"
    except OSError as e:
        if e.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP, errno.EACCES):
            raise
        shutil.copy2(src, dst)
        return "copy"


def place_build(build: Path, out: Path) -> dict[str, str]:
    """Every file of the build directory into ``out`` (``{relative path: link|copy}``)."""
    how = {}
    for root, dirs, files in os.walk(build):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        rel = Path(root).relative_to(build)
        (out / rel).mkdir(exist_ok=True)
        for name in sorted(files):
            if name.startswith(".") or (rel == Path(".") and name in GENERATED):
                continue  # .snakemake_timestamp, temporary files; the card is written here
            how[str(rel / name)] = link_or_copy(Path(root) / name, out / rel / name)
    return how


def assemble(*, spec: dict, build: str, output: str, threads: int = 0) -> dict:
    build_dir = Path(build)
    if not (build_dir / "config.json").is_file():
        raise InputError(build, "not a converted model directory (no config.json)")
    if threads:
        import torch

        torch.set_num_threads(threads)
    with atomic_dir(output) as tmp:
        how = place_build(build_dir, tmp)
        facts = gather(spec, str(tmp), path=str(output))
        write_json(tmp / "card.json", facts)
        (tmp / "README.md").write_text(model_card(facts), encoding="utf-8")
        mask = os.umask(0)
        os.umask(mask)
        for name in GENERATED:
            (tmp / name).chmod(0o666 & ~mask)
    links = sum(v == "link" for v in how.values())
    LOG.info("wrote %s: %d files from %s (%d hard links, %d copies), card.json, README.md", output, len(how),
             build, links, len(how) - links)
    j = facts["jglue"]
    LOG.info("card: %s parameters; %d stage(s); JGLUE %s; fill-mask %r -> %s", f"{facts['architecture']['parameters']:,}",
             len(facts["stages"]), f"{sum(not r['skipped'] for r in j['tasks'])} task(s) scored" if j["evaluated"]
             else "not evaluated", facts["fill_mask"]["input"],
             ", ".join(p["token_str"] for p in facts["fill_mask"]["predictions"]))
    return facts


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", required=True, help="JSON object (scripts.release.facts)")
    ap.add_argument("--build", required=True, help="the converted model directory (build/hf_model/<name>)")
    ap.add_argument("--output", required=True, help="the released directory (hf_model/<name>)")
    ap.add_argument("--threads", type=int, default=0, help="torch threads for the fill-mask example (0: default)")
    a = ap.parse_args(argv)
    try:
        spec = json.loads(a.spec)
    except json.JSONDecodeError as e:
        raise InputError("--spec", f"invalid JSON: {e}") from None
    assemble(spec=spec, build=a.build, output=a.output, threads=a.threads)
    return 0


if __name__ == "__main__":
    run_cli(main)
