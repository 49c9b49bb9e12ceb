"""The layout shows the pipeline: one package per stage, imports only down the DAG, no CLI imports.

Stage order is the DAG's: a module may import ``scripts.shared`` and the modules of its own or
an earlier stage (the readers of their formats), never a later stage, and never a module that is
a CLI (has an ``if __name__ == "__main__"`` block). ``scripts.tools`` (developer tools) may import
anything and nothing imports it.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from scripts.shared.registry import SCRIPTS_DIR, local_imports

ROOT = SCRIPTS_DIR.parent
STAGES = ["shared", "download", "corpus", "tokenizers", "pretraining_data", "training", "hf_model", "eval",
          "release", "report"]


def modules():
    for path in sorted(SCRIPTS_DIR.rglob("*.py")):
        rel = path.relative_to(SCRIPTS_DIR).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            yield ".".join(parts), path


def is_cli(path: Path) -> bool:
    return '__name__ == "__main__"' in path.read_text(encoding="utf-8")


def rank(mod: str) -> int:
    top = mod.split(".")[0]
    return len(STAGES) + 1 if top == "tools" else STAGES.index(top)


def import_violations(scripts_dir: Path = SCRIPTS_DIR) -> list[str]:
    bad = []
    for mod, path in modules():
        top = mod.split(".")[0]
        if top != "tools" and top not in STAGES:
            bad.append(f"scripts/{top}/ is not a stage package (known: {', '.join(STAGES)}, tools)")
            continue
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for dep in sorted(local_imports(tree, scripts_dir, package)):
            dep_path = next((p for m, p in modules() if m == dep), None)
            if dep.split(".")[0] == "tools" and top != "tools":
                bad.append(f"{mod} imports the developer tool {dep}")
            elif rank(dep) > rank(mod):
                bad.append(f"{mod} imports {dep}, a later stage")
            elif dep_path is not None and is_cli(dep_path) and dep != mod:
                bad.append(f"{mod} imports {dep}, which is a CLI")
    return bad


def test_every_module_is_in_a_stage_package_and_imports_point_down_the_dag():
    assert not list(SCRIPTS_DIR.glob("*.py")) or [p.name for p in SCRIPTS_DIR.glob("*.py")] == ["__init__.py"]
    assert import_violations() == []


def test_the_import_check_catches_a_wrong_way_import(tmp_path, monkeypatch):
    tree = ast.parse("from scripts.hf_model.convert import convert\n")
    deps = local_imports(tree, SCRIPTS_DIR, "corpus")
    assert deps == {"hf_model.convert"}
    assert rank("hf_model.convert") > rank("corpus.wiki")
    assert is_cli(SCRIPTS_DIR / "hf_model" / "convert.py")


@pytest.mark.parametrize("smk", sorted((ROOT / "rules").glob("*.smk")))
def test_rules_call_stage_modules_of_their_own_stage(smk):
    """`python -m scripts.<stage>.<step>` in rules/<stage>.smk names an existing CLI of that stage."""
    text = smk.read_text(encoding="utf-8")
    for mod in re.findall(r"python -m scripts\.([\w.]+)", text):
        path = SCRIPTS_DIR.joinpath(*mod.split(".")).with_suffix(".py")
        assert path.exists(), f"{smk.name}: scripts.{mod} does not exist"
        assert is_cli(path), f"{smk.name}: scripts.{mod} is not a CLI"
        assert mod.split(".")[0] == smk.stem, f"{smk.name} runs scripts.{mod} of another stage"


def rule_code_modules() -> dict[str, tuple[str, ...]]:
    """{rule file: modules of its `code(...)` params}, read from rules/*.smk."""
    out = {}
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        for args in re.findall(r"code=code\(([^)]*)\)", smk.read_text(encoding="utf-8")):
            out[f"{smk.stem}:{args}"] = tuple(re.findall(r'"([\w.]+)"', args))
    return out


def test_code_digests_track_only_the_modules_a_job_runs(tmp_path):
    """An edit to one stage's module changes the digests of the rules that run it (and of later
    stages that import it), and of no other rule."""
    import shutil

    from scripts.shared.registry import code_digest

    tree = tmp_path / "scripts"
    shutil.copytree(SCRIPTS_DIR, tree, ignore=shutil.ignore_patterns("__pycache__"))
    rules = rule_code_modules()
    assert len(rules) >= 8
    before = {r: code_digest(*mods, scripts_dir=tree) for r, mods in rules.items()}
    conv = tree / "hf_model" / "convert.py"
    conv.write_text(conv.read_text() + "\nEDITED = 1\n")
    after = {r: code_digest(*mods, scripts_dir=tree) for r, mods in rules.items()}
    changed = sorted(r for r in rules if before[r] != after[r])
    assert changed == [r for r in sorted(rules) if r.startswith("hf_model:")]
    # a shared module reaches every rule that imports it
    common = tree / "shared" / "common.py"
    common.write_text(common.read_text() + "\nEDITED = 1\n")
    again = {r: code_digest(*mods, scripts_dir=tree) for r, mods in rules.items()}
    assert all(again[r] != after[r] for r in rules)


# Named in docs/architecture.md as places to add later stages; they must not exist half-made.
PLANNED: set[str] = set()


def test_architecture_doc_names_only_files_that_exist():
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:rules|scripts|docs|tests|benchmarks|schemas|profiles)/[\w./<>-]*)`", doc))
    for dotted in re.findall(r"`scripts\.([a-z_]+\.[a-z_.]+)`", doc):
        parts = dotted.split(".")  # a module, or a module's attribute
        assert any(SCRIPTS_DIR.joinpath(*parts[:i]).with_suffix(".py").exists() for i in range(2, len(parts) + 1)), \
            f"docs/architecture.md names scripts.{dotted}, which is no module"
    named |= set(re.findall(r"^(?:rules|scripts)/[\w./-]+", doc, re.M))
    concrete = {n for n in named if "<" not in n}
    assert len(concrete) > 15
    missing = sorted(n for n in concrete - PLANNED if not (ROOT / n).exists())
    assert missing == [], f"docs/architecture.md names missing files: {missing}"
    for planned in PLANNED & concrete:
        if (ROOT / planned).exists():
            pytest.fail(f"{planned} exists now: drop it from PLANNED in tests/test_layout.py")
    # every stage package and rule file is described
    for pkg in sorted(p.name for p in SCRIPTS_DIR.iterdir() if (p / "__init__.py").exists()):
        assert f"scripts/{pkg}/" in doc, f"docs/architecture.md does not describe scripts/{pkg}/"
    for smk in sorted((ROOT / "rules").glob("*.smk")):
        assert f"rules/{smk.name}" in doc or smk.name == "common.smk" and "rules/common.smk" in doc
