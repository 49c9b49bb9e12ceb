# Input functions and resources of the pretraining_data stage (its rules are in rules/pretraining_data.smk).


def mem_pretraining_data(wildcards, input, attempt):
    # Compact token-id arrays: ~1 byte of RSS per input byte measured (benchmarks/), plus a base.
    return int(1500 + 2 * input_mb([input.text])) * attempt


def _data_tokenizer(wildcards):
    return TOKENIZERS[wildcards.tokenizer]


def data_tokenizer_files(wildcards):
    """A SentencePiece tokenizer's model files (besides vocab.txt), as inputs."""
    style = registry.sentencepiece_style(_data_tokenizer(wildcards))
    if style == "mecab":
        return [PATHS.spm_model.format(tokenizer=wildcards.tokenizer)]
    if style == "raw":
        return [PATHS.tokenizer_json.format(tokenizer=wildcards.tokenizer)]
    return []


def data_tokenizer_args(wildcards):
    style = registry.sentencepiece_style(_data_tokenizer(wildcards))
    files = data_tokenizer_files(wildcards)
    if style == "mecab":
        return ["--spm-file", *files]
    if style == "raw":
        return ["--tokenizer-json", *files]
    return []


def data_mecab_dic(wildcards):
    """The MeCab dictionary, or `none` (plain SentencePiece)."""
    return _data_tokenizer(wildcards).get("mecab_dic") or "none"


def mem_token_shards(wildcards, input, attempt):
    # the tokenised shard (2 bytes a token) and the packed rows (as many again)
    return int(1500 + 3 * input_mb([input.text])) * attempt
