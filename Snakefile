# Japanese BERT-family models, from raw dumps to Hugging Face model directories.
#
#   snakemake --cores all                                  # the demo model on the bundled sample,
#                                                          # its JGLUE evaluation and report figures
#   snakemake --cores 16 hf_model/bert-base-japanese-v3    # a recipe model from the real dumps
#   snakemake --rulegraph | dot -Tsvg > rulegraph.svg      # the stage graph
#
# Stages live in rules/*.smk; their logic in scripts/ (importable, unit tested).

from snakemake.utils import min_version

min_version("9.0")


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"


wildcard_constraints:
    corpus=_alt(CORPORA),
    shard=r"\d{2,3}",
    tokenizer=_alt(TOKENIZERS),
    arch=_alt(config["architectures"]),
    stage=_alt(STAGES),
    model=_alt(MODELS),
    alphabet=_alt(config["alphabets"]),


include: "rules/download.smk"
include: "rules/corpus.smk"
include: "rules/tokenizers.smk"
include: "rules/pretraining_data.smk"
include: "rules/training.smk"
include: "rules/hf_model.smk"
include: "rules/eval.smk"
include: "rules/release.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        expand(PATHS.hf_model, model=config["default_models"]),
        eval_targets(),
        report_targets(),
    localrule: True


onsuccess:
    clean_model_dirs()
    print_built_models(config["default_models"])
    print_eval_summary()
    print_report_hint()


onerror:
    clean_model_dirs()
