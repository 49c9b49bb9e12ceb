"""What a model card states, gathered from the files the run produced (``card.json``).

Nothing here is taken from the configuration that the run's outputs do not confirm: the
architecture and vocabulary come from the converted ``config.json``, the parameter count from
the loaded weights, the corpora from their digests and ``*.stats.json``, each training stage's
steps, batch and final losses from its ``done.json`` and TensorBoard event files, the JGLUE
rows from ``metrics.json``, and the fill-mask example from running the model. What only the
configuration knows (learning rates, licence, description) comes from the ``provenance.json``
the conversion wrote.

**The spec** (``--spec``, built by ``rules/inputs/release.smk``)::

    {"model": NAME,
     "stages": [{"name", "corpus", "done": done.json, "records_stats": [pretraining_data_NN.stats.json, ...]}],
     "tokenizer": {"name", "type", "stats": train.stats.json | null, "stats_of": NAME},
     "corpora": [{"name", "url": str | null, "raw_digest", "shard_stats", "wiki_stats": path | null}],
     "jglue": null | {"metrics": [eval/jglue/<model>/<task>/metrics.json, ...]}}

``jglue: null`` is a model that is not configured for evaluation: its card says so and holds no
scores. ``stats_of`` is the tokenizer whose training statistics apply (a character
vocabulary's base).

**Final metrics** of a stage: the last point of ``train/`` (``summary_interval`` steps averaged,
as logged) and of ``validation/``, at the step of the last ``training_loss`` /
``validation_loss`` (:mod:`scripts.training.events`); where a stage left no event files (its run
directory is gone), ``done.json``'s ``train_metrics`` / ``validation_metrics``. The source is
recorded.
"""

from __future__ import annotations

import os

from scripts.eval import tasks as T
from scripts.shared.common import InputError, LOG
from scripts.shared.formats import read_done, read_raw_digest, read_stats
from scripts.training.events import read_events, stage_event_dir

# The fill-mask example the card runs (the cl-tohoku cards' widget text); {mask}: the mask token.
FILL_MASK_TEXT = "東北大学で{mask}の研究をしています。"
FILL_MASK_TOP_K = 5

# card metric -> (event tag in train/, event tag in validation/); done.json uses either these
# names (torch backend) or the tags (Model Garden).
METRICS = {
    "loss": ("training_loss", "validation_loss"),
    "mlm_loss": ("lm_example_loss", "lm_example_loss"),
    "mlm_accuracy": ("masked_lm_accuracy", "masked_lm_accuracy"),
    "nsp_loss": ("next_sentence_loss", "next_sentence_loss"),
    "nsp_accuracy": ("next_sentence_accuracy", "next_sentence_accuracy"),
}

# train.stats.json fields the card states (the rest are timings and internals).
TOKENIZER_STATS = ("input", "lines", "words", "unique_words", "vocab_size_requested", "vocab_size",
                   "special_tokens", "unused_tokens", "alphabet", "continuation_chars", "learned_subwords",
                   "character_vocab_size", "mecab_dic", "vocab_sha256")


def read_json(path: str) -> dict:
    return read_stats(path)  # any JSON object, with errors that name the file


# ---------------------------------------------------------------------------------------------
# The model itself
# ---------------------------------------------------------------------------------------------


def _first(cfg: dict, *keys):
    return next((cfg[k] for k in keys if cfg.get(k) is not None), None)


def architecture(cfg: dict, parameters: int) -> dict:
    """The architecture from ``config.json`` (BERT, RoBERTa and DistilBERT field names)."""
    return {
        "model_type": cfg.get("model_type"),
        "class": (cfg.get("architectures") or [None])[0],
        "num_layers": _first(cfg, "num_hidden_layers", "n_layers"),
        "hidden_size": _first(cfg, "hidden_size", "dim"),
        "num_attention_heads": _first(cfg, "num_attention_heads", "n_heads"),
        "intermediate_size": _first(cfg, "intermediate_size", "hidden_dim"),
        "max_position_embeddings": cfg.get("max_position_embeddings"),
        "type_vocab_size": cfg.get("type_vocab_size"),
        "vocab_size": cfg.get("vocab_size"),
        "activation": _first(cfg, "hidden_act", "activation"),
        "layer_norm_eps": cfg.get("layer_norm_eps"),
        "tie_word_embeddings": cfg.get("tie_word_embeddings", True),
        "parameters": parameters,
    }


