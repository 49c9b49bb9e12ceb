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


def base_alphabet(wildcards):
    base = TOKENIZERS[TOKENIZERS[wildcards.tokenizer]["base"]]
    return PATHS.alphabet.format(alphabet=base["alphabet"])


def base_value(key):
    def get(wildcards):
        return TOKENIZERS[TOKENIZERS[wildcards.tokenizer]["base"]][key]

    return get


def alphabet_lex_file(wildcards):
    """The configured UniDic lex.csv as an input (none when the alphabet comes from sys.dic)."""
    lex = config["alphabets"][wildcards.alphabet].get("lex_file")
    return [lex] if lex else []


def alphabet_lex_args(wildcards):
    """`--lex-file PATH` when a UniDic lex.csv is configured, else nothing (derive from sys.dic)."""
    lex = config["alphabets"][wildcards.alphabet].get("lex_file")
    return ["--lex-file", lex] if lex else []


# --- SentencePiece tokenizers (rules sentencepiece_mecab, sentencepiece_raw) ------------------

SP_MECAB = [
    t for t, v in TOKENIZERS.items() if registry.sentencepiece_style(v) == "mecab"
]
SP_RAW = [t for t, v in TOKENIZERS.items() if registry.sentencepiece_style(v) == "raw"]


def sentencepiece_args(wildcards):
    """The trainer's settings (every one shapes the model; train_threads included)."""
    tok = TOKENIZERS[wildcards.tokenizer]
    style = registry.sentencepiece_style(tok)
    args = ["--style", style, "--vocab-size", tok["vocab_size"]]
    args += ["--model-type", tok.get("model_type", "unigram")]
    args += ["--character-coverage", tok.get("character_coverage", 0.9995)]
    args += ["--max-piece-length", tok.get("max_piece_length", 16)]
    args += ["--train-threads", tok["train_threads"], "--seed", config["seed"]]
    if style == "mecab":
        args += ["--mecab-dic", tok["mecab_dic"]]
    return [str(a) for a in args]


def mem_sentencepiece(wildcards, input, attempt):
    """The trainer holds the whole sample (raw style: its suffix array, ~25 bytes per input byte);
    the MeCab style trains on the distinct words only."""
    per_mb = (
        25
        if registry.sentencepiece_style(TOKENIZERS[wildcards.tokenizer]) == "raw"
        else 4
    )
    return int(4000 + per_mb * input_mb([input.sample])) * attempt
