# Validation, registry lookups, input functions and wildcard constraints shared by every stage.
# The logic lives in scripts/registry.py (plain Python, unit tested); this file adapts it to rules.

import json
import os
import re
import sys

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

# Jobs run `python -m scripts.<stage>`: make the package importable from any working directory.
os.environ.update(PYTHONPATH=workflow.basedir)
sys.path.insert(0, workflow.basedir)

from scripts import registry  # noqa: E402

validate(config, schema="../schemas/config.schema.yaml")
try:
    registry.check(config)
except registry.ConfigError as e:
    raise WorkflowError(f"Invalid configuration: {e}")

CORPORA = config["corpora"]
TOKENIZERS = config["tokenizers"]
MODELS = config["models"]
TRAINING = config["training"]


def _alt(names):
    return (
        "|".join(sorted((n.replace(".", r"\.") for n in names), key=len, reverse=True))
        or "^$"
    )


WORDPIECE = [t for t, v in TOKENIZERS.items() if v["type"] == "wordpiece"]
CHARACTER = [t for t, v in TOKENIZERS.items() if v["type"] == "character"]
CIRRUS = [c for c, v in CORPORA.items() if v["raw"]["format"] == "cirrussearch"]
STAGES = sorted({st["name"] for m in MODELS.values() for st in m["stages"]})


def code(*modules):
    """Digest of the scripts that a job runs, tracked as a param (an edit reruns the stage)."""
    return registry.code_digest(*modules)


# ---------------------------------------------------------------------------------------------
# Corpora
# ---------------------------------------------------------------------------------------------


def raw_dump(wildcards):
    return checked_raw_path(wildcards.corpus)


def checked_raw_path(corpus):
    """The raw dump of a corpus. If missing, with `download_missing_dumps: true` and a
    `url`, the download_raw job fetches it; else the DAG fails, naming the file, the config key
    and where to get it (an 80 GB download never starts unasked)."""
    raw = CORPORA[corpus]["raw"]
    if os.path.exists(raw["path"]) or raw["path"] in RAW_DOWNLOADS:
        return raw["path"]
    if raw.get("url"):
        where = (
            f"Download it from {raw['url']} (or rerun with "
            f"--config download_missing_dumps=True to let the workflow fetch it)"
        )
    else:
        where = f"Set corpora.{corpus}.raw.url to have it downloaded"
    raise WorkflowError(
        f"Raw dump for corpus '{corpus}' is missing: {raw['path']} does not exist. {where}, "
        f"or point config key corpora.{corpus}.raw.path at your copy."
    )


# Dumps that the download_raw job may fetch, as {path: raw entry}.
RAW_DOWNLOADS = {
    v["raw"]["path"]: v["raw"]
    for v in CORPORA.values()
    if v["raw"].get("url") and config["download_missing_dumps"]
}


# A regex matching exactly those paths (the only outputs download_raw can make).
RAW_DOWNLOAD_PATHS = (
    "|".join(re.escape(p) for p in sorted(RAW_DOWNLOADS, key=len, reverse=True))
    or "(?!)"
)


def download_args(wildcards):
    raw = RAW_DOWNLOADS[wildcards.raw]
    args = ["--url", raw["url"]]
    if raw.get("sha256"):
        args += ["--sha256", raw["sha256"]]
    if raw.get("size") is not None:
        args += ["--size", str(raw["size"])]
    return args


def shard_source_of(corpus):
    """Input function for sharding one corpus. CirrusSearch dumps are cleaned to
    corpus.txt.gz first; CC-100 is sharded straight from the raw dump."""

    def get(wildcards):
        if corpus in CIRRUS:
            return f"corpus/{corpus}/corpus.txt.gz"
        return checked_raw_path(corpus)

    return get


def shard_inputs(wildcards):
    return shard_paths(wildcards.corpus)


def split_flag(wildcards):
    corpus = wildcards["corpus"] if isinstance(wildcards, dict) else wildcards.corpus
    split = CORPORA[corpus]["cleaning"]["split_sentences"]
    return "--split-sentences" if split else "--no-split-sentences"


def shard_paths(corpus):
    return [
        f"corpus/{corpus}/corpus_{s}.txt" for s in registry.shard_ids(config, corpus)
    ]


def cleaning(key):
    def get(wildcards):
        return CORPORA[wildcards.corpus]["cleaning"][key]

    return get


def corpus_value(*keys):
    def get(wildcards):
        v = CORPORA[wildcards.corpus]
        for k in keys:
            v = v[k]
        return v

    return get


def shard_seed(wildcards):
    return registry.shard_seed(config, wildcards.corpus, wildcards.shard)


# ---------------------------------------------------------------------------------------------
# Tokenizers
# ---------------------------------------------------------------------------------------------


def tokenizer_value(key):
    def get(wildcards):
        return TOKENIZERS[wildcards.tokenizer][key]

    return get


def tokenizer_sample(wildcards):
    return (
        f"corpus/{TOKENIZERS[wildcards.tokenizer]['train_corpus']}/corpus_sampled.txt"
    )


def tokenizer_alphabet(wildcards):
    return f"tokenizers/alphabet/{TOKENIZERS[wildcards.tokenizer]['alphabet']}.txt"


def base_vocab(wildcards):
    return f"tokenizers/{TOKENIZERS[wildcards.tokenizer]['base']}/vocab.txt"


def alphabet_lex_args(wildcards):
    """`--lex-file PATH` when a UniDic lex.csv is configured, else nothing (derive from sys.dic)."""
    lex = config["alphabets"][wildcards.alphabet].get("lex_file")
    return ["--lex-file", lex] if lex else []