def load_model(model_dir: str, cfg: dict):
    """The model class ``config.json`` names (``BertForPreTraining``: with the NSP head), loaded
    from ``model_dir``; else the masked-LM class."""
    import transformers

    cls = getattr(transformers, (cfg.get("architectures") or [""])[0], None) or transformers.AutoModelForMaskedLM
    return cls.from_pretrained(model_dir).eval()


def parameter_count(model) -> int:
    """Every parameter once (a tied decoder is the embedding matrix, counted once)."""
    return sum(p.numel() for p in model.parameters())


def fill_mask(model_dir: str, text: str = FILL_MASK_TEXT, top_k: int = FILL_MASK_TOP_K) -> dict:
    """Run the ``fill-mask`` pipeline of ``model_dir`` (as the card's "How to use" loads it) on
    ``text`` (``{mask}`` becomes the tokenizer's mask token); the input and the top predictions."""
    import torch
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForMaskedLM.from_pretrained(model_dir).eval()
    text = text.format(mask=tok.mask_token)
    with torch.no_grad():
        preds = pipeline("fill-mask", model=model, tokenizer=tok, top_k=top_k)(text)
    return {"input": text, "top_k": top_k,
            "predictions": [{"token": int(p["token"]), "token_str": p["token_str"], "score": float(p["score"]),
                             "sequence": p["sequence"]} for p in preds]}


# ---------------------------------------------------------------------------------------------
# What went into it
# ---------------------------------------------------------------------------------------------


def tokenizer(spec: dict, model_dir: str, tok_cfg: dict, vocab_size: int | None) -> dict:
    out = {"name": spec["name"], "type": spec["type"], "class": tok_cfg.get("tokenizer_class"),
           "subword_tokenizer_type": tok_cfg.get("subword_tokenizer_type"),
           "mecab_dic": (tok_cfg.get("mecab_kwargs") or {}).get("mecab_dic"), "vocab_size": vocab_size}
    vocab = os.path.join(model_dir, "vocab.txt")
    if os.path.exists(vocab):
        with open(vocab, encoding="utf-8", newline="\n") as fh:
            out["vocab_size"] = sum(1 for _ in fh)
    if spec.get("stats"):
        st = read_json(spec["stats"])
        out["training"] = {"of": spec.get("stats_of") or spec["name"],
                           **{k: st[k] for k in TOKENIZER_STATS if k in st}}
    return out


def records(paths: list[str]) -> dict:
    """The pretraining records of a stage: instances, tokens and the ``[UNK]`` rate."""
    n = {"shards": len(paths), "instances": 0, "tokens": 0, "unk_tokens": 0}
    for p in paths:
        st = read_json(p)
        for k in ("instances", "tokens", "unk_tokens"):
            n[k] += int(st.get(k, 0))
    n["unk_rate"] = n["unk_tokens"] / n["tokens"] if n["tokens"] else None
    return n


def corpus(spec: dict) -> dict:
    sh = read_json(spec["shard_stats"])
    out = {"name": spec["name"], "url": spec.get("url"), "dump": read_raw_digest(spec["raw_digest"]),
           "format": sh.get("format"), "num_shards": sh.get("num_shards"), "documents": sh.get("documents"),
           "lines": sh.get("lines_written"), "text_bytes": sh.get("bytes_out"),
           "split_sentences": (sh.get("settings") or {}).get("split_sentences")}
    if spec.get("wiki_stats"):
        w = read_json(spec["wiki_stats"])
        out["pages"] = {k: w.get(k) for k in ("pages_read", "pages_written")}
        out["sentences"] = w.get("sentences_written")
    return out


# ---------------------------------------------------------------------------------------------
# Training
# ---------------------------------------------------------------------------------------------


def _final(series: dict, which: int) -> dict | None:
    """The metrics at the last step of the loss series (``which``: 0 train, 1 validation)."""
    loss = series.get(METRICS["loss"][which])
    if not loss:
        return None
    step = loss[-1][0]
    out = {"step": step}
    for name, tags in METRICS.items():
        at = dict(series.get(tags[which]) or [])
        if step in at:
            out[name] = at[step]
    return out


def _from_done(metrics: dict | None, which: int, step: int) -> dict | None:
    if not metrics:
        return None
    out = {"step": step}
    for name, tags in METRICS.items():
        for key in (name, tags[which]):
            if isinstance(metrics.get(key), (int, float)):
                out[name] = float(metrics[key])
                break
    return out if len(out) > 1 else None


