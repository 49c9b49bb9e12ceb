# Per-shard pretraining TFRecords (BERT sentence pairs, whole-word masking over MeCab words).


include: "inputs/pretraining_data.smk"


rule pretraining_data:
    input:
        text=PATHS.shard,
        vocab=PATHS.vocab,
        tokenizer=data_tokenizer_files,
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
        mecab_dic=data_mecab_dic,
        tokenizer=data_tokenizer_args,
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
        " {params.tokenizer:q} --max-seq-length {params.max_seq_length} --max-predictions-per-seq {params.max_predictions}"
        " --masked-lm-prob {params.masked_lm_prob} --short-seq-prob {params.short_seq_prob}"
        " --dupe-factor {params.dupe_factor} --seed {params.seed} --compressor isal --threads {threads}"
        " --stats {output.stats:q} 2> {log:q}"


rule token_shards:
    """Per-shard token ids packed into FULL-SENTENCES rows of {seq} tokens (RoBERTa, DistilBERT
    training data; masked by the loader), tokenised by the same code as the TFRecords.
    """
    input:
        text=PATHS.shard,
        vocab=PATHS.vocab,
        tokenizer=data_tokenizer_files,
    output:
        shard=PATHS.token_shard,
        stats=PATHS.token_shard_stats,
    log:
        "logs/pretraining_data/token_shards/{tokenizer}/{corpus}/seq{seq}/{shard}.log",
    benchmark:
        "logs/benchmarks/pretraining_data/token_shards/{tokenizer}/{corpus}/seq{seq}/{shard}.tsv"
    wildcard_constraints:
        seq=r"\d+",
    conda:
        "../envs/data.yaml"
    threads: 4
    resources:
        mem_mb=mem_token_shards,
        runtime=4 * 60,
    params:
        subword=tokenizer_value("type"),
        mecab_dic=data_mecab_dic,
        tokenizer=data_tokenizer_args,
        code=code("pretraining_data.create"),
    shell:
        "python -m scripts.pretraining_data.create --output-format token-shards --input {input.text:q}"
        " --output {output.shard:q} --vocab-file {input.vocab:q} --subword-tokenizer {params.subword}"
        " --mecab-dic {params.mecab_dic} {params.tokenizer:q} --max-seq-length {wildcards.seq} --max-predictions-per-seq 1"
        " --threads {threads} --stats {output.stats:q} 2> {log:q}"
