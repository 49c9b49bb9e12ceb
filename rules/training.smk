# Pretraining with TensorFlow Model Garden (`bert/pretraining`), one job per stage.
# Checkpoints live under the stage directory (local or gs://, never deleted) in run-<key16>/, the
# key a digest of the stage YAML, the TFRecords' content, the init checkpoint's run, the code and
# the backend (scripts/training/runs.py): a rerun with the same inputs resumes from the latest
# checkpoint, any change starts a fresh run. The tracked output is a done.json marker written
# after the last step; it names the run and its checkpoint, which hf_model and the next stage read.


include: "inputs/training.smk"


rule training_config:
    """The stage's Model Garden override YAML, written from config, with the vocab size counted
    from the vocab file (checksummed, so retraining follows the config's content)."""
    input:
        vocab=PATHS.vocab,
    output:
        PATHS.stage_config,
    log:
        "logs/training/training_config/{tokenizer}/{arch}/{stage}.log",
    benchmark:
        "logs/benchmarks/training/training_config/{tokenizer}/{arch}/{stage}.tsv"
    localrule: True
    conda:
        "../envs/train.yaml"
    resources:
        mem_mb=200,
        runtime=5,
    params:
        spec=stage_spec,
        code=code("training.config"),
    shell:
        "python -m scripts.training.config --spec {params.spec:q} --vocab-file {input.vocab:q}"
        " --output {output:q} 2> {log:q}"


rule train:
    input:
        config=PATHS.stage_config,
        data=stage_data,
        stats=stage_data_stats,
        init=stage_init_done,
    output:
        done=PATHS.stage_done,
    log:
        "logs/training/train/{tokenizer}/{arch}/{stage}.log",
    benchmark:
        "logs/benchmarks/training/train/{tokenizer}/{arch}/{stage}.tsv"
    retries: 2
    conda:
        "../envs/train.yaml"
    threads: 16
    resources:
        mem_mb=16000,
        runtime=7 * 24 * 60,
        gpu=TRAINING["num_gpus"],
    params:
        stage_dir=stage_dir_of,
        code=code("training.model_garden"),
    shell:
        "python -m scripts.training.model_garden --config {input.config:q}"
        " --train-file {input.data:q} --train-stats {input.stats:q}"
        " --stage-dir {params.stage_dir:q} --init-done {input.init:q} --code {params.code}"
        " --threads {threads} --done {output.done:q} > {log:q} 2>&1"


# The PyTorch backend (models with `backend: torch`): the same stage YAML plus its `torch`
# section, the same records and run directories (scripts/training/runs.py), its own training
# directory (model/<tok>/<arch>/training-torch/), scripts/training/torch_train.py under torchrun.


rule training_config_torch:
    """The stage YAML of a `backend: torch` model: the Model Garden override plus the
    training.torch options (vocab size counted from the vocab file)."""
    input:
        vocab=PATHS.vocab,
    output:
        PATHS.torch_stage_config,
    log:
        "logs/training/training_config_torch/{tokenizer}/{arch}/{stage}.log",
    benchmark:
        "logs/benchmarks/training/training_config_torch/{tokenizer}/{arch}/{stage}.tsv"
    localrule: True
    conda:
        "../envs/train.yaml"
    resources:
        mem_mb=200,
        runtime=5,
    params:
        spec=torch_stage_spec,
        code=code("training.config"),
    shell:
        "python -m scripts.training.config --spec {params.spec:q} --vocab-file {input.vocab:q}"
        " --output {output:q} 2> {log:q}"


rule train_torch:
    input:
        config=PATHS.torch_stage_config,
        data=torch_stage_data,
        stats=torch_stage_data_stats,
        init=torch_stage_init_done,
        teacher=torch_stage_teacher,
    output:
        done=PATHS.torch_stage_done,
    log:
        "logs/training/train_torch/{tokenizer}/{arch}/{stage}.log",
    benchmark:
        "logs/benchmarks/training/train_torch/{tokenizer}/{arch}/{stage}.tsv"
    retries: 2
    conda:
        "../envs/train_torch.yaml"
    threads: 16
    resources:
        mem_mb=16000,
        runtime=7 * 24 * 60,
        gpu=TRAINING["num_gpus"],
        nodes=TRAINING.get("num_nodes", 1),
    params:
        stage_dir=torch_stage_dir_of,
        launcher=torch_launcher,
        gpus=TRAINING["num_gpus"],
        code=code("training.torch_train"),
    shell:
        "{params.launcher} -m scripts.training.torch_train --config {input.config:q}"
        " --train-file {input.data:q} --train-stats {input.stats:q}"
        " --stage-dir {params.stage_dir:q} --init-done {input.init:q} --code {params.code}"
        " --num-gpus {params.gpus} --threads {threads} --done {output.done:q} > {log:q} 2>&1"
