# The released model directory hf_model/<name>/: the converted model (build/hf_model/<name>/,
# hard-linked) with a model card written from what the run produced, after the model's JGLUE
# evaluation when it is configured for one (so the card never states scores it did not get).


include: "inputs/release.smk"


rule hf_model:
    """hf_model/<name>/: the converted model, its model card (README.md) and the card's facts
    (card.json): architecture and parameters, tokenizer and corpus statistics, each stage's
    final losses, the JGLUE rows, a fill-mask example run at card time."""
    input:
        build=rules.convert.output,
        done=release_done,
        records=release_records,
        tokenizer=release_tokenizer_stats,
        corpora=release_corpus_stats,
        jglue=release_metrics,
    output:
        directory(PATHS.hf_model),
    log:
        "logs/release/hf_model/{model}.log",
    benchmark:
        "logs/benchmarks/release/hf_model/{model}.tsv"
    conda:
        "../envs/convert.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=30,
    params:
        spec=release_spec,
        code=code("release.assemble"),
    shell:
        "python -m scripts.release.assemble --spec {params.spec:q} --build {input.build:q}"
        " --output {output:q} --threads {threads} 2> {log:q}"
