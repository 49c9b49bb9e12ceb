# Input functions of the release stage (rules/release.smk): the files a model
# card is written from, by role (scripts/release/facts.py describes the spec).


def _release_stages(model):
    m = MODELS[model]
    torch = registry.backend(config, model) == "torch"
    done = PATHS.torch_stage_done if torch else PATHS.stage_done
    return [
        {
            "name": st["name"],
            "corpus": st["corpus"],
            "done": done.format(
                tokenizer=m["tokenizer"], arch=m["architecture"], stage=st["name"]
            ),
            # the stage's pretraining records (their [UNK] rate and size go into the card);
            # a roberta/distilbert stage's token shards
            "records_stats": _release_records_stats(model, m, st),
        }
        for st in m["stages"]
    ]


def _release_records_stats(model, m, st):
    if registry.family(config, model) != "bert":
        seq = registry.stage_seq_length(config, st)
        return [
            PATHS.token_shard_stats.format(
                tokenizer=m["tokenizer"], corpus=c, shard=s, seq=seq
            )
            for c in registry.stage_corpora(st)
            for s in registry.shard_ids(config, c)
        ]
    return [
        PATHS.records_stats.format(
            tokenizer=m["tokenizer"], corpus=st["corpus"], shard=s
        )
        for s in registry.shard_ids(config, st["corpus"])
    ]


def _release_tokenizer(model):
    """The model's tokenizer, and the training statistics that apply to it (a character
    vocabulary's are its base's: it is the head of that vocabulary)."""
    name = MODELS[model]["tokenizer"]
    tok = TOKENIZERS[name]
    trained = tok["base"] if tok["type"] == "character" else name
    stats = (
        PATHS.vocab_stats.format(tokenizer=trained)
        if TOKENIZERS[trained]["type"] in ("wordpiece", "sentencepiece")
        else None
    )
    return {"name": name, "type": tok["type"], "stats": stats, "stats_of": trained}


def _release_corpora(model):
    return [
        {
            "name": c,
            "url": CORPORA[c]["raw"].get("url"),
            "raw_digest": PATHS.raw_digest.format(corpus=c),
            "shard_stats": PATHS.shard_stats.format(corpus=c),
            "wiki_stats": PATHS.wiki_stats.format(corpus=c) if c in CIRRUS else None,
        }
        for c in registry.model_corpora(config, model)
    ]


def _release_jglue(model):
    """The model's JGLUE metrics when it is configured for evaluation (in `default_eval`), else
    None: the card then says it was not evaluated."""
    if model not in (config.get("default_eval") or []):
        return None
    return {"metrics": jglue_metrics_of([model])}


def _release(wildcards):
    m = wildcards.model
    return {
        "model": m,
        "stages": _release_stages(m),
        "tokenizer": _release_tokenizer(m),
        "corpora": _release_corpora(m),
        "jglue": _release_jglue(m),
    }


def release_spec(wildcards):
    return json.dumps(_release(wildcards), sort_keys=True, ensure_ascii=False)


def release_done(wildcards):
    return [st["done"] for st in _release(wildcards)["stages"]]


def release_records(wildcards):
    return [p for st in _release(wildcards)["stages"] for p in st["records_stats"]]


def release_tokenizer_stats(wildcards):
    stats = _release(wildcards)["tokenizer"]["stats"]
    return [stats] if stats else []


def release_corpus_stats(wildcards):
    return [
        p
        for c in _release(wildcards)["corpora"]
        for p in (c["raw_digest"], c["shard_stats"], c["wiki_stats"])
        if p
    ]


def release_metrics(wildcards):
    j = _release(wildcards)["jglue"]
    return j["metrics"] if j else []
