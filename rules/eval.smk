# JGLUE evaluation: one fine-tuning job per model, task and grid point, then per-task metrics
# (the best point on dev) and the results table. A task whose data files are missing has no run
# jobs; its metrics.json records the skip and where the data comes from.


include: "inputs/eval.smk"


rule jglue_run:
    input:
        model=rules.convert.output,
        train=jglue_train,
        valid=jglue_valid,
    output:
        PATHS.jglue_run,
    log:
        "logs/eval/jglue_run/{model}/{task}/{run}.log",
    benchmark:
        "logs/benchmarks/eval/jglue_run/{model}/{task}/{run}.tsv"
    wildcard_constraints:
        task=_alt(JGLUE_TASKS),
        run=r"lr[0-9.e+-]+_ep\d+_seed\d+",
    conda:
        "../envs/eval.yaml"
    threads: jglue_threads
    resources:
        mem_mb=jglue_resource("mem_mb", 16000),
        runtime=jglue_resource("runtime", 720),
        gpu=jglue_resource("gpu", 0),
    params:
        model_dir=jglue_model_dir,
        settings=jglue_run_settings,
        code=code("eval.run"),
    shell:
        "python -m scripts.eval.run --task {wildcards.task} --model-dir {params.model_dir:q}"
        " --train {input.train:q} --valid {input.valid:q} --settings {params.settings:q}"
        " --threads {threads} --output {output:q} 2> {log:q}"


rule jglue_metrics:
    input:
        runs=jglue_runs,
        data=jglue_data_present,
    output:
        PATHS.jglue_metrics,
    log:
        "logs/eval/jglue_metrics/{model}/{task}.log",
    benchmark:
        "logs/benchmarks/eval/jglue_metrics/{model}/{task}.tsv"
    wildcard_constraints:
        task=_alt(JGLUE_TASKS),
    localrule: True
    conda:
        "../envs/eval.yaml"
    resources:
        mem_mb=500,
        runtime=10,
    params:
        spec=jglue_spec,
        code=code("eval.collect"),
    shell:
        "python -m scripts.eval.collect --spec {params.spec:q} --runs {input.runs:q}"
        " --output {output:q} 2> {log:q}"


rule jglue_results:
    input:
        jglue_results_metrics,
    output:
        md=PATHS.jglue_results_md,
        json=PATHS.jglue_results_json,
    log:
        "logs/eval/jglue_results.log",
    benchmark:
        "logs/benchmarks/eval/jglue_results.tsv"
    localrule: True
    conda:
        "../envs/eval.yaml"
    resources:
        mem_mb=500,
        runtime=10,
    params:
        models=config.get("default_eval") or [],
        code=code("eval.results"),
    shell:
        "python -m scripts.eval.results --metrics {input:q} --models {params.models:q}"
        " --output-md {output.md:q} --output-json {output.json:q} 2> {log:q}"
