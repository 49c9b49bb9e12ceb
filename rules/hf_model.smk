# Model Garden checkpoint -> Hugging Face `transformers` BERT directory, written whole by one job.
# The checkpoint is the one the final stage's done.json names (its run directory's last one).
# The output is the build directory that evaluation reads; rules/release.smk makes the released
# hf_model/<name>/ from it, with the model card.


include: "inputs/hf_model.smk"


rule convert:
    input:
        done=hf_done,
        config=hf_config,
        vocab=hf_vocab,
        tokenizer=hf_tokenizer_files,
        raw_digests=hf_raw_digests,
    output:
        directory(PATHS.hf_build),
    log:
        "logs/hf_model/convert/{model}.log",
    benchmark:
        "logs/benchmarks/hf_model/convert/{model}.tsv"
    conda:
        "../envs/convert.yaml"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=60,
    params:
        subword=hf_subword,
        mecab_dic=hf_mecab_dic,
        card=hf_card,
        code=code("hf_model.convert", "hf_model.provenance"),
    shell:
        "python -m scripts.hf_model.convert --config {input.config:q}"
        " --vocab-file {input.vocab:q} --subword-tokenizer {params.subword} --mecab-dic {params.mecab_dic}"
        " --model-name {wildcards.model:q} --card-json {params.card:q}"
        " --raw-digests {input.raw_digests:q} --done {input.done:q}"
        " --output-dir {output:q} 2> {log:q}"
