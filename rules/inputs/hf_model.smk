# Input functions and resources of the hf_model stage (its rules are in rules/hf_model.smk).


def _final(model):
    m = MODELS[model]
    return m["tokenizer"], m["architecture"], m["stages"][-1]["name"]


def hf_done(wildcards):
    tok, arch, stage = _final(wildcards.model)
    return PATHS.stage_done.format(tokenizer=tok, arch=arch, stage=stage)


def hf_config(wildcards):
    tok, arch, stage = _final(wildcards.model)
    return PATHS.stage_config.format(tokenizer=tok, arch=arch, stage=stage)


def hf_vocab(wildcards):
    return PATHS.vocab.format(tokenizer=MODELS[wildcards.model]["tokenizer"])


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
    return [PATHS.raw_digest.format(corpus=c) for c in sorted(corpora)]


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
