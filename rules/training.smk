# Pretraining with TensorFlow Model Garden (`bert/pretraining`), one job per stage.
# Checkpoints live in a params-only model_dir (local or gs://) that Snakemake never deletes; the
# job's tracked output is a done.json marker written after the last step, so a killed or preempted
# job resumes from its latest checkpoint when rerun.


include: "inputs/training.smk"


rule training_config:
    """The stage's Model Garden override YAML, written from config (checksummed, so retraining
    follows the config's content)."""
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
        "python -m scripts.training.config --spec {params.spec:q} --output {output:q} 2> {log:q}"


rule train:
    input:
        config=PATHS.stage_config,
        data=stage_data,
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
        model_dir=stage_model_dir,
        init_args=stage_init_args,
        train_args=stage_train_args,
        code=code("training.model_garden"),
    shell:
        "python -m scripts.training.model_garden --config {input.config:q} {params.train_args:q}"
        " --model-dir {params.model_dir:q} {params.init_args:q}"
        " --threads {threads} --done {output.done:q} > {log:q} 2>&1"
