# Raw dumps -> cleaned sentence-per-line corpora -> document-level shards -> tokenizer sample.


include: "inputs/corpus.smk"


rule raw_sha256:
    """Digest of a raw dump's file(s), verified against raw.sha256/raw.size when configured
    (downloaded or not), recorded in every model's provenance."""
    input:
        raw=raw_dump,
    output:
        PATHS.raw_digest,
    log:
        "logs/corpus/raw_sha256/{corpus}.log",
    benchmark:
        "logs/benchmarks/corpus/raw_sha256/{corpus}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=200,
        runtime=120,
    params:
        code=code("corpus.raw_digest"),
    shell:
        "python -m scripts.corpus.raw_digest --input {input.raw:q} --corpus {wildcards.corpus:q}"
        " --output {output:q} 2> {log:q}"


rule corpus_wiki:
    """Wikipedia cleaning (cleaning.mode: recipe or project): CirrusSearch JSON -> sentences,
    blank line between pages. Needs the dump's verified digest first."""
    input:
        raw=raw_dump,
        # verified first (pins are untracked, so adding one rebuilds nothing: rules/common.smk)
        digest=PATHS.raw_digest,
    output:
        corpus=PATHS.wiki_text,
        stats=PATHS.wiki_stats,
    log:
        "logs/corpus/corpus_wiki/{corpus}.log",
    benchmark:
        "logs/benchmarks/corpus/corpus_wiki/{corpus}.tsv"
    wildcard_constraints:
        corpus=_alt(CIRRUS),
    conda:
        "../envs/data.yaml"
    threads: 8
    resources:
        mem_mb=4000,
        runtime=12 * 60,
    params:
        mode=cleaning("mode", "project"),
        split=split_flag,
        min_len=cleaning("min_sentence_length"),
        max_len=cleaning("max_sentence_length"),
        code=code("corpus.wiki"),
    shell:
        "python -m scripts.corpus.wiki --input {input.raw:q} --output {output.corpus:q}"
        " --mode {params.mode} --stats {output.stats:q} --min-sentence-length {params.min_len}"
        " --max-sentence-length {params.max_len}"
        " {params.split} --threads {threads} 2> {log:q}"


# One sharding rule per corpus: its number of outputs (num_shards) is fixed by config.
for _corpus in CORPORA:

    rule:
        name:
            registry.shard_rule_name(_corpus)
        input:
            text=shard_source_of(_corpus),
            # CC-100 is sharded straight from the dump: its verified digest comes first
            # verified first (see corpus_wiki)
            digest=[] if _corpus in CIRRUS else raw_digest_of(_corpus),
        output:
            shards=shard_paths(_corpus),
            stats=PATHS.shard_stats.format(corpus=_corpus),
        log:
            f"logs/corpus/corpus_shards/{_corpus}.log",
        benchmark:
            f"logs/benchmarks/corpus/corpus_shards/{_corpus}.tsv"
        conda:
            "../envs/data.yaml"
        threads: 4
        resources:
            mem_mb=1000,
            runtime=8 * 60,
        params:
            fmt="sentences" if _corpus in CIRRUS else "cc100",
            num_shards=CORPORA[_corpus]["num_shards"],
            seed=config["seed"],
            split=split_flag({"corpus": _corpus}),
            min_len=CORPORA[_corpus]["cleaning"]["min_sentence_length"],
            max_len=CORPORA[_corpus]["cleaning"]["max_sentence_length"],
            code=code("corpus.shard"),
        shell:
            "python -m scripts.corpus.shard --input {input.text:q} --format {params.fmt}"
            ' --output-dir "$(dirname {output.stats:q})" --num-shards {params.num_shards} --seed {params.seed}'
            " {params.split} --min-sentence-length {params.min_len} --max-sentence-length {params.max_len}"
            " --stats {output.stats:q} --threads {threads} 2> {log:q}"


rule corpus_sample:
    """The tokenizer-training sample: a seeded sample of non-empty lines over all shards."""
    input:
        shards=shard_inputs,
    output:
        PATHS.sample,
    log:
        "logs/corpus/corpus_sample/{corpus}.log",
    benchmark:
        "logs/benchmarks/corpus/corpus_sample/{corpus}.tsv"
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=2000,
        runtime=120,
    params:
        num_lines=corpus_value("sample_lines"),
        seed=config["seed"],
        code=code("corpus.sample"),
    shell:
        "python -m scripts.corpus.sample --input {input.shards:q} --output {output:q}"
        " --num-lines {params.num_lines} --seed {params.seed} 2> {log:q}"
