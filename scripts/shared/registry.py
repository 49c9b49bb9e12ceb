"""The build registry (config.yaml) as plain Python: cross-reference checks, lookups, code digests.

rules/common.smk imports this module; it never imports snakemake, so every check here is unit
tested on its own. The JSON schema (schemas/config.schema.yaml) checks types and ranges; this
module checks what a schema cannot: that names refer to registered entries and that the
registries agree with each other (sequence lengths fit the model's position embeddings, ...).
"""

from __future__ import annotations

import ast
import hashlib
import zlib
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent.parent
SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


class ConfigError(ValueError):
    """A configuration problem; the message names the offending key."""


def _err(key: str, msg: str):
    raise ConfigError(f"config key '{key}': {msg}")


def check(config: dict) -> None:
    """Check every cross-reference of the registry; raise :class:`ConfigError` naming the key."""
    corpora = config["corpora"]
    toks = config["tokenizers"]
    archs = config["architectures"]
    models = config["models"]

    for i, m in enumerate(config.get("default_models", [])):
        if m not in models:
            _err(f"default_models[{i}]", f"unknown model {m!r} (registered: {', '.join(models)})")

    for name, tok in toks.items():
        key = f"tokenizers.{name}"
        if tok["type"] == "wordpiece":
            c = tok["train_corpus"]
            if c not in corpora:
                _err(f"{key}.train_corpus", f"unknown corpus {c!r} (registered: {', '.join(corpora)})")
            if "sample_lines" not in corpora[c]:
                _err(f"corpora.{c}.sample_lines", f"required: corpus {c!r} trains tokenizer {name!r}")
            if tok["alphabet"] not in config["alphabets"]:
                _err(f"{key}.alphabet", f"unknown alphabet {tok['alphabet']!r}")
            floor = len(SPECIAL_TOKENS) + tok["num_unused_tokens"] + tok["limit_alphabet"]
            if tok["vocab_size"] < floor:
                _err(f"{key}.vocab_size", f"{tok['vocab_size']} is smaller than specials + unused + "
                                          f"limit_alphabet = {floor}")
        else:
            base = tok["base"]
            if base not in toks:
                _err(f"{key}.base", f"unknown tokenizer {base!r}")
            if toks[base]["type"] != "wordpiece":
                _err(f"{key}.base", f"{base!r} must be a wordpiece tokenizer")
            if tok["vocab_size"] > toks[base]["vocab_size"]:
                _err(f"{key}.vocab_size", f"{tok['vocab_size']} exceeds its base's {toks[base]['vocab_size']}")
            if tok["mecab_dic"] != toks[base]["mecab_dic"]:
                _err(f"{key}.mecab_dic", f"must equal the base tokenizer's ({toks[base]['mecab_dic']})")

    for name, c in corpora.items():
        pd = c["pretraining_data"]
        if pd["max_predictions_per_seq"] > pd["max_seq_length"]:
            _err(f"corpora.{name}.pretraining_data.max_predictions_per_seq",
                 f"{pd['max_predictions_per_seq']} exceeds max_seq_length {pd['max_seq_length']}")

    dirs: dict[tuple[str, str], str] = {}
    for name, m in models.items():
        key = f"models.{name}"
        if m["tokenizer"] not in toks:
            _err(f"{key}.tokenizer", f"unknown tokenizer {m['tokenizer']!r} (registered: {', '.join(toks)})")
        if m["architecture"] not in archs:
            _err(f"{key}.architecture",
                 f"unknown architecture {m['architecture']!r} (registered: {', '.join(archs)})")
        arch = archs[m["architecture"]]
        if arch["hidden_size"] % arch["num_attention_heads"]:
            _err(f"architectures.{m['architecture']}.num_attention_heads", "must divide hidden_size")
        pair = (m["tokenizer"], m["architecture"])
        if pair in dirs:
            _err(f"{key}", f"same tokenizer and architecture as model {dirs[pair]!r}: their training "
                           f"directories model/{pair[0]}/{pair[1]}/ would collide")
        dirs[pair] = name
        seen = set()
        for i, st in enumerate(m["stages"]):
            skey = f"{key}.stages[{i}]"
            if st["name"] in seen:
                _err(f"{skey}.name", f"duplicate stage name {st['name']!r}")
            seen.add(st["name"])
            if st["corpus"] not in corpora:
                _err(f"{skey}.corpus", f"unknown corpus {st['corpus']!r} (registered: {', '.join(corpora)})")
            seq = corpora[st["corpus"]]["pretraining_data"]["max_seq_length"]
            if seq > arch["max_position_embeddings"]:
                _err(f"corpora.{st['corpus']}.pretraining_data.max_seq_length",
                     f"{seq} exceeds max_position_embeddings {arch['max_position_embeddings']} of "
                     f"architecture {m['architecture']!r} (model {name!r}, stage {st['name']!r})")


