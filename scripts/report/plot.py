"""The report's figures, one subcommand each (``python -m scripts.report.plot <figure> ...``)::

    training   --model M --stage NAME DONE_JSON [--stage ...]             -> PNG + JSON
    corpora    --corpus NAME SHARD_STATS WIKI_STATS|- --shards F... [--corpus ...] [--max-lines N]
    tokenizers --tokenizer NAME VOCAB --records CORPUS STATS... [--tokenizer ...]
    runtime    --patterns JSON [--root logs/benchmarks]
    jglue      --results results.json --markdown results.md --html OUT.html

Every figure is written as ``--output X.png`` with ``--data X.json`` beside it: the number of
points in each panel (:mod:`scripts.report.plots`). A figure with an empty panel is still
written (the JSON says which panel is empty); the report test fails on it.
"""

from __future__ import annotations

import argparse
import json

from scripts.report import data as D
from scripts.report import plots as P
from scripts.shared.common import AtomicFiles, LOG, run_cli, write_json


def _save(fig, counts: dict, output: str, data_path: str, extra: dict | None = None) -> None:
    with AtomicFiles() as files:
        fig.savefig(files.open(output, "wb"), format="png", dpi=110, metadata={"Software": None})
    write_json(data_path, {"panels": counts, **(extra or {})})
    empty = [p for p, n in counts.items() if not n]
    if empty:
        LOG.warning("%s: empty panels: %s", output, ", ".join(empty))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="figure", required=True)
    for name in ("training", "corpora", "tokenizers", "runtime", "jglue"):
        p = sub.add_parser(name)
        p.add_argument("--output", required=True)
        p.add_argument("--data", required=True)
        if name == "training":
            p.add_argument("--model", required=True)
            p.add_argument("--stage", nargs=2, action="append", metavar=("NAME", "DONE_JSON"), required=True)
        elif name == "corpora":
            p.add_argument("--corpus", nargs=3, action="append", metavar=("NAME", "SHARD_STATS", "WIKI_STATS"),
                           required=True)
            p.add_argument("--shards", nargs="+", action="append", required=True,
                           help="the shards of each --corpus, in the same order")
            p.add_argument("--max-lines", type=int, default=20000, help="per shard, for the length histogram")
        elif name == "tokenizers":
            p.add_argument("--tokenizer", nargs=2, action="append", metavar=("NAME", "VOCAB"), required=True)
            p.add_argument("--records", nargs="+", action="append", default=[],
                           help="TOKENIZER CORPUS STATS...: pretraining stats of one (tokenizer, corpus)")
        elif name == "runtime":
            p.add_argument("--patterns", required=True, help="JSON {rule: benchmark path pattern}")
            p.add_argument("--root", default="logs/benchmarks")
        else:
            p.add_argument("--results", required=True)
            p.add_argument("--markdown", required=True)
            p.add_argument("--html", required=True)
    a = ap.parse_args(argv)

    if a.figure == "training":
        curves = D.training_curves([(n, d) for n, d in a.stage])
        fig, counts = P.training_figure(a.model, curves)
        _save(fig, counts, a.output, a.data, {"event_dirs": [c["dir"] for c in curves]})
    elif a.figure == "corpora":
        if len(a.shards) != len(a.corpus):
            ap.error("give one --shards list per --corpus")
        summaries, lengths = [], {}
        for (name, shard_stats, wiki), shards in zip(a.corpus, a.shards):
            summaries.append(D.corpus_summary(name, shard_stats, None if wiki == "-" else wiki))
            lengths[name] = D.line_lengths(shards, a.max_lines)
        fig, counts = P.corpora_figure(summaries, lengths)
        _save(fig, counts, a.output, a.data, {"corpora": summaries})
    elif a.figure == "tokenizers":
        entries = {name: {"tokenizer": name, "kinds": D.vocab_kinds(vocab), "corpora": {}} for name, vocab in a.tokenizer}
        for group in a.records:
            tok, corpus, *stats = group
            if tok not in entries:
                ap.error(f"--records names tokenizer {tok!r} not given with --tokenizer")
            entries[tok]["corpora"][corpus] = D.pretraining_summary(stats)
        fig, counts = P.tokenizers_figure(list(entries.values()))
        _save(fig, counts, a.output, a.data, {"tokenizers": list(entries.values())})
    elif a.figure == "runtime":
        rows = D.read_benchmarks(json.loads(a.patterns), a.root)
        agg = D.per_rule(rows)
        fig, counts = P.runtime_figure(agg)
        _save(fig, counts, a.output, a.data, {"rules": agg})
    else:
        with open(a.results, encoding="utf-8") as fh:
            results = json.load(fh)
        with open(a.markdown, encoding="utf-8") as fh:
            md = fh.read()
        fig, counts = P.jglue_figure(results)
        _save(fig, counts, a.output, a.data)
        with AtomicFiles() as files:
            files.open(a.html, "w", encoding="utf-8").write(P.jglue_html(results, md))
    return 0


if __name__ == "__main__":
    run_cli(main)
