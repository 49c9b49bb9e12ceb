# Input functions and resources of the training stage (its rules are in rules/training.smk).


def _model(wildcards, backend="model_garden"):
    return registry.model_for(config, wildcards.tokenizer, wildcards.arch, backend)


def _stage(wildcards, backend="model_garden"):
    _, m = _model(wildcards, backend)
    return m["stages"][registry.stage_index(m, wildcards.stage)]


def stage_dir(tokenizer, arch, stage):
    """Where a stage's run directories live (run-<key16>/, scripts/training/runs.py)."""
    return PATHS.stage_dir.format(
        model_root=TRAINING["model_root"].rstrip("/"),
        tokenizer=tokenizer,
        arch=arch,
        stage=stage,
    )


def stage_data(wildcards, backend="model_garden"):
    if _family(wildcards, backend) != "bert":
        return mlm_stage_data(wildcards, backend, PATHS.token_shard)
    corpus = _stage(wildcards, backend)["corpus"]
    return [
        PATHS.records.format(tokenizer=wildcards.tokenizer, corpus=corpus, shard=s)
        for s in registry.shard_ids(config, corpus)
    ]


def stage_data_stats(wildcards, backend="model_garden"):
    """The records' stats.json: their recorded sha256 spares hashing the records for the run key."""
    if _family(wildcards, backend) != "bert":
        return mlm_stage_data(wildcards, backend, PATHS.token_shard_stats)
    corpus = _stage(wildcards, backend)["corpus"]
    return [
        PATHS.records_stats.format(
            tokenizer=wildcards.tokenizer, corpus=corpus, shard=s
        )
        for s in registry.shard_ids(config, corpus)
    ]


def previous_stage(wildcards, backend="model_garden"):
    _, m = _model(wildcards, backend)
    i = registry.stage_index(m, wildcards.stage)
    return m["stages"][i - 1]["name"] if i > 0 else None


def stage_init_done(wildcards, backend="model_garden"):
    prev = previous_stage(wildcards, backend)
    if prev is None:
        return []
    done = PATHS.torch_stage_done if backend == "torch" else PATHS.stage_done
    return [done.format(**{**wildcards, "stage": prev})]


def stage_dir_of(wildcards):
    return stage_dir(wildcards.tokenizer, wildcards.arch, wildcards.stage)


def stage_spec(wildcards, backend="model_garden"):
    """Everything that shapes a training stage, as one JSON string (a tracked param). Not the
    vocab size: training_config counts it from the vocab file (the configured vocab_size is only
    the tokenizer trainer's request)."""
    name, m = _model(wildcards, backend)
    st = _stage(wildcards, backend)
    pd = CORPORA[st["corpus"]]["pretraining_data"]
    return json.dumps(
        {
            "model": name,
            "architecture": config["architectures"][m["architecture"]],
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


# --- `backend: torch` models (rules training_config_torch, train_torch) ------------------------


def torch_stage_data(wildcards):
    return stage_data(wildcards, "torch")


def torch_stage_data_stats(wildcards):
    return stage_data_stats(wildcards, "torch")


def torch_stage_init_done(wildcards):
    return stage_init_done(wildcards, "torch")


def torch_stage_dir_of(wildcards):
    return PATHS.torch_stage_dir.format(
        model_root=TRAINING["model_root"].rstrip("/"),
        tokenizer=wildcards.tokenizer,
        arch=wildcards.arch,
        stage=wildcards.stage,
    )


def torch_stage_spec(wildcards):
    """stage_spec plus the training.torch options (the stage YAML's `torch` section; a model's own
    `torch` changes merged in) and, for roberta/distilbert models, the `family` section.
    """
    spec = json.loads(stage_spec(wildcards, "torch"))
    name, m = _model(wildcards, "torch")
    spec["torch"] = {**(TRAINING.get("torch") or {}), **(m.get("torch") or {})}
    fam = _family(wildcards, "torch")
    if fam != "bert":
        st = _stage(wildcards, "torch")
        seq = registry.stage_seq_length(config, st)
        mlm = registry.mlm_settings(m)
        P = registry.mlm_max_predictions(seq, mlm["masked_lm_prob"])
        spec["data"] = {"max_seq_length": seq, "max_predictions_per_seq": P}
        spec["family"] = {"name": fam, "mask": {**mlm, "max_predictions": P}}
        tok = TOKENIZERS[m["tokenizer"]]
        spec["family"]["tokenizer"] = {
            "dir": os.path.dirname(PATHS.vocab.format(tokenizer=m["tokenizer"])),
            "kind": _tokenizer_kind(tok),
            "mecab_dic": tok.get("mecab_dic"),
        }
        if fam == "distilbert":
            spec["family"]["teacher"] = {
                "name": m["teacher"],
                "dir": PATHS.hf_build.format(model=m["teacher"]),
            }
            spec["family"]["distillation"] = registry.distillation_settings(m)
    return json.dumps(spec, sort_keys=True)


# --- roberta / distilbert models (the `family` of their architecture) ------------------------


def _family(wildcards, backend="model_garden"):
    name, _ = _model(wildcards, backend)
    return registry.family(config, name)


def _tokenizer_kind(tok):
    style = registry.sentencepiece_style(tok)
    return {"mecab": "mecab_sentencepiece", "raw": "sentencepiece"}.get(
        style, tok["type"]
    )


def mlm_stage_data(wildcards, backend, pattern):
    """The token shards (or their stats) of a roberta/distilbert stage: every shard of its corpora."""
    st = _stage(wildcards, backend)
    seq = registry.stage_seq_length(config, st)
    return [
        pattern.format(tokenizer=wildcards.tokenizer, corpus=c, shard=s, seq=seq)
        for c in registry.stage_corpora(st)
        for s in registry.shard_ids(config, c)
    ]


def torch_stage_teacher(wildcards):
    """A distilbert model's teacher: its converted model directory (retraining it reruns this)."""
    name, m = _model(wildcards, "torch")
    if registry.family(config, name) != "distilbert":
        return []
    return [PATHS.hf_build.format(model=m["teacher"])]


def torch_launcher(wildcards):
    """How train_torch starts: one process on CPU, torchrun with one rank per GPU, and on more
    than one node torchrun started on each node by srun (SLURM), meeting at the first node.
    """
    gpus, nodes = TRAINING["num_gpus"], TRAINING.get("num_nodes", 1)
    if nodes > 1:
        return (
            f"srun --nodes {nodes} --ntasks-per-node 1 torchrun --nnodes {nodes}"
            f" --nproc-per-node {max(gpus, 1)} --rdzv-backend c10d --rdzv-id $SLURM_JOB_ID"
            " --rdzv-endpoint $(scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1):29500"
        )
    if gpus > 0:
        return f"torchrun --standalone --nnodes 1 --nproc-per-node {gpus}"
    return "python"
