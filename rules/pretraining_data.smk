# Per-shard pretraining TFRecords (BERT sentence pairs, whole-word masking over MeCab words).


include: "inputs/pretraining_data.smk"


rule pretraining_data:
    input:
        text=PATHS.shard,
        vocab=PATHS.vocab,
    output:
        records=PATHS.records,
        stats=PATHS.records_stats,
    log:
        "logs/pretraining_data/{tokenizer}/{corpus}/{shard}.log",
    benchmark:
        "logs/benchmarks/pretraining_data/{tokenizer}/{corpus}/{shard}.tsv"
    conda:
        "../envs/data.yaml"
    threads: 4
    resources:
        mem_mb=mem_pretraining_data,
        runtime=6 * 60,
    params:
        subword=tokenizer_value("type"),
        mecab_dic=tokenizer_value("mecab_dic"),
        max_seq_length=corpus_value("pretraining_data", "max_seq_length"),
        max_predictions=corpus_value("pretraining_data", "max_predictions_per_seq"),
        masked_lm_prob=corpus_value("pretraining_data", "masked_lm_prob"),
        short_seq_prob=corpus_value("pretraining_data", "short_seq_prob"),
        dupe_factor=corpus_value("pretraining_data", "dupe_factor"),
        seed=shard_seed,
        code=code("pretraining_data.create"),
    shell:
        "python -m scripts.pretraining_data.create --input {input.text:q} --output {output.records:q}"
        " --vocab-file {input.vocab:q} --subword-tokenizer {params.subword} --mecab-dic {params.mecab_dic}"
        " --max-seq-length {params.max_seq_length} --max-predictions-per-seq {params.max_predictions}"
        " --masked-lm-prob {params.masked_lm_prob} --short-seq-prob {params.short_seq_prob}"
        " --dupe-factor {params.dupe_factor} --seed {params.seed} --compressor isal --threads {threads}"
        " --stats {output.stats:q} 2> {log:q}"
