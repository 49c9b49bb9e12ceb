"""The report's figures (matplotlib, Agg) and the JGLUE table as HTML.

Every figure function returns ``(figure, counts)``: ``counts`` maps each panel to the number of
data points drawn in it, written beside the PNG (``plots/<name>.json``) so that a test can check
that no panel came out empty. Labels are ASCII (the default fonts have no Japanese glyphs).
"""

from __future__ import annotations

import html
import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from scripts.eval import tasks as T  # noqa: E402

PANELS = (("loss", "Loss", ("training_loss", "validation_loss")),
          ("mlm_accuracy", "MLM accuracy", ("masked_lm_accuracy",)),
          ("nsp_accuracy", "NSP accuracy", ("next_sentence_accuracy",)))


def training_figure(model: str, curves: list[dict]):
    """Loss, MLM and NSP accuracy over the stages (steps continue across stages)."""
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2), constrained_layout=True)
    counts = {p: 0 for p, _, _ in PANELS}
    offset = 0
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, st in enumerate(curves):
        color = colors[i % len(colors)]
        last = 0
        for ax, (panel, title, tags) in zip(axes, PANELS):
            for split, style in (("train", "-"), ("validation", "o")):
                for tag in tags:
                    pts = st[split].get(tag, [])
                    if not pts:
                        continue
                    xs = [offset + s for s, _ in pts]
                    ys = [v for _, v in pts]
                    last = max(last, max(s for s, _ in pts))
                    kw = {"linestyle": "-", "marker": None} if style == "-" else {"linestyle": "none", "marker": "o"}
                    ax.plot(xs, ys, color=color, label=f"{st['stage']} {split}" + (" (lm)" if tag == "lm_example_loss" else ""),
                            **kw)
                    counts[panel] += len(pts)
        if i:
            for ax in axes:
                ax.axvline(offset, color="grey", linewidth=0.8, linestyle=":")
        offset += last
    for ax, (_, title, _) in zip(axes, PANELS):
        ax.set_title(title)
        ax.set_xlabel("step (stages in sequence)")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    fig.suptitle(f"{model}: pretraining curves")
    return fig, counts


def corpora_figure(summaries: list[dict], lengths: dict[str, list[int]]):
    n = len(summaries)
    fig, axes = plt.subplots(n, 3, figsize=(15, 3.6 * n), constrained_layout=True, squeeze=False)
    counts = {}
    for row, s in zip(axes, summaries):
        name = s["corpus"]
        keys = [k for k in ("pages_read", "pages_written", "documents", "sentences", "lines") if k in s]
        row[0].bar(keys, [s[k] for k in keys], color="tab:blue")
        row[0].set_title(f"{name}: counts")
        row[0].tick_params(axis="x", labelrotation=20, labelsize=8)
        for k, v in zip(keys, [s[k] for k in keys]):
            row[0].annotate(f"{v:,}", (k, v), ha="center", va="bottom", fontsize=7)
        counts[f"{name}/counts"] = len(keys)
        skipped = s["skipped"]
        if skipped:
            row[1].barh(list(skipped), list(skipped.values()), color="tab:red")
            row[1].tick_params(axis="y", labelsize=7)
        else:
            row[1].text(0.5, 0.5, "nothing skipped", ha="center", va="center", transform=row[1].transAxes)
        row[1].set_title(f"{name}: skipped / dropped, by reason")
        counts[f"{name}/skipped"] = len(skipped) or 1   # "nothing skipped" is the datum
        ls = lengths.get(name, [])
        if ls:
            row[2].hist(ls, bins=min(50, max(5, int(math.sqrt(len(ls))))), color="tab:green")
        row[2].set_title(f"{name}: characters per line ({len(ls):,} lines)")
        row[2].set_xlabel("characters")
        counts[f"{name}/lengths"] = len(ls)
    return fig, counts


def tokenizers_figure(entries: list[dict]):
    """entries: ``{tokenizer, kinds: {kind: n}, corpora: {corpus: pretraining summary}}``."""
    from scripts.report.data import VOCAB_KINDS

    fig, axes = plt.subplots(1, 2, figsize=(14, 0.9 * max(3, len(entries)) + 2.5), constrained_layout=True)
    names = [e["tokenizer"] for e in entries]
    left = [0] * len(entries)
    for kind in VOCAB_KINDS:
        vals = [e["kinds"].get(kind, 0) for e in entries]
        axes[0].barh(names, vals, left=left, label=kind)
        left = [a + b for a, b in zip(left, vals)]
    for y, total in enumerate(left):
        axes[0].annotate(f"{total:,}", (total, y), va="center", fontsize=8)
    axes[0].set_title("vocabulary by kind of entry")
    axes[0].legend(fontsize=7)
    pairs = [(e["tokenizer"], c, p) for e in entries for c, p in e["corpora"].items()]
    labels = [f"{t} / {c}" for t, c, _ in pairs]
    axes[1].barh(labels, [100 * p["unk_rate"] for _, _, p in pairs], color="tab:orange")
    for y, (_, _, p) in enumerate(pairs):
        axes[1].annotate(f"{100 * p['unk_rate']:.2f}% UNK, {p['mean_tokens_per_instance']:.1f} tok/inst",
                         (100 * p["unk_rate"], y), va="center", fontsize=7)
    axes[1].set_title("[UNK] rate in the pretraining data (%)")
    axes[1].tick_params(axis="y", labelsize=7)
    return fig, {"vocabulary": sum(1 for e in entries if sum(e["kinds"].values())), "unk_rate": len(pairs)}


