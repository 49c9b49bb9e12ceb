"""Every command that README.md shows runs as written, on a fresh copy of the workflow.

The README's fenced ``bash`` blocks are extracted line by line. The cheap commands (dry runs,
graphs, lint, activating the venv) run in a fresh workflow copy (no dumps, no outputs, the
repository's .venv linked in) through ``bash -o pipefail``, exactly as written; the expensive ones
are listed in ``EXPENSIVE`` with the reason they are skipped. A command in neither list fails
the test, so a new README command must be classified. ``python`` blocks need the built demo model
and are skipped (tests/test_e2e.py runs the same calls on it).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT, copy_workflow

README = ROOT / "README.md"

# Commands the test does not run, and why (a whole line of a bash block, without its comment).
EXPENSIVE = {
    "make demo": "builds the venv and the demo model (minutes); tests/test_e2e.py runs that build",
    "make test": "the whole test suite",
    "apt-get install graphviz": "installs a system package (needs root and the network)",
    "snakemake --cores 16 hf_model/bert-base-japanese-v3":
        "a real build of the full recipe (80 GB of dumps, weeks of training)",
    "snakemake --workflow-profile profiles/slurm hf_model/bert-base-japanese-v3 --configfile torch.yaml":
        "submits a full recipe model to SLURM GPU nodes (its dry run above is run)",
    ".venv/bin/pip install --force-reinstall --no-deps torch==2.13.0 --index-url https://download.pytorch.org/whl/cu128":
        "downloads a 2 GB CUDA wheel from PyTorch's index",
    "snakemake --workflow-profile profiles/slurm hf_model/bert-base-japanese-v3":
        "submits the full recipe to SLURM (tests/test_slurm.py runs the profile on a real single-node SLURM)",
}
# What a command must look like to be run here: nothing that builds, downloads or submits.
CHEAP = re.compile(r"^(source \.venv/bin/activate"
                   r"|snakemake(?=.*\s(-n|--dry-run|--rulegraph|--dag|--lint|--summary)(\s|$))\s.*"
                   r"|snakefmt --check .*"
                   r"|cat > [\w.-]+ <<'(?P<tag>\w+)'\n(?s:.*)\n(?P=tag))$")
LANGUAGES = {"": "text (diagrams, trees)", "bash": "commands", "python": "needs the built demo model"}


def fenced_blocks(text: str) -> list[tuple[str, list[str]]]:
    """``[(language, lines)]`` of every fenced block (also those indented in a list item)."""
    blocks, lang, lines, indent = [], None, [], ""
    for line in text.splitlines():
        m = re.match(r"^(\s*)```(\w*)\s*$", line)
        if lang is None and m:
            indent, lang, lines = m.group(1), m.group(2), []
        elif lang is not None and line.strip() == "```":
            blocks.append((lang, lines))
            lang = None
        elif lang is not None:
            lines.append(line[len(indent):] if line.startswith(indent) else line)
    assert lang is None, "unterminated code block in README.md"
    return blocks


def commands(line: str) -> str:
    """A bash line without its trailing comment (README comments follow two or more spaces)."""
    return re.split(r"\s+#\s", line, maxsplit=1)[0].strip()


def readme_commands() -> list[str]:
    blocks = fenced_blocks(README.read_text(encoding="utf-8"))
    unknown = {lang for lang, _ in blocks} - set(LANGUAGES)
    assert not unknown, f"README.md has code blocks in {unknown}: classify them in LANGUAGES"
    cmds = []
    for lang, lines in blocks:
        if lang != "bash":
            continue
        heredoc = None  # a here-document is one command with its lines
        for line in lines:
            if heredoc is not None:
                cmds[-1] += "\n" + line
                if line.strip() == heredoc:
                    heredoc = None
                continue
            c = commands(line)
            if c and not c.startswith("#"):
                cmds.append(c)
                m = re.search(r"<<-?'?(\w+)'?\s*$", c)
                heredoc = m.group(1) if m else None
    return cmds


def test_every_readme_command_is_classified():
    cmds = readme_commands()
    assert len(cmds) >= 8
    unclassified = [c for c in cmds if c not in EXPENSIVE and not CHEAP.match(c)]
    assert not unclassified, f"README commands neither run nor listed as expensive: {unclassified}"
    stale = [c for c in EXPENSIVE if c not in cmds]
    assert not stale, f"EXPENSIVE lists commands the README no longer shows: {stale}"


@pytest.fixture(scope="module")
def fresh_clone(tmp_path_factory) -> Path:
    """The workflow as a fresh clone has it: no raw dumps of the recipe, no outputs."""
    wd = copy_workflow(tmp_path_factory.mktemp("fresh"))
    (wd / "Makefile").write_text((ROOT / "Makefile").read_text())
    (wd / ".venv").symlink_to(ROOT / ".venv")
    assert not (wd / "data").exists()
    return wd


@pytest.mark.parametrize("cmd", list(dict.fromkeys(c for c in readme_commands() if c not in EXPENSIVE)))
def test_readme_command_runs_as_written(fresh_clone, cmd):
    if "| dot " in cmd and shutil.which("dot") is None:
        pytest.skip("graphviz's `dot` is not installed (the README's previous line installs it)")
    env = {k: v for k, v in os.environ.items() if k != "VIRTUAL_ENV"}
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    proc = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", f"source .venv/bin/activate\n{cmd}"],
                          cwd=fresh_clone, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, f"{cmd}\n{proc.stdout[-3000:]}\n{proc.stderr[-5000:]}"
    out = re.search(r">\s*(\S+\.svg)$", cmd)
    if out:
        svg = (fresh_clone / out.group(1)).read_text()
        assert "<svg" in svg and "hf_model" in svg, svg[:500]
    if " -n " in f" {cmd} ":
        assert "hf_model" in proc.stdout and "pretraining_data" in proc.stdout
    assert not (fresh_clone / "data").exists(), "a README dry run downloaded something"