def final_metrics(done_path: str, done: dict) -> dict:
    """``{train, validation, source}`` of a finished stage (module docstring)."""
    d = stage_event_dir(done_path)
    try:
        train, valid = (_final(read_events(os.path.join(d, sub)), i) for i, sub in enumerate(("train", "validation")))
    except Exception as e:  # OSError, or TensorFlow's own errors for gs:// (tf.errors.OpError)
        LOG.warning("%s: event files unreadable (%s); final metrics from %s", d, e, done_path)
        train = valid = None
    if train is not None:
        return {"train": train, "validation": valid, "source": f"TensorBoard event files in {d}/"}
    LOG.warning("%s: no event files; final metrics from %s", d, done_path)
    step = done["final_step"]
    return {"train": _from_done(done.get("train_metrics"), 0, step),
            "validation": _from_done(done.get("validation_metrics"), 1, step), "source": done_path}


DONE_FACTS = ("final_step", "start_step", "trained_steps", "global_batch_size", "seconds", "backend", "run_key",
              "checkpoint", "resumed_from", "devices", "device", "world_size")


def stage(spec: dict, configured: dict | None) -> dict:
    done = read_done(spec["done"])
    cfg = configured or {}
    out = {"name": spec["name"], "corpus": spec["corpus"],
           "config": {k: cfg.get(k) for k in ("global_batch_size", "train_steps", "learning_rate", "warmup_steps",
                                              "end_learning_rate")},
           **{k: done[k] for k in DONE_FACTS if k in done}, **final_metrics(spec["done"], done)}
    out["config"]["max_seq_length"] = (cfg.get("pretraining_data") or {}).get("max_seq_length",
                                                                             cfg.get("max_seq_length"))
    if spec.get("records_stats"):
        out["records"] = records(spec["records_stats"])
    return out


# ---------------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------------


def jglue(spec: dict | None) -> dict:
    """``{"evaluated": False}`` for a model not configured for evaluation; else one row per task
    as its ``metrics.json`` has it (scores, or the reason it was skipped)."""
    if spec is None:
        return {"evaluated": False, "tasks": []}
    rows = []
    for p in spec["metrics"]:
        m = read_json(p)
        task = T.get(m["task"])
        rows.append({"task": task.name, "title": task.title, "dataset": m.get("dataset"), "metrics": m["metrics"],
                     "metric_names": list(task.metrics), "std": m.get("std"), "n_seeds": m.get("n_seeds"),
                     "best": m.get("best"), "select_by": m.get("select_by"), "skipped": m.get("skipped"),
                     "source": p})
    return {"evaluated": True, "tasks": rows}


# ---------------------------------------------------------------------------------------------
# All of it
# ---------------------------------------------------------------------------------------------


def gather(spec: dict, model_dir: str, *, path: str | None = None) -> dict:
    """The card's facts for the model in ``model_dir`` (``path``: where users will load it from)."""
    cfg_path, prov_path = os.path.join(model_dir, "config.json"), os.path.join(model_dir, "provenance.json")
    for p in (cfg_path, prov_path):
        if not os.path.exists(p):
            raise InputError(p, "not found: not a converted model directory")
    cfg, prov = read_json(cfg_path), read_json(prov_path)
    tok_cfg_path = os.path.join(model_dir, "tokenizer_config.json")
    tok_cfg = read_json(tok_cfg_path) if os.path.exists(tok_cfg_path) else {}
    configured = prov.get("config") or {}
    model = load_model(model_dir, cfg)
    n_params = parameter_count(model)
    del model
    by_name = {s.get("name"): s for s in configured.get("stages") or []}
    card = {k: configured[k] for k in ("license", "description", "language", "tags", "datasets") if k in configured}
    for key in ("license", "description"):
        if not isinstance(card.get(key), str):
            raise InputError(prov_path, f"config.{key} missing: the card needs the model's {key}")
    return {
        "model": spec["model"],
        "path": path or model_dir,
        "card": card,
        "backend": (prov.get("training") or {}).get("backend") or configured.get("backend"),
        "architecture": {"name": (configured.get("architecture") or {}).get("name"),
                         **architecture(cfg, n_params)},
        "tokenizer": tokenizer(spec["tokenizer"], model_dir, tok_cfg, cfg.get("vocab_size")),
        "corpora": [corpus(c) for c in spec["corpora"]],
        "stages": [stage(s, by_name.get(s["name"])) for s in spec["stages"]],
        "converted_from": {k: (prov.get("training") or {}).get(k) for k in ("checkpoint", "final_step")},
        "jglue": jglue(spec.get("jglue")),
        "fill_mask": fill_mask(model_dir),
        "provenance": {"code": prov.get("code"), "seed": configured.get("seed"),
                       "packages": {k: v for k, v in (prov.get("packages") or {}).items() if v},
                       "python": prov.get("python")},
    }