def runtime_figure(rules: list[dict]):
    fig, axes = plt.subplots(1, 2, figsize=(14, 0.32 * max(6, len(rules)) + 1.5), constrained_layout=True)
    names = [f"{r['rule']} ({r['jobs']})" for r in rules][::-1]
    axes[0].barh(names, [r["total_s"] for r in rules][::-1], color="tab:blue")
    axes[0].set_title("wall time per rule, all jobs (s); (jobs)")
    axes[0].set_xscale("log")
    axes[1].barh(names, [r["max_rss"] for r in rules][::-1], color="tab:purple")
    axes[1].set_title("peak memory of a job (max RSS, MB)")
    for ax in axes:
        ax.tick_params(axis="y", labelsize=7)
        ax.grid(alpha=0.3, axis="x")
    return fig, {"runtime": sum(1 for r in rules if r["total_s"] > 0), "memory": sum(1 for r in rules if r["max_rss"] > 0)}


def jglue_figure(results: dict):
    """Per task, the first metric of each of our rows beside the published base-v3 row."""
    cols = results["columns"]
    rows = [r for r in results["rows"] if r["source"] != "published"]
    ref = next((r for r in results["rows"] if r["model"] == "bert-base-japanese-v3"), None)
    shown = rows + ([ref] if ref else [])
    fig, ax = plt.subplots(figsize=(12, 4), constrained_layout=True)
    width = 0.8 / max(1, len(shown))
    n = 0
    for i, r in enumerate(shown):
        xs, ys = [], []
        for j, t in enumerate(cols):
            cell = r["cells"].get(t, {})
            m = results["metric_names"][t][0]
            if cell.get("skipped") or m not in (cell.get("metrics") or {}):
                continue
            xs.append(j + i * width)
            ys.append(cell["metrics"][m])
        label = r["model"] + (" (published)" if r["source"] == "published" else "")
        ax.bar(xs, ys, width=width, label=label, hatch="//" if r["source"] == "published" else None)
        for x, y in zip(xs, ys):
            ax.annotate(f"{y:.3f}", (x, max(y, 0.0)), ha="center", va="bottom", fontsize=7)
        n += len(ys)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(cols))])
    ax.set_xticklabels([f"{results['titles'][t]}\n{T.METRIC_LABELS[results['metric_names'][t][0]]}" for t in cols])
    ax.set_ylim(min(0.0, ax.get_ylim()[0]), 1.0)
    ax.set_title("JGLUE dev (first metric of each task; missing bar = skipped)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return fig, {"scores": n}


def jglue_html(results: dict, markdown_text: str) -> str:
    """A self-contained HTML page with the results table (cells as in results.md)."""
    from scripts.eval.summary import cell_text

    cols = results["columns"]
    head = "".join(f"<th>{html.escape(results['titles'][t])}<br><small>"
                   f"{' / '.join(T.METRIC_LABELS[m] for m in results['metric_names'][t])}</small></th>" for t in cols)
    body = []
    for r in results["rows"]:
        pub = r["source"] == "published"
        cells = "".join(f"<td>{html.escape(cell_text(r['cells'][t], T.get(t)))}</td>" for t in cols)
        src = "published (cl-tohoku README)" if pub else f"this build: {r['dataset']}"
        style = ' class="pub"' if pub else ""
        body.append(f"<tr{style}><td><code>{html.escape(r['model'])}</code></td>{cells}<td>{html.escape(src)}</td></tr>")
    notes = "".join(f"<li>{html.escape(line[2:])}</li>" for line in markdown_text.splitlines() if line.startswith("- "))
    return ("<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>JGLUE results</title><style>"
            "body{font-family:sans-serif;margin:1.5em}table{border-collapse:collapse}"
            "td,th{border:1px solid #bbb;padding:4px 8px;text-align:center}tr.pub{color:#555;background:#f4f4f4}"
            "</style></head><body><h1>JGLUE results (dev sets)</h1>"
            f"<table id=\"jglue\"><tr><th>Model</th>{head}<th>Source</th></tr>{''.join(body)}</table>"
            + (f"<h2>Skipped</h2><ul>{notes}</ul>" if notes else "")
            + f"<p>Published rows: <a href=\"{html.escape(results['published_source'])}\">cl-tohoku/bert-japanese</a>"
              " (one seed each).</p></body></html>\n")
