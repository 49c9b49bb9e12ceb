# Input functions of the report stage (its rules are in rules/report.smk). The report covers the
# default target: the `default_models` (training curves, their corpora and tokenizers), every
# benchmarked rule, and the JGLUE results of `default_eval`.


def _stages(model):
    """(stage, done.json) of a model, for its training backend."""
    m = MODELS[model]
    torch = registry.backend(config, model) == "torch"
    done = PATHS.torch_stage_done if torch else PATHS.stage_done
    return [
        (
            st["name"],
            done.format(
                tokenizer=m["tokenizer"], arch=m["architecture"], stage=st["name"]
            ),
        )
        for st in m["stages"]
    ]


def report_stage_done(wildcards):
    return [done for _, done in _stages(wildcards.model)]


def report_stage_args(wildcards):
    return [
        a for name, done in _stages(wildcards.model) for a in ("--stage", name, done)
    ]


def _report_tokenizers():
    return sorted({MODELS[m]["tokenizer"] for m in config["default_models"]})


def _report_corpora():
    out = set()
    for m in config["default_models"]:
        out |= {st["corpus"] for st in MODELS[m]["stages"]}
        tok = TOKENIZERS[MODELS[m]["tokenizer"]]
        out.add(
            TOKENIZERS[tok["base"]]["train_corpus"]
            if tok["type"] == "character"
            else tok["train_corpus"]
        )
    return sorted(out)


def _shards(corpus):
    return [
        PATHS.shard.format(corpus=corpus, shard=s)
        for s in registry.shard_ids(config, corpus)
    ]


def report_corpus_inputs(wildcards):
    files = []
    for c in _report_corpora():
        files.append(PATHS.shard_stats.format(corpus=c))
        if c in CIRRUS:
            files.append(PATHS.wiki_stats.format(corpus=c))
        files += _shards(c)
    return files


def report_corpus_args(wildcards):
    args = []
    for c in _report_corpora():
        wiki = PATHS.wiki_stats.format(corpus=c) if c in CIRRUS else "-"
        args += ["--corpus", c, PATHS.shard_stats.format(corpus=c), wiki]
    for c in _report_corpora():
        args += ["--shards", *_shards(c)]
    return args


def _tokenizer_corpora(tok):
    return sorted(
        {
            st["corpus"]
            for m in config["default_models"]
            if MODELS[m]["tokenizer"] == tok
            for st in MODELS[m]["stages"]
        }
    )


def _records_stats(tok, corpus):
    users = [
        (m, st)
        for m in config["default_models"]
        if MODELS[m]["tokenizer"] == tok
        for st in MODELS[m]["stages"]
        if st["corpus"] == corpus
    ]
    if users and all(registry.family(config, m) != "bert" for m, _ in users):
        # read only by roberta/distilbert models: their token shards' stats
        seq = registry.stage_seq_length(config, users[0][1])
        return [
            PATHS.token_shard_stats.format(
                tokenizer=tok, corpus=corpus, shard=s, seq=seq
            )
            for s in registry.shard_ids(config, corpus)
        ]
    return [
        PATHS.records_stats.format(tokenizer=tok, corpus=corpus, shard=s)
        for s in registry.shard_ids(config, corpus)
    ]


def report_tokenizer_inputs(wildcards):
    files = []
    for tok in _report_tokenizers():
        files.append(PATHS.vocab.format(tokenizer=tok))
        for c in _tokenizer_corpora(tok):
            files += _records_stats(tok, c)
    return files


def report_tokenizer_args(wildcards):
    args = []
    for tok in _report_tokenizers():
        args += ["--tokenizer", tok, PATHS.vocab.format(tokenizer=tok)]
        for c in _tokenizer_corpora(tok):
            args += ["--records", tok, c, *_records_stats(tok, c)]
    return args


def report_benchmark_patterns(wildcards):
    """{rule: benchmark path pattern} of every rule (matches each benchmark TSV to its rule)."""
    return json.dumps(
        {r.name: str(r.benchmark) for r in workflow.rules if r.benchmark is not None},
        sort_keys=True,
    )


def _figures():
    figs = [PATHS.report_training.format(model=m) for m in config["default_models"]]
    figs += [
        PATHS.report_plot.format(name=n) for n in ("corpora", "tokenizers", "runtime")
    ]
    if config.get("default_eval"):
        figs += [PATHS.report_plot.format(name="jglue"), PATHS.report_jglue]
    return figs


def report_runtime_after(wildcards):
    """Everything else of the default target: the runtime figure is drawn last."""
    figs = [f for f in _figures() if f != PATHS.report_plot.format(name="runtime")]
    models = [PATHS.hf_model.format(model=m) for m in config["default_models"]]
    return models + figs + eval_targets()


def report_targets():
    return _figures()


def print_report_hint():
    if os.path.exists(PATHS.report_plot.format(name="runtime")):
        print(
            f"Report figures: {os.path.abspath('plots')} (`snakemake --report report.html` embeds them)"
        )
