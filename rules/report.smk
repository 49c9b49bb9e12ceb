# The figures of `snakemake --report report.html`: each rule draws one PNG (flagged with report(),
# captions in report/) and a JSON of how many points each panel holds.


include: "inputs/report.smk"


rule report_training:
    input:
        report_stage_done,
    output:
        png=report(
            PATHS.report_training,
            caption="../report/training.rst",
            category="Pretraining",
            labels={"model": "{model}", "figure": "loss, MLM and NSP accuracy"},
        ),
        data=PATHS.report_training_data,
    log:
        "logs/report/report_training/{model}.log",
    benchmark:
        "logs/benchmarks/report/report_training/{model}.tsv"
    localrule: True
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        stages=report_stage_args,
        code=code("report.plot"),
    shell:
        "python -m scripts.report.plot training --model {wildcards.model:q} {params.stages:q}"
        " --output {output.png:q} --data {output.data:q} 2> {log:q}"


rule report_corpora:
    input:
        report_corpus_inputs,
    output:
        png=report(
            PATHS.report_plot.format(name="corpora"),
            caption="../report/corpora.rst",
            category="Data",
            labels={"figure": "corpus statistics"},
        ),
        data=PATHS.report_plot_data.format(name="corpora"),
    log:
        "logs/report/report_corpora.log",
    benchmark:
        "logs/benchmarks/report/report_corpora.tsv"
    localrule: True
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=30,
    params:
        corpora=report_corpus_args,
        max_lines=20000,
        code=code("report.plot"),
    shell:
        "python -m scripts.report.plot corpora {params.corpora:q} --max-lines {params.max_lines}"
        " --output {output.png:q} --data {output.data:q} 2> {log:q}"


rule report_tokenizers:
    input:
        report_tokenizer_inputs,
    output:
        png=report(
            PATHS.report_plot.format(name="tokenizers"),
            caption="../report/tokenizers.rst",
            category="Data",
            labels={"figure": "tokenizer statistics"},
        ),
        data=PATHS.report_plot_data.format(name="tokenizers"),
    log:
        "logs/report/report_tokenizers.log",
    benchmark:
        "logs/benchmarks/report/report_tokenizers.tsv"
    localrule: True
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        tokenizers=report_tokenizer_args,
        code=code("report.plot"),
    shell:
        "python -m scripts.report.plot tokenizers {params.tokenizers:q}"
        " --output {output.png:q} --data {output.data:q} 2> {log:q}"


rule report_jglue:
    input:
        md=PATHS.jglue_results_md,
        json=PATHS.jglue_results_json,
    output:
        png=report(
            PATHS.report_plot.format(name="jglue"),
            caption="../report/jglue.rst",
            category="JGLUE",
            labels={"figure": "scores"},
        ),
        data=PATHS.report_plot_data.format(name="jglue"),
        html=report(
            PATHS.report_jglue,
            caption="../report/jglue_table.rst",
            category="JGLUE",
            labels={"figure": "table"},
        ),
    log:
        "logs/report/report_jglue.log",
    benchmark:
        "logs/benchmarks/report/report_jglue.tsv"
    localrule: True
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        code=code("report.plot"),
    shell:
        "python -m scripts.report.plot jglue --results {input.json:q} --markdown {input.md:q}"
        " --html {output.html:q} --output {output.png:q} --data {output.data:q} 2> {log:q}"


rule report_runtime:
    input:
        report_runtime_after,
    output:
        png=report(
            PATHS.report_plot.format(name="runtime"),
            caption="../report/runtime.rst",
            category="Runtime",
            labels={"figure": "time and memory per rule"},
        ),
        data=PATHS.report_plot_data.format(name="runtime"),
    log:
        "logs/report/report_runtime.log",
    benchmark:
        "logs/benchmarks/report/report_runtime.tsv"
    localrule: True
    conda:
        "../envs/report.yaml"
    resources:
        mem_mb=1000,
        runtime=10,
    params:
        patterns=report_benchmark_patterns,
        code=code("report.plot"),
    shell:
        "python -m scripts.report.plot runtime --patterns {params.patterns:q}"
        " --output {output.png:q} --data {output.data:q} 2> {log:q}"
