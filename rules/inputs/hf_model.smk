# Input functions and resources of the hf_model stage (its rules are in rules/hf_model.smk).


def _final(model):
    m = MODELS[model]
    return m["tokenizer"], m["architecture"], m["stages"][-1]["name"]


def _torch(model):
    return registry.backend(config, model) == "torch"


def hf_done(wildcards):
    tok, arch, stage = _final(wildcards.model)
    done = PATHS.torch_stage_done if _torch(wildcards.model) else PATHS.stage_done
    return done.format(tokenizer=tok, arch=arch, stage=stage)


def hf_config(wildcards):
    tok, arch, stage = _final(wildcards.model)
    cfg = PATHS.torch_stage_config if _torch(wildcards.model) else PATHS.stage_config
    return cfg.format(tokenizer=tok, arch=arch, stage=stage)


def hf_vocab(wildcards):
    return PATHS.vocab.format(tokenizer=MODELS[wildcards.model]["tokenizer"])


def hf_subword(wildcards):
    return registry.subword_type(config, MODELS[wildcards.model]["tokenizer"])


def hf_mecab_dic(wildcards):
    """The MeCab dictionary, or `none` (a plain SentencePiece tokenizer)."""
    return TOKENIZERS[MODELS[wildcards.model]["tokenizer"]].get("mecab_dic") or "none"


def hf_tokenizer_files(wildcards):
    """A SentencePiece tokenizer's files besides vocab.txt (copied into the model directory)."""
    tok = MODELS[wildcards.model]["tokenizer"]
    style = registry.sentencepiece_style(TOKENIZERS[tok])
    if style is None:
        return []
    files = [PATHS.spm_model.format(tokenizer=tok)]
    if style == "raw":
        files.append(PATHS.tokenizer_json.format(tokenizer=tok))
    return files


def hf_raw_digests(wildcards):
    return [
        PATHS.raw_digest.format(corpus=c)
        for c in registry.model_corpora(config, wildcards.model)
    ]


def _requested_size(tok):
    return {
        ("vocab_size_requested" if k == "vocab_size" else k): v for k, v in tok.items()
    }


def hf_card(wildcards):
    """Model-card facts and the config values that shaped the model (a tracked param)."""
    m = MODELS[wildcards.model]
    tok = TOKENIZERS[m["tokenizer"]]
    return json.dumps(
        {
            "model": wildcards.model,
            **m["card"],
            "backend": registry.backend(config, wildcards.model),
            # vocab_size here is the tokenizer trainer's request; the model's size is the
            # vocab file's (config.json, model card).
            "tokenizer": {"name": m["tokenizer"], **_requested_size(tok)},
            "architecture": {
                "name": m["architecture"],
                **config["architectures"][m["architecture"]],
            },
            "stages": [
                {**st, "pretraining_data": CORPORA[st["corpus"]]["pretraining_data"]}
                for st in m["stages"]
            ],
            # every corpus the model is built from: sharding, cleaning, sample size
            "corpora": {
                c: registry.corpus_facts(config, c)
                for c in registry.model_corpora(config, wildcards.model)
            },
            "seed": config["seed"],
            # roberta / distilbert models: the family, masking, the teacher and the loss
            **(
                {
                    "family": registry.family(config, wildcards.model),
                    "mlm": registry.mlm_settings(m),
                }
                if registry.family(config, wildcards.model) != "bert"
                else {}
            ),
            **(
                {
                    "teacher": m["teacher"],
                    "distillation": registry.distillation_settings(m),
                }
                if "teacher" in m
                else {}
            ),
        },
        sort_keys=True,
    )
