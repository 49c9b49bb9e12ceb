"""scripts.hf_model.provenance: the code version a model was built from."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from scripts.hf_model.provenance import CODE_PATHS, git_commit

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git not installed")


def git(repo, *args):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_AUTHOR_NAME="t", GIT_AUTHOR_EMAIL="t@example.org", GIT_COMMITTER_NAME="t",
               GIT_COMMITTER_EMAIL="t@example.org", GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1")
    return subprocess.run(["git", *args], cwd=repo, env=env, check=True, capture_output=True, text=True).stdout


@pytest.fixture
def repo(tmp_path):
    """A private git repository laid out like the workflow, committed clean."""
    for name in CODE_PATHS:
        if name in ("rules", "scripts", "schemas"):
            (tmp_path / name).mkdir()
            (tmp_path / name / "x.txt").write_text("x\n")
        else:
            (tmp_path / name).write_text("x\n")
    git(tmp_path, "init", "-q")
    git(tmp_path, "add", "-A")
    git(tmp_path, "commit", "-q", "-m", "init")
    return tmp_path


def test_clean_tree_is_not_dirty(repo):
    info = git_commit(str(repo))
    assert info == {"commit": git(repo, "rev-parse", "HEAD").strip(), "dirty": False}


def test_an_untracked_module_in_scripts_makes_the_tree_dirty(repo):
    """A new, never added scripts/ module changes what runs: `git diff` alone would not show it."""
    (repo / "scripts" / "corpus").mkdir()
    (repo / "scripts" / "corpus" / "new_step.py").write_text("X = 1\n")
    assert git_commit(str(repo))["dirty"] is True


def test_untracked_files_outside_the_code_do_not_count(repo):
    (repo / "notes.txt").write_text("scratch\n")
    (repo / "hf_model").mkdir()
    (repo / "hf_model" / "m.bin").write_bytes(b"0")
    assert git_commit(str(repo))["dirty"] is False
    (repo / "config.yaml").write_text("changed\n")
    assert git_commit(str(repo))["dirty"] is True


def test_not_a_repository(tmp_path):
    assert git_commit(str(tmp_path)) == {"commit": None, "dirty": None}
