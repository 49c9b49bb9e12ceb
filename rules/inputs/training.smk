# Input functions and resources of the training stage (its rules are in rules/training.smk).


def _model(wildcards):
    return registry.model_for(config, wildcards.tokenizer, wildcards.arch)


def _stage(wildcards):
    _, m = _model(wildcards)
    return m["stages"][registry.stage_index(m, wildcards.stage)]


def model_dir(tokenizer, arch, stage):
    return PATHS.stage_dir.format(
        model_root=TRAINING["model_root"].rstrip("/"),
        tokenizer=tokenizer,
        arch=arch,
        stage=stage,
    )


def stage_data(wildcards):
    corpus = _stage(wildcards)["corpus"]
    return [
        PATHS.records.format(tokenizer=wildcards.tokenizer, corpus=corpus, shard=s)
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
    return [PATHS.stage_done.format(**{**wildcards, "stage": prev})]


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
