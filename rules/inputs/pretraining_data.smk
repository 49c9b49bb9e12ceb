# Input functions and resources of the pretraining_data stage (its rules are in rules/pretraining_data.smk).


def mem_pretraining_data(wildcards, input, attempt):
    # Compact token-id arrays: ~1 byte of RSS per input byte measured (benchmarks/), plus a base.
    return int(1500 + 2 * input_mb([input.text])) * attempt
