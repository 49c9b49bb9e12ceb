# Input functions and resources of the tokenizers stage (its rules are in rules/tokenizers.smk).


# ---------------------------------------------------------------------------------------------


def tokenizer_value(key):
    def get(wildcards):
        return TOKENIZERS[wildcards.tokenizer][key]

    return get


def tokenizer_sample(wildcards):
    return PATHS.sample.format(corpus=TOKENIZERS[wildcards.tokenizer]["train_corpus"])


def tokenizer_alphabet(wildcards):
    return PATHS.alphabet.format(alphabet=TOKENIZERS[wildcards.tokenizer]["alphabet"])


def base_vocab(wildcards):
    return PATHS.vocab.format(tokenizer=TOKENIZERS[wildcards.tokenizer]["base"])


def alphabet_lex_args(wildcards):
    """`--lex-file PATH` when a UniDic lex.csv is configured, else nothing (derive from sys.dic)."""
    lex = config["alphabets"][wildcards.alphabet].get("lex_file")
    return ["--lex-file", lex] if lex else []
