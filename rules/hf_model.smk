# Model Garden checkpoint -> Hugging Face `transformers` BERT directory, written whole by one job.


include: "inputs/hf_model.smk"


rule hf_model:
    input:
        done=hf_done,
        config=hf_config,
        vocab=hf_vocab,
        raw_digests=hf_raw_digests,
    output:
        directory(PATHS.hf_model),
    log:
        "logs/hf_model/{model}.log",
    benchmark:
        "logs/benchmarks/hf_model/{model}.tsv"
    conda:
        "../envs/convert.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        checkpoint=hf_checkpoint,
        subword=hf_subword,
        mecab_dic=hf_mecab_dic,
        card=hf_card,
        code=code("hf_model.convert", "hf_model.provenance"),
    shell:
        "python -m scripts.hf_model.convert --config {input.config:q} --checkpoint {params.checkpoint:q}"
        " --vocab-file {input.vocab:q} --subword-tokenizer {params.subword} --mecab-dic {params.mecab_dic}"
        " --model-name {wildcards.model:q} --card-json {params.card:q}"
        " --raw-digests {input.raw_digests:q} --done {input.done:q}"
        " --output-dir {output:q} 2> {log:q}"