# ---------------------------------------------------------------------------------------------
# Lookups used by the rules
# ---------------------------------------------------------------------------------------------


def shard_ids(config: dict, corpus: str) -> list[str]:
    """Shard ids as in the recipe: 01..NN (1-based, at least two digits)."""
    n = config["corpora"][corpus]["num_shards"]
    return [f"{i:02d}" for i in range(1, n + 1)]


def shard_seed(config: dict, corpus: str, shard: str) -> int:
    """A per-shard seed that is stable across machines and Python versions."""
    return (config["seed"] * 1_000_003 + zlib.crc32(f"{corpus}/{shard}".encode())) % (2**31 - 1)


def model_for(config: dict, tokenizer: str, architecture: str) -> tuple[str, dict]:
    for name, m in config["models"].items():
        if m["tokenizer"] == tokenizer and m["architecture"] == architecture:
            return name, m
    raise ConfigError(f"no model in 'models' uses tokenizer {tokenizer!r} with architecture {architecture!r}")


def stage_index(model: dict, stage: str) -> int:
    for i, st in enumerate(model["stages"]):
        if st["name"] == stage:
            return i
    raise ConfigError(f"no stage {stage!r} (stages: {', '.join(s['name'] for s in model['stages'])})")


def vocab_size(config: dict, tokenizer: str) -> int:
    return config["tokenizers"][tokenizer]["vocab_size"]


def subword_type(config: dict, tokenizer: str) -> str:
    return config["tokenizers"][tokenizer]["type"]


# ---------------------------------------------------------------------------------------------
# Code digests (tracked in params so an edit to a stage's code reruns that stage)
# ---------------------------------------------------------------------------------------------


def _strip_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(getattr(body[0], "value", None), ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]
    return tree


def _module_file(mod: str, scripts_dir: Path) -> Path | None:
    """``a.b`` -> ``scripts/a/b.py`` (or ``scripts/a/b/__init__.py``); None when not ours."""
    base = scripts_dir.joinpath(*mod.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def local_imports(tree: ast.AST, scripts_dir: Path = SCRIPTS_DIR, package: str = "") -> set[str]:
    """The ``scripts`` modules (dotted, without the ``scripts.`` prefix) that a module imports.

    ``from scripts.x import y`` names module ``x.y`` when ``scripts/x/y.py`` exists, else the
    package ``x``; relative imports are resolved against ``package``.
    """
    mods: set[str] = set()

    def add(base: str, names=()):
        found = False
        for n in names:
            sub = f"{base}.{n}" if base else n
            if _module_file(sub, scripts_dir):
                mods.add(sub)
                found = True
        if base and (not found or _module_file(base, scripts_dir)):
            mods.add(base)

    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            names = [a.name for a in node.names]
            if node.level:
                parts = package.split(".") if package else []
                parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
                base = ".".join(parts + ([node.module] if node.module else []))
                add(base, names)
            elif node.module == "scripts":
                add("", names)
            elif node.module and node.module.startswith("scripts."):
                add(node.module[len("scripts."):], names)
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.startswith("scripts."):
                    mods.add(a.name[len("scripts."):])
    return {m for m in mods if m}


def code_digest(*modules: str, scripts_dir: Path = SCRIPTS_DIR) -> str:
    """sha256 over the code of ``scripts/<module>.py`` and every ``scripts`` module it imports.

    Modules are dotted names below ``scripts`` (``corpus.wiki``). The digest is taken over the
    parsed syntax tree without docstrings, so comments, docstrings and formatting changes do not
    rerun a stage; any change to what the code does does. An unknown module is an error (a rule
    that names a moved module must not silently track nothing).
    """
    seen: dict[str, str] = {}
    todo = list(modules)
    while todo:
        mod = todo.pop()
        if mod in seen:
            continue
        path = _module_file(mod, scripts_dir)
        if path is None:
            if mod in modules:
                raise ConfigError(f"code digest: no module scripts.{mod} in {scripts_dir}")
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
        todo.extend(local_imports(tree, scripts_dir, package))
        seen[mod] = ast.dump(_strip_docstrings(tree), annotate_fields=False, include_attributes=False)
    h = hashlib.sha256()
    for mod in sorted(seen):
        h.update(mod.encode() + b"\0" + seen[mod].encode() + b"\0")
    return h.hexdigest()[:16]
