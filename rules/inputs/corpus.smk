# Input functions and resources of the corpus stage (its rules are in rules/corpus.smk).


def shard_source_of(corpus):
    """Input function for sharding one corpus. CirrusSearch dumps are cleaned to
    corpus.txt.gz first; CC-100 is sharded straight from the raw dump."""

    def get(wildcards):
        if corpus in CIRRUS:
            return PATHS.wiki_text.format(corpus=corpus)
        return checked_raw_path(corpus)

    return get


def raw_digest_of(corpus):
    """The digest of a corpus's dump, verified against raw.sha256/raw.size when configured: an
    input of every rule that reads the dump, so a wrong dump stops the run before anything is
    built from it."""
    return PATHS.raw_digest.format(corpus=corpus)


def shard_inputs(wildcards):
    return shard_paths(wildcards.corpus)


def split_flag(wildcards):
    corpus = wildcards["corpus"] if isinstance(wildcards, dict) else wildcards.corpus
    split = CORPORA[corpus]["cleaning"]["split_sentences"]
    return "--split-sentences" if split else "--no-split-sentences"


def shard_paths(corpus):
    return [
        PATHS.shard.format(corpus=corpus, shard=s)
        for s in registry.shard_ids(config, corpus)
    ]


def cleaning(key, default=None):
    def get(wildcards):
        return CORPORA[wildcards.corpus]["cleaning"].get(key, default)

    return get


def corpus_value(*keys):
    def get(wildcards):
        v = CORPORA[wildcards.corpus]
        for k in keys:
            v = v[k]
        return v

    return get


def shard_seed(wildcards):
    return registry.shard_seed(config, wildcards.corpus, wildcards.shard)
