# Input functions and resources of the download stage (its rules are in rules/download.smk).


# Dumps that the download_raw job may fetch, as {path: raw entry}. A url is allowed only for a
# single-file raw.path (the registry rejects it for a list of parts).
RAW_DOWNLOADS = {
    v["raw"]["path"]: v["raw"]
    for v in CORPORA.values()
    if v["raw"].get("url")
    and isinstance(v["raw"]["path"], str)
    and config["download_missing_dumps"]
}


# A regex matching exactly those paths (the only outputs download_raw can make).
RAW_DOWNLOAD_PATHS = (
    "|".join(re.escape(p) for p in sorted(RAW_DOWNLOADS, key=len, reverse=True))
    or "(?!)"
)


def download_args(wildcards):
    raw = RAW_DOWNLOADS[wildcards.raw]
    args = ["--url", raw["url"]]
    if raw.get("sha256"):
        args += ["--sha256", raw["sha256"]]
    if raw.get("size") is not None:
        args += ["--size", str(raw["size"])]
    return args
