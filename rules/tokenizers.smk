# Character sets and vocabularies: tokenizers/<name>/vocab.txt


rule alphabet:
    """The UniDic character set (from lex.csv when configured, else unidic-lite's sys.dic)."""
    output:
        "tokenizers/alphabet/{alphabet}.txt",
    log:
        "logs/tokenizers/alphabet/{alphabet}.log",
    benchmark:
        "logs/benchmarks/tokenizers/alphabet/{alphabet}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=30,
    params:
        lex_args=alphabet_lex_args,
        code=code("make_alphabet"),
    shell:
        "python -m scripts.make_alphabet --output {output:q}"
        " {params.lex_args:q} 2> {log:q}"


rule wordpiece_vocab:
    """MeCab (unidic-lite) pre-tokenization + WordPiece, trained on the corpus sample."""
    input:
        sample=tokenizer_sample,
        alphabet=tokenizer_alphabet,
    output:
        vocab="tokenizers/{tokenizer}/vocab.txt",
        stats="tokenizers/{tokenizer}/train.stats.json",
    log:
        "logs/tokenizers/wordpiece_vocab/{tokenizer}.log",
    benchmark:
        "logs/benchmarks/tokenizers/wordpiece_vocab/{tokenizer}.tsv"
    wildcard_constraints:
        tokenizer=_alt(WORDPIECE),
    conda:
        "../envs/data.yaml"
    threads: 8
    resources:
        mem_mb=16000,
        runtime=4 * 60,
    params:
        mecab_dic=tokenizer_value("mecab_dic"),
        vocab_size=tokenizer_value("vocab_size"),
        limit_alphabet=tokenizer_value("limit_alphabet"),
        num_unused=tokenizer_value("num_unused_tokens"),
        prefix=tokenizer_value("wordpieces_prefix"),
        code=code("train_tokenizer"),
    shell:
        'python -m scripts.train_tokenizer --input {input.sample:q} --output-dir "$(dirname {output.vocab:q})"'
        " --mecab-dic {params.mecab_dic} --vocab-size {params.vocab_size}"
        " --limit-alphabet {params.limit_alphabet} --initial-alphabet-file {input.alphabet:q}"
        " --num-unused-tokens {params.num_unused} --wordpieces-prefix {params.prefix:q}"
        " --threads {threads} 2> {log:q}"


rule character_vocab:
    """The recipe's character vocabulary: the first vocab_size entries of a wordpiece vocabulary."""
    input:
        base=base_vocab,
    output:
        vocab="tokenizers/{tokenizer}/vocab.txt",
    log:
        "logs/tokenizers/character_vocab/{tokenizer}.log",
    benchmark:
        "logs/benchmarks/tokenizers/character_vocab/{tokenizer}.tsv"
    wildcard_constraints:
        tokenizer=_alt(CHARACTER),
    localrule: True
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=200,
        runtime=5,
    params:
        vocab_size=tokenizer_value("vocab_size"),
        code=code("make_char_vocab"),
    shell:
        "python -m scripts.make_char_vocab --input {input.base:q} --output {output.vocab:q}"
        " --vocab-size {params.vocab_size} 2> {log:q}"