# ---------------------------------------------------------------------------------------------
# Training and conversion
# ---------------------------------------------------------------------------------------------


def _model(wildcards):
    return registry.model_for(config, wildcards.tokenizer, wildcards.arch)


def _stage(wildcards):
    _, m = _model(wildcards)
    return m["stages"][registry.stage_index(m, wildcards.stage)]


def model_dir(tokenizer, arch, stage):
    return f"{TRAINING['model_root'].rstrip('/')}/{tokenizer}/{arch}/training/{stage}"


def stage_data(wildcards):
    corpus = _stage(wildcards)["corpus"]
    return [
        f"pretraining_data/{wildcards.tokenizer}/{corpus}/pretraining_data_{s}.tfrecord.gz"
        for s in registry.shard_ids(config, corpus)
    ]


def previous_stage(wildcards):
    _, m = _model(wildcards)
    i = registry.stage_index(m, wildcards.stage)
    return m["stages"][i - 1]["name"] if i > 0 else None


def stage_init_done(wildcards):
    prev = previous_stage(wildcards)
    if prev is None:
        return []
    return [f"model/{wildcards.tokenizer}/{wildcards.arch}/training/{prev}/done.json"]


def stage_init_args(wildcards):
    """`--init-checkpoint <previous stage's model_dir>`, or nothing for a first stage."""
    prev = previous_stage(wildcards)
    return (
        ["--init-checkpoint", model_dir(wildcards.tokenizer, wildcards.arch, prev)]
        if prev
        else []
    )


def stage_train_args(wildcards):
    return [a for f in stage_data(wildcards) for a in ("--train-file", f)]


def stage_model_dir(wildcards):
    return model_dir(wildcards.tokenizer, wildcards.arch, wildcards.stage)


def stage_spec(wildcards):
    """Everything that shapes a training stage, as one JSON string (a tracked param)."""
    name, m = _model(wildcards)
    st = _stage(wildcards)
    pd = CORPORA[st["corpus"]]["pretraining_data"]
    return json.dumps(
        {
            "model": name,
            "architecture": config["architectures"][m["architecture"]],
            "vocab_size": registry.vocab_size(config, m["tokenizer"]),
            "stage": st,
            "data": {
                "max_seq_length": pd["max_seq_length"],
                "max_predictions_per_seq": pd["max_predictions_per_seq"],
            },
            "runtime": {
                k: TRAINING[k]
                for k in (
                    "distribution_strategy",
                    "tpu",
                    "mixed_precision_dtype",
                    "num_gpus",
                )
            },
        },
        sort_keys=True,
    )


def _final(model):
    m = MODELS[model]
    return m["tokenizer"], m["architecture"], m["stages"][-1]["name"]


def hf_done(wildcards):
    tok, arch, stage = _final(wildcards.model)
    return f"model/{tok}/{arch}/training/{stage}/done.json"


def hf_config(wildcards):
    tok, arch, stage = _final(wildcards.model)
    return f"model/{tok}/{arch}/training/{stage}.yaml"


def hf_vocab(wildcards):
    return f"tokenizers/{MODELS[wildcards.model]['tokenizer']}/vocab.txt"


def hf_checkpoint(wildcards):
    return model_dir(*_final(wildcards.model))


def hf_subword(wildcards):
    return registry.subword_type(config, MODELS[wildcards.model]["tokenizer"])


def hf_mecab_dic(wildcards):
    return TOKENIZERS[MODELS[wildcards.model]["tokenizer"]]["mecab_dic"]


def hf_raw_digests(wildcards):
    corpora = {st["corpus"] for st in MODELS[wildcards.model]["stages"]}
    tok = TOKENIZERS[MODELS[wildcards.model]["tokenizer"]]
    if tok["type"] == "character":
        tok = TOKENIZERS[tok["base"]]
    corpora.add(tok["train_corpus"])
    return [f"corpus/{c}/raw.sha256.json" for c in sorted(corpora)]


def hf_card(wildcards):
    """Model-card facts and the config values that shaped the model (a tracked param)."""
    m = MODELS[wildcards.model]
    tok = TOKENIZERS[m["tokenizer"]]
    return json.dumps(
        {
            "model": wildcards.model,
            **m["card"],
            "tokenizer": {"name": m["tokenizer"], **tok},
            "architecture": {
                "name": m["architecture"],
                **config["architectures"][m["architecture"]],
            },
            "stages": [
                {**st, "pretraining_data": CORPORA[st["corpus"]]["pretraining_data"]}
                for st in m["stages"]
            ],
            "seed": config["seed"],
        },
        sort_keys=True,
    )


def print_built_models(models):
    for m in models:
        path = os.path.abspath(f"hf_model/{m}")
        if os.path.isdir(path):
            print(
                f"Built {path} — load it with transformers.AutoModelForMaskedLM.from_pretrained('{path}')"
            )


# ---------------------------------------------------------------------------------------------
# Resources (intrinsic needs; site-specific settings belong in profiles/)
# ---------------------------------------------------------------------------------------------


def input_mb(input):
    return sum(os.path.getsize(f) for f in input if os.path.exists(f)) / 1e6


def mem_pretraining_data(wildcards, input, attempt):
    # Compact token-id arrays: ~1 byte of RSS per input byte measured (benchmarks/), plus a base.
    return int(1500 + 2 * input_mb([input.text])) * attempt
