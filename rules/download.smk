# Raw dumps as part of the DAG: every corpus with a `url` in config gets its dump downloaded to
# corpora.<c>.raw.path (resumable from a .part file, verified against raw.sha256/raw.size, renamed
# into place only when good). A dump already at that path is used as it is. Dumps are never
# marked ancient: new bytes in a dump must rebuild what follows from it.
#
# One rule for all dumps: the output is the dump path itself, a wildcard that can only match the
# configured paths of corpora with a url (so the rule never competes with other rules' outputs).


include: "inputs/download.smk"


# Opt-in: `download_missing_dumps: true` (config) enables it; RAW_DOWNLOADS is in common.smk.


rule download_raw:
    """Download a raw dump from its configured url (resumable, checksum-verified)."""
    output:
        "{raw}",
    log:
        "logs/download/{raw}.log",
    benchmark:
        "logs/benchmarks/download/{raw}.tsv"
    wildcard_constraints:
        raw=RAW_DOWNLOAD_PATHS,
    retries: 3
    # Runs where Snakemake runs: cluster compute nodes often have no route to the internet.
    localrule: True
    conda:
        "../envs/data.yaml"
    resources:
        mem_mb=300,
        runtime=24 * 60,
    # No `code=code("download.fetch")` here, unlike the other rules: a dump's bytes do not depend on
    # the downloader (they are checked against sha256/size), and a tracked code digest would
    # make any edit of scripts/download/fetch.py plan a new download and, through the dump's new
    # mtime, a rebuild of every corpus, tokenizer, TFRecord and model that follows from it.
    # url/sha256/size are tracked: changing one plans a new download (to keep an existing dump,
    # run `snakemake --cleanup-metadata <dump path>` after the edit).
    params:
        args=download_args,
    shell:
        "python -m scripts.download.fetch {params.args:q} --output {output:q} 2> {log:q}"
