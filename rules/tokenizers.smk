# Character sets and vocabularies: tokenizers/<name>/vocab.txt


include: "inputs/tokenizers.smk"


rule alphabet:
    """The UniDic character set (from lex.csv when configured, else unidic-lite's sys.dic)."""
    input:
        # the configured lex.csv, if any: an edit of it reruns the alphabet and what follows
        lex=alphabet_lex_file,
    output:
        PATHS.alphabet,
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
        code=code("tokenizers.alphabet"),
    shell:
        "python -m scripts.tokenizers.alphabet --output {output:q}"
        " {params.lex_args:q} 2> {log:q}"


rule wordpiece_vocab:
    """MeCab (unidic-lite) pre-tokenization + WordPiece, trained on the corpus sample."""
    input:
        sample=tokenizer_sample,
        alphabet=tokenizer_alphabet,
    output:
        vocab=PATHS.vocab,
        stats=PATHS.vocab_stats,
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
        code=code("tokenizers.train_wordpiece"),
    shell:
        'python -m scripts.tokenizers.train_wordpiece --input {input.sample:q} --output-dir "$(dirname {output.vocab:q})"'
        " --mecab-dic {params.mecab_dic} --vocab-size {params.vocab_size}"
        " --limit-alphabet {params.limit_alphabet} --initial-alphabet-file {input.alphabet:q}"
        " --num-unused-tokens {params.num_unused} --wordpieces-prefix {params.prefix:q}"
        " --threads {threads} 2> {log:q}"


rule character_vocab:
    """The recipe's character vocabulary: the head of a wordpiece vocabulary, checked to be exactly
    the specials, [unusedN] and the base's alphabet (its size is counted, vocab_size a request).
    """
    input:
        base=base_vocab,
        alphabet=base_alphabet,
    output:
        vocab=PATHS.vocab,
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
        num_unused=base_value("num_unused_tokens"),
        code=code("tokenizers.char_vocab"),
    shell:
        "python -m scripts.tokenizers.char_vocab --input {input.base:q} --alphabet-file {input.alphabet:q}"
        " --num-unused-tokens {params.num_unused} --output {output.vocab:q}"
        " --vocab-size {params.vocab_size} 2> {log:q}"


rule sentencepiece_mecab:
    """MeCab (unidic-lite) words, then SentencePiece trained on them (LINE style): spiece.model and
    vocab.txt, shipped with BertJapaneseTokenizer (subword_tokenizer_type sentencepiece).
    """
    input:
        sample=tokenizer_sample,
    output:
        vocab=PATHS.vocab,
        model=PATHS.spm_model,
        stats=PATHS.vocab_stats,
    log:
        "logs/tokenizers/sentencepiece_mecab/{tokenizer}.log",
    benchmark:
        "logs/benchmarks/tokenizers/sentencepiece_mecab/{tokenizer}.tsv"
    wildcard_constraints:
        tokenizer=_alt(SP_MECAB),
    conda:
        "../envs/data.yaml"
    threads: 8
    resources:
        mem_mb=mem_sentencepiece,
        runtime=4 * 60,
    params:
        args=sentencepiece_args,
        code=code("tokenizers.train_sentencepiece"),
    shell:
        'python -m scripts.tokenizers.train_sentencepiece --input {input.sample:q} --output-dir "$(dirname {output.vocab:q})"'
        " {params.args:q} --threads {threads} 2> {log:q}"


rule sentencepiece_raw:
    """SentencePiece on the raw text (rinna style): spiece.model, vocab.txt and the fast tokenizer
    (tokenizer.json) that ships with the model and tokenises the data."""
    input:
        sample=tokenizer_sample,
    output:
        vocab=PATHS.vocab,
        model=PATHS.spm_model,
        json=PATHS.tokenizer_json,
        stats=PATHS.vocab_stats,
    log:
        "logs/tokenizers/sentencepiece_raw/{tokenizer}.log",
    benchmark:
        "logs/benchmarks/tokenizers/sentencepiece_raw/{tokenizer}.tsv"
    wildcard_constraints:
        tokenizer=_alt(SP_RAW),
    conda:
        "../envs/data.yaml"
    threads: 8
    resources:
        mem_mb=mem_sentencepiece,
        runtime=4 * 60,
    params:
        args=sentencepiece_args,
        code=code("tokenizers.train_sentencepiece"),
    shell:
        'python -m scripts.tokenizers.train_sentencepiece --input {input.sample:q} --output-dir "$(dirname {output.vocab:q})"'
        " {params.args:q} --threads {threads} 2> {log:q}"
