"""The build registry (config.yaml) as plain Python: cross-reference checks, lookups, code digests.

rules/common.smk imports this module; it never imports snakemake, so every check here is unit
tested on its own. The JSON schema (schemas/config.schema.yaml) checks types and ranges; this
module checks what a schema cannot: that names refer to registered entries and that the
registries agree with each other (sequence lengths fit the model's position embeddings, ...).
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import zlib
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent.parent
SCHEMA_PATH = SCRIPTS_DIR.parent / "schemas" / "config.schema.yaml"
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
        elif tok["type"] == "sentencepiece":
            _check_sentencepiece(name, tok, corpora)
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

    dirs: dict[tuple[str, str, str], str] = {}
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
        pair = (m["tokenizer"], m["architecture"], backend(config, name))
        if pair in dirs:
            _err(f"{key}", f"same tokenizer, architecture and training backend as model {dirs[pair]!r}: their "
                           f"training directories model/{pair[0]}/{pair[1]}/{TRAINING_DIRS[pair[2]]}/ would collide")
        dirs[pair] = name
        seen = set()
        for i, st in enumerate(m["stages"]):
            skey = f"{key}.stages[{i}]"
            if st["name"] in seen:
                _err(f"{skey}.name", f"duplicate stage name {st['name']!r}")
            seen.add(st["name"])
            if st["corpus"] not in corpora:
                _err(f"{skey}.corpus", f"unknown corpus {st['corpus']!r} (registered: {', '.join(corpora)})")
            seq = stage_seq_length(config, st)
            if seq > arch["max_position_embeddings"]:
                _err(f"corpora.{st['corpus']}.pretraining_data.max_seq_length",
                     f"{seq} exceeds max_position_embeddings {arch['max_position_embeddings']} of "
                     f"architecture {m['architecture']!r} (model {name!r}, stage {st['name']!r})")

    check_families(config)
    check_values(config)
    check_names(config)


# ---------------------------------------------------------------------------------------------
# SentencePiece tokenizers and the model families (roberta, distilbert)
# ---------------------------------------------------------------------------------------------

FAMILIES = ("bert", "roberta", "distilbert")
MLM_DEFAULTS = {"masked_lm_prob": 0.15, "whole_word": True, "replace": "bert"}
DISTILLATION_DEFAULTS = {"temperature": 2.0, "alpha_ce": 5.0, "alpha_mlm": 2.0, "alpha_cos": 1.0,
                         "teacher_layers": [0, 2, 4, 7, 9, 11], "restrict_ce_to_mask": False}


def _check_sentencepiece(name: str, tok: dict, corpora: dict) -> None:
    key = f"tokenizers.{name}"
    c = tok["train_corpus"]
    if c not in corpora:
        _err(f"{key}.train_corpus", f"unknown corpus {c!r} (registered: {', '.join(corpora)})")
    if "sample_lines" not in corpora[c]:
        _err(f"corpora.{c}.sample_lines", f"required: corpus {c!r} trains tokenizer {name!r}")
    if tok.get("mecab_dic") is None and tok.get("model_type", "unigram") != "unigram":
        _err(f"{key}.model_type", "a SentencePiece tokenizer without MeCab ships as a fast tokenizer, which needs "
                                  "model_type unigram")


def sentencepiece_style(tok: dict) -> str | None:
    """``mecab`` (MeCab + SentencePiece), ``raw`` (plain SentencePiece) or None (not SentencePiece)."""
    if tok["type"] != "sentencepiece":
        return None
    return "raw" if tok.get("mecab_dic") is None else "mecab"


def pad_id(tok: dict) -> int:
    """The ``[PAD]`` id of a tokenizer's vocabulary (plain SentencePiece: RoBERTa's layout)."""
    return 1 if sentencepiece_style(tok) == "raw" else 0


def family(config: dict, model: str) -> str:
    """A model's family: its architecture's ``family`` (bert when not given)."""
    return config["architectures"][config["models"][model]["architecture"]].get("family", "bert")


def stage_seq_length(config: dict, st: dict) -> int:
    """A stage's sequence length: its own ``max_seq_length`` (MLM families), else its corpus's."""
    return st.get("max_seq_length") or config["corpora"][st["corpus"]]["pretraining_data"]["max_seq_length"]


def mlm_max_predictions(seq_length: int, masked_lm_prob: float) -> int:
    """Masked slots per token-shard row: ``round((seq_length - 2) x prob)``, at least 1."""
    return max(1, int(round((seq_length - 2) * masked_lm_prob)))


def mlm_settings(model: dict) -> dict:
    return {**MLM_DEFAULTS, **(model.get("mlm") or {})}


def distillation_settings(model: dict) -> dict:
    return {**DISTILLATION_DEFAULTS, **(model.get("distillation") or {})}


def stage_corpora(st: dict) -> list[str]:
    """The corpora a stage reads: ``corpus`` and its ``extra_corpora``."""
    return [st["corpus"], *[c for c in st.get("extra_corpora") or [] if c != st["corpus"]]]


def check_families(config: dict) -> None:
    """RoBERTa and DistilBERT models: the torch backend, token-shard settings, a fitting teacher."""
    models, archs, toks = config["models"], config["architectures"], config["tokenizers"]
    for name, m in models.items():
        key = f"models.{name}"
        arch = archs[m["architecture"]]
        fam = arch.get("family", "bert")
        for i, st in enumerate(m["stages"]):
            for c in st.get("extra_corpora") or []:
                if c not in config["corpora"]:
                    _err(f"{key}.stages[{i}].extra_corpora", f"unknown corpus {c!r}")
            if fam == "bert" and (st.get("extra_corpora") or st.get("max_seq_length")):
                _err(f"{key}.stages[{i}]", "max_seq_length and extra_corpora are for roberta and distilbert models "
                                           "(a bert model's sequences are its corpus's pretraining_data)")
        if fam == "bert":
            for k in ("mlm", "teacher", "distillation"):
                if k in m:
                    _err(f"{key}.{k}", f"only for roberta and distilbert models (architecture "
                                       f"{m['architecture']!r} is bert)")
            continue
        if backend(config, name) != "torch":
            _err(f"{key}.backend", f"a {fam} model trains with the torch backend (set backend: torch)")
        tok = toks[m["tokenizer"]]
        for i, st in enumerate(m["stages"]):
            seq = stage_seq_length(config, st)
            need = seq + (pad_id(tok) + 1 if fam == "roberta" else 0)
            if need > arch["max_position_embeddings"]:
                _err(f"architectures.{m['architecture']}.max_position_embeddings",
                     f"{arch['max_position_embeddings']} < {need} for stage {st['name']!r} of model {name!r} "
                     + ("(RoBERTa numbers positions from padding_idx + 1)" if fam == "roberta" else ""))
        if fam == "roberta":
            for k in ("teacher", "distillation"):
                if k in m:
                    _err(f"{key}.{k}", "only for distilbert models")
            continue
        t = m.get("teacher")
        if not t:
            _err(f"{key}.teacher", "required: the bert model a distilbert model is distilled from")
        if t not in models:
            _err(f"{key}.teacher", f"unknown model {t!r} (registered: {', '.join(models)})")
        tm = models[t]
        tarch = archs[tm["architecture"]]
        if tarch.get("family", "bert") != "bert":
            _err(f"{key}.teacher", f"{t!r} is a {tarch.get('family')} model; the teacher must be a bert model")
        if tm["tokenizer"] != m["tokenizer"]:
            _err(f"{key}.tokenizer", f"{m['tokenizer']!r} differs from its teacher {t!r}'s {tm['tokenizer']!r}: "
                                     "teacher and student must tokenize identically")
        for k in ("hidden_size", "num_attention_heads", "intermediate_size"):
            if arch[k] != tarch[k]:
                _err(f"architectures.{m['architecture']}.{k}", f"{arch[k]} differs from the teacher's "
                                                             f"({tm['architecture']}: {tarch[k]})")
        if arch["max_position_embeddings"] != tarch["max_position_embeddings"]:
            _err(f"architectures.{m['architecture']}.max_position_embeddings",
                 f"{arch['max_position_embeddings']} differs from the teacher's {tarch['max_position_embeddings']}")
        layers = distillation_settings(m)["teacher_layers"]
        if len(layers) != arch["num_layers"]:
            _err(f"{key}.distillation.teacher_layers", f"{len(layers)} layers {layers} for a {arch['num_layers']}-layer "
                                                       "student")
        if len(set(layers)) != len(layers) or max(layers) >= tarch["num_layers"]:
            _err(f"{key}.distillation.teacher_layers", f"{layers}: distinct layers of the {tarch['num_layers']}-layer "
                                                       "teacher")


# ---------------------------------------------------------------------------------------------
# Checks of the config files and of the schema that snakemake.utils.validate cannot make
# ---------------------------------------------------------------------------------------------


def duplicate_keys(path: str | os.PathLike) -> list[str]:
    """``file:line: duplicate key`` for every mapping key that a YAML (or JSON) file repeats.

    PyYAML (and so Snakemake's ``configfile:``) keeps the last of two equal keys without a
    word. The file is composed (not constructed), so merge keys (``<<: *anchor``) and the keys
    they bring in are not duplicates; only keys written twice in one mapping are.
    """
    import yaml

    text = Path(path).read_text(encoding="utf-8")
    try:
        docs = list(yaml.compose_all(text, Loader=yaml.SafeLoader))
    except yaml.YAMLError:
        return _json_duplicate_keys(path, text)
    found: list[str] = []
    seen_nodes: set[int] = set()

    def walk(node, where: str):
        if id(node) in seen_nodes:  # an alias: checked where its anchor is
            return
        seen_nodes.add(id(node))
        if isinstance(node, yaml.MappingNode):
            first: dict[tuple, int] = {}
            for key, value in node.value:
                if key.tag == "tag:yaml.org,2002:merge":
                    walk(value, where)
                    continue
                ident = (key.tag, key.value) if isinstance(key, yaml.ScalarNode) else (key.tag, id(key))
                name = key.value if isinstance(key, yaml.ScalarNode) else "?"
                line = key.start_mark.line + 1
                if ident in first:
                    found.append(f"{path}:{line}: duplicate key '{where}{name}' (first at line {first[ident]}); "
                                 "YAML would silently keep the last value")
                else:
                    first[ident] = line
                walk(value, f"{where}{name}.")
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, f"{where.rstrip('.')}[{i}].")

    for doc in docs:
        if doc is not None:
            walk(doc, "")
    return found


def _json_duplicate_keys(path, text: str) -> list[str]:
    found: list[str] = []

    def hook(pairs):
        keys = [k for k, _ in pairs]
        found.extend(f"{path}: duplicate key {k!r}" for k in sorted({k for k in keys if keys.count(k) > 1}))
        return dict(pairs)

    try:
        json.loads(text, object_pairs_hook=hook)
    except ValueError:
        pass  # neither YAML nor JSON: Snakemake has already said so
    return found


def check_config_files(paths) -> None:
    """Reject config files that repeat a key (naming file, line and key)."""
    problems = [d for p in paths if p and os.path.isfile(p) for d in duplicate_keys(p)]
    if problems:
        raise ConfigError("; ".join(problems))


def _dotted(path) -> str:
    out = ""
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out


def _strict_validator(schema: dict):
    """The schema's validator class, with ``integer`` meaning a Python int (not 4.0, not True).

    JSON Schema counts 4.0 as an integer, so ``num_shards: 4.0`` passes
    ``snakemake.utils.validate`` and later breaks ``range()``, a shell argument or a job.
    """
    from jsonschema import validators

    base = validators.validator_for(schema)
    checker = base.TYPE_CHECKER.redefine(
        "integer", lambda _, x: isinstance(x, int) and not isinstance(x, bool))
    return validators.extend(base, type_checker=checker)


def _leaf_errors(errors):
    for e in errors:
        if e.context:
            yield from _leaf_errors(e.context)
        else:
            yield e


def _best_error(errors):
    """The error to report: jsonschema's best match, except that inside a ``oneOf`` (a
    tokenizer's two shapes) it descends into the branch that matches the entry's ``type``."""
    from jsonschema.exceptions import best_match, relevance

    error = max(errors, key=relevance)
    while error.context:
        branches: dict[int, list] = {}
        for sub in error.context:
            branches.setdefault(sub.relative_schema_path[0], []).append(sub)
        matching = [errs for errs in branches.values()
                    if not any(e.validator == "const" and list(e.relative_path) == ["type"] for e in errs)]
        if len(matching) != 1:
            return best_match([error])
        error = best_match(matching[0])
    return error


def check_schema(config: dict, schema_path: str | os.PathLike = SCHEMA_PATH) -> None:
    """Validate ``config`` against the JSON schema with strict integers; raise
    :class:`ConfigError` naming the key.

    Decision: an integral float where the schema wants an integer (``num_shards: 4.0``,
    ``seed: 1.0``, ``--config seed=1.0``) is rejected, not coerced: the config is what the
    jobs get (params, provenance, the model card), and a silent rewrite would make the config
    that ran differ from the one written.
    """
    import yaml

    schema = yaml.safe_load(Path(schema_path).read_text(encoding="utf-8"))
    errors = list(_strict_validator(schema)(schema).iter_errors(config))
    if not errors:
        return
    floats = sorted({_dotted(e.absolute_path): e.instance for e in _leaf_errors(errors)
                     if e.validator == "type" and isinstance(e.instance, float)
                     and "integer" in (e.validator_value if isinstance(e.validator_value, list)
                                       else [e.validator_value])}.items())
    if floats:
        key, value = floats[0]
        more = f" (also: {', '.join(k for k, _ in floats[1:])})" if len(floats) > 1 else ""
        shown = int(value) if value.is_integer() else value
        _err(key, f"{value!r} is a float; an integer is required (write {shown}){more}")
    e = _best_error(errors)
    _err(_dotted(e.absolute_path) or "<top level>", e.message)


# ---------------------------------------------------------------------------------------------
# Cross-field checks: values that pass the schema one by one but cannot work together
# ---------------------------------------------------------------------------------------------


def raw_files(raw: dict) -> list[str]:
    """The file(s) of a corpus's raw dump (``corpora.<c>.raw.path``: one path or a list), in
    read order."""
    path = raw["path"]
    return [path] if isinstance(path, str) else list(path)


def _check_raw(name: str, c: dict) -> None:
    """A dump in parts: sha256/size lists of the same length, no url; a cleaning mode that the
    corpus's format has."""
    raw, key = c["raw"], f"corpora.{name}.raw"
    files = raw_files(raw)
    many = not isinstance(raw["path"], str)
    if many and raw.get("url"):
        _err(f"{key}.url", f"a url is for a single-file dump only, and {key}.path lists {len(files)} files "
                           "(download the parts yourself, or give one path)")
    if len(set(map(os.path.normpath, files))) != len(files):
        _err(f"{key}.path", "lists the same file twice")
    for field in ("sha256", "size"):
        if field not in raw:
            continue
        value = raw[field]
        if isinstance(value, list) != many:
            want = f"a list of {len(files)} values, one per file of {key}.path" if many else "a single value"
            _err(f"{key}.{field}", f"must be {want}")
        if many and len(value) != len(files):
            _err(f"{key}.{field}", f"has {len(value)} values for the {len(files)} files of {key}.path")
    if c["cleaning"].get("mode") == "recipe" and raw["format"] != "cirrussearch":
        _err(f"corpora.{name}.cleaning.mode", f"'recipe' is the recipe's Wikipedia cleaning (make_corpus_wiki.py) "
                                              f"and needs raw.format cirrussearch, not {raw['format']!r}")


def check_values(config: dict) -> None:
    """Values that are valid alone but fail later (inside a job, after outputs were deleted)."""
    for name, c in config["corpora"].items():
        _check_raw(name, c)
        cl = c["cleaning"]
        lo, hi = cl["min_sentence_length"], cl["max_sentence_length"]
        if hi and lo > hi:
            _err(f"corpora.{name}.cleaning.min_sentence_length",
                 f"{lo} exceeds max_sentence_length {hi} (0 = no maximum): no sentence could pass")

    for name, a in config["alphabets"].items():
        lex = (a or {}).get("lex_file")
        if lex and not os.path.isfile(lex):
            _err(f"alphabets.{name}.lex_file", f"file {lex!r} does not exist (relative paths are relative to "
                                               f"the working directory {os.getcwd()})")

    tr = config["training"]
    if tr["distribution_strategy"] == "tpu" and not str(tr.get("tpu") or "").strip():
        _err("training.tpu", "required with distribution_strategy 'tpu' (e.g. 'local' on a TPU VM, or the "
                             "TPU's name or grpc:// address)")

    toks = config["tokenizers"]
    for name, tok in toks.items():
        if tok["type"] != "character" or tok["base"] not in toks or toks[tok["base"]]["type"] != "wordpiece":
            continue
        base = toks[tok["base"]]
        head = len(SPECIAL_TOKENS) + base["num_unused_tokens"] + base["limit_alphabet"]
        if tok["vocab_size"] < head:
            _err(f"tokenizers.{name}.vocab_size",
                 f"{tok['vocab_size']} is smaller than the {len(SPECIAL_TOKENS)} special tokens + "
                 f"{base['num_unused_tokens']} [unusedN] + limit_alphabet {base['limit_alphabet']} of its base "
                 f"{tok['base']!r} = {head}: the character vocabulary would leave out alphabet characters "
                 f"(set it to {head}, or lower the base's limit_alphabet)")

    for mname, m in config["models"].items():
        for i, st in enumerate(m["stages"]):
            if st["summary_interval"] % st["steps_per_loop"]:
                _err(f"models.{mname}.stages[{i}].summary_interval",
                     f"{st['summary_interval']} is not a multiple of steps_per_loop {st['steps_per_loop']} "
                     "(Orbit writes summaries only between loops and rejects it)")


# ---------------------------------------------------------------------------------------------
# Names: every registry name becomes paths (scripts/shared/formats.py PATHS) and rule names
# ---------------------------------------------------------------------------------------------


def shard_rule_name(corpus: str) -> str:
    """The name of a corpus's sharding rule (rules/corpus.smk defines one per corpus)."""
    return "corpus_shards_" + corpus.replace("-", "_").replace(".", "_")


# The wildcards of PATHS that are registry names, by priority (a path is owned by the config key
# of its most specific name: a stage's config is its stage's, a TFRecord shard its corpus's).
_NAME_FIELDS = ("model", "stage", "alphabet", "tokenizer", "arch", "corpus")


def _name_values(config: dict) -> dict[str, list[tuple[str, str]]]:
    """``{wildcard: [(name, config key)]}`` for the registry wildcards of :data:`_NAME_FIELDS`."""
    stages: dict[str, str] = {}
    for m, v in config["models"].items():
        for i, st in enumerate(v["stages"]):
            stages.setdefault(st["name"], f"models.{m}.stages[{i}].name")
    return {
        "model": [(m, f"models.{m}") for m in config["models"]],
        "stage": list(stages.items()),
        "alphabet": [(a, f"alphabets.{a}") for a in config["alphabets"]],
        "tokenizer": [(t, f"tokenizers.{t}") for t in config["tokenizers"]],
        "arch": [(a, f"architectures.{a}") for a in config["architectures"]],
        "corpus": [(c, f"corpora.{c}") for c in config["corpora"]],
    }


def registry_paths(config: dict) -> list[tuple[str, str]]:
    """``(path, owner)`` for every path that the registry's names expand to: each pattern of
    :data:`scripts.shared.formats.PATHS` whose wildcards are all registry names (``{shard}``:
    that corpus's shard ids) filled in with every combination of names. Owner: the config key
    of the path's most specific name."""
    import itertools
    import string

    from scripts.shared.formats import PATHS

    values = _name_values(config)
    out: list[tuple[str, str]] = []
    for pattern in vars(PATHS).values():
        fields = {f for _, f, _, _ in string.Formatter().parse(pattern) if f}
        names = sorted(fields - {"shard"}, key=_NAME_FIELDS.index) if fields <= {*_NAME_FIELDS, "shard"} else None
        if not names or ("shard" in fields and "corpus" not in fields):
            continue
        for combo in itertools.product(*(values[f] for f in names)):
            w = {f: name for f, (name, _) in zip(names, combo)}
            owner = combo[0][1]
            shards = shard_ids(config, w["corpus"]) if "shard" in fields else [None]
            out += [(pattern.format(**w, **({"shard": s} if s else {})), owner) for s in shards]
    return [(os.path.normpath(p), owner) for p, owner in out]


def check_names(config: dict) -> None:
    """Names that would make two rules, or two outputs, the same: reject them naming both keys.

    Rule names: the sharding rule of corpus ``a-b`` and of corpus ``a_b`` would both be
    ``corpus_shards_a_b``. Paths: tokenizer ``alphabet`` and alphabet ``vocab`` would both be
    ``tokenizers/alphabet/vocab.txt``; a raw dump at a path the workflow writes would be
    overwritten. A path that another one needs as its directory is a clash too.
    """
    rules: dict[str, str] = {}
    for c in config["corpora"]:
        r = shard_rule_name(c)
        if r in rules:
            _err(f"corpora.{c}", f"its sharding rule would be named {r!r}, like that of corpora.{rules[r]} "
                                 "(rule names replace '-' and '.' with '_'): rename one of them")
        rules[r] = c

    owners: dict[str, str] = {}
    for path, owner in registry_paths(config):
        if path in owners and owners[path] != owner:
            _err(owner, f"its output {path} is also an output of {owners[path]}: rename one of them")
        owners.setdefault(path, owner)
    for c, v in config["corpora"].items():
        for raw in map(os.path.normpath, raw_files(v["raw"])):
            if raw in owners:
                _err(f"corpora.{c}.raw.path", f"{raw} is an output of {owners[raw]}: the workflow would overwrite it")
            owners.setdefault(raw, f"corpora.{c}.raw.path")  # dumps may be shared between corpora
    for path, owner in owners.items():
        parent = os.path.dirname(path)
        while parent:
            if parent in owners and owners[parent] != owner:
                _err(owner, f"its path {path} lies inside {parent}, the path of {owners[parent]}: "
                            "rename one of them")
            parent = os.path.dirname(parent)


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


def model_for(config: dict, tokenizer: str, architecture: str, backend_name: str = "model_garden") -> tuple[str, dict]:
    for name, m in config["models"].items():
        if m["tokenizer"] == tokenizer and m["architecture"] == architecture and backend(config, name) == backend_name:
            return name, m
    raise ConfigError(f"no model in 'models' uses tokenizer {tokenizer!r} with architecture {architecture!r} "
                      f"and training backend {backend_name!r}")


# Training backends and the directory under model/<tok>/<arch>/ each trains in (formats.PATHS:
# stage_* for model_garden, torch_stage_* for torch).
TRAINING_DIRS = {"model_garden": "training", "torch": "training-torch"}


def backend(config: dict, model: str) -> str:
    """A model's training backend: its own ``backend``, else ``training.backend`` (model_garden)."""
    m = config["models"][model]
    return m.get("backend") or config.get("training", {}).get("backend") or "model_garden"


def stage_index(model: dict, stage: str) -> int:
    for i, st in enumerate(model["stages"]):
        if st["name"] == stage:
            return i
    raise ConfigError(f"no stage {stage!r} (stages: {', '.join(s['name'] for s in model['stages'])})")


def subword_type(config: dict, tokenizer: str) -> str:
    return config["tokenizers"][tokenizer]["type"]


def model_corpora(config: dict, model: str) -> list[str]:
    """The corpora a model is built from: its stages' and its tokenizer's (a character
    tokenizer's base's) training corpus, sorted."""
    m = config["models"][model]
    tok = config["tokenizers"][m["tokenizer"]]
    if tok["type"] == "character":
        tok = config["tokenizers"][tok["base"]]
    return sorted({c for st in m["stages"] for c in stage_corpora(st)} | {tok["train_corpus"]})


# The corpus settings that shape a model (besides the raw bytes, digested separately, and the
# pretraining_data parameters, which the card lists per stage).
CORPUS_FACTS = ("num_shards", "cleaning", "sample_lines")


def corpus_facts(config: dict, corpus: str) -> dict:
    """What of a corpus's config shaped the models built from it (for provenance and the card)."""
    c = config["corpora"][corpus]
    return {"format": c["raw"]["format"], **{k: c[k] for k in CORPUS_FACTS if k in c}}


def put_interpreter_first_on_path(executable: str | None = None, environ=None) -> bool:
    """Put the directory of the interpreter Snakemake runs under first on ``PATH`` (in
    ``os.environ``, which every job inherits); True if it changed.

    Jobs run ``python -m scripts.<stage>``. Run as ``.venv/bin/snakemake`` without activating
    the venv, they would otherwise get whatever ``python`` comes first on PATH (``No module
    named 'MeCab'``). Cluster jobs inherit it too; a ``--sdm conda`` job's activation still puts
    its env's bin/ first.
    """
    import sys

    executable = sys.executable if executable is None else executable
    environ = os.environ if environ is None else environ
    if not executable:
        return False
    bindir = os.path.dirname(executable)
    parts = environ.get("PATH", "").split(os.pathsep) if environ.get("PATH") else []
    if parts[:1] == [bindir]:
        return False
    environ["PATH"] = os.pathsep.join([bindir, *parts])
    return True


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
