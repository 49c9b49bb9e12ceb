"""From run records to ``metrics.json`` (per model and task), and from those to the results table.

**Selection, as JGLUE reports it**: JGLUE searches its grid (learning rate x epochs) on the dev
set and reports the dev score of the best setting. Here each grid point's score is the mean over
its seeds of the task's selection metric (``Task.select_by``: accuracy; Pearson for JSTS; F1 for
JSQuAD); the best point's metrics are reported, as the mean over seeds with their sample
standard deviation when there are several. All metrics of a row come from that one point.

**A skipped task** (a data file missing) still gets a ``metrics.json``: ``"skipped"`` holds the
reason (naming the missing path and where the data comes from) and ``"metrics"`` is empty.

**metrics.json**: ``model, task, title, dataset, skipped, data{train,valid: path, sha256, size |
missing}, metrics{name: value}, std{name: value} (several seeds), n_seeds, select_by,
best{learning_rate, epochs, runs}, grid[{learning_rate, epochs, runs, mean{...}}],
runs{run id: the run's settings, effective settings, metrics, losses, timings}`` and, for JSQuAD,
``span_recovery{train, valid}`` (how many first answers the tokens recover exactly).
"""

from __future__ import annotations

import json
import os
import statistics

from scripts.eval import tasks as T
from scripts.eval.finetune import sha256_file
from scripts.shared.common import InputError

# The cl-tohoku README's JGLUE table (dev sets, one fixed seed each, JGLUE's grid), transcribed
# from https://github.com/cl-tohoku/bert-japanese (README, "Model Performances").
PUBLISHED_SOURCE = "https://github.com/cl-tohoku/bert-japanese#model-performances"
PUBLISHED = {
    "bert-base-japanese-v2": (0.958, (0.910, 0.871), 0.901, (0.869, 0.939), 0.803),
    "bert-base-japanese-v3": (0.962, (0.919, 0.881), 0.907, (0.880, 0.946), 0.848),
    "bert-base-japanese-char-v2": (0.957, (0.891, 0.851), 0.896, (0.870, 0.938), 0.724),
    "bert-base-japanese-char-v3": (0.959, (0.914, 0.875), 0.903, (0.871, 0.939), 0.786),
    "bert-large-japanese": (0.958, (0.913, 0.874), 0.902, (0.881, 0.946), 0.823),
    "bert-large-japanese-v2": (0.960, (0.926, 0.893), 0.929, (0.893, 0.956), 0.893),
    "bert-large-japanese-char": (0.958, (0.883, 0.842), 0.899, (0.870, 0.938), 0.753),
    "bert-large-japanese-char-v2": (0.961, (0.921, 0.884), 0.910, (0.892, 0.952), 0.859),
}
TABLE_TASKS = ("marc_ja", "jsts", "jnli", "jsquad", "jcommonsenseqa")   # the seed table's columns
OPTIONAL_TASKS = ("jcola",)                                            # shown when evaluated


def file_entry(path: str) -> dict:
    if not os.path.exists(path):
        return {"path": path, "missing": True}
    return {"path": path, "sha256": sha256_file(path), "size": os.path.getsize(path)}


def collect(spec: dict, run_records: dict[str, dict]) -> dict:
    """The metrics.json object of one model and task."""
    task = T.get(spec["task"])
    data = {split: file_entry(p) for split, p in spec["files"].items()}
    out = {"model": spec["model"], "task": task.name, "title": task.title, "dataset": spec["dataset"],
           "data": data, "select_by": task.select_by, "metrics": {}, "skipped": None}
    missing = [(split, d["path"]) for split, d in data.items() if d.get("missing")]
    if missing:
        split, path = missing[0]
        out["skipped"] = T.missing_message(task, split, path, spec["data_key"])
        return out
    if set(run_records) != set(spec["runs"]):
        raise ValueError(f"runs given {sorted(run_records)} differ from the grid {spec['runs']}")
    for rid, rec in run_records.items():
        for split, d in data.items():
            if rec["data"][split]["sha256"] != d["sha256"]:
                raise InputError(d["path"], f"changed since run {rid} read it (sha256 {rec['data'][split]['sha256']})")
    points: dict[tuple, list[str]] = {}
    for rid in spec["runs"]:
        s = run_records[rid]["settings"]
        points.setdefault((s["learning_rate"], s["epochs"]), []).append(rid)
    grid = []
    for (lr, ep), rids in points.items():
        mean = {m: statistics.fmean(run_records[r]["metrics"][m] for r in rids) for m in task.metrics}
        grid.append({"learning_rate": lr, "epochs": ep, "runs": rids, "mean": mean})
    best = max(grid, key=lambda g: g["mean"][task.select_by])  # first of equals: grid order
    out["grid"] = grid
    out["best"] = {"learning_rate": best["learning_rate"], "epochs": best["epochs"], "runs": best["runs"]}
    out["metrics"] = best["mean"]
    out["n_seeds"] = len(best["runs"])
    if len(best["runs"]) > 1:
        out["std"] = {m: statistics.stdev(run_records[r]["metrics"][m] for r in best["runs"]) for m in task.metrics}
    keep = ("settings", "effective", "metrics", "train_loss_per_epoch", "seconds", "peak_rss_mb", "peak_gpu_mb",
            "versions")
    out["runs"] = {r: {k: run_records[r][k] for k in keep if k in run_records[r]} for r in spec["runs"]}
    first = run_records[spec["runs"][0]]
    if "span_recovery" in first:
        out["span_recovery"] = first["span_recovery"]
    return out


def read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except (OSError, json.JSONDecodeError) as e:
        raise InputError(path, f"cannot read: {e}") from None


# ---------------------------------------------------------------------------------------------
# The results table
# ---------------------------------------------------------------------------------------------


def _published_cells(values) -> dict:
    cells = {}
    for task_name, v in zip(TABLE_TASKS, values):
        task = T.get(task_name)
        nums = v if isinstance(v, tuple) else (v,)
        cells[task_name] = {"metrics": dict(zip(task.metrics, nums)), "skipped": None}
    return cells


def table(metrics_by_model: dict[str, dict[str, dict]]) -> dict:
    """The results object: our rows (one per model, in the given order), then the published rows."""
    ours = [task for task in OPTIONAL_TASKS
            if any(not m.get(task, {"skipped": True}).get("skipped") for m in metrics_by_model.values())]
    columns = [*TABLE_TASKS, *ours]
    rows = []
    for model, per_task in metrics_by_model.items():
        cells = {}
        for t in columns:
            m = per_task.get(t)
            if m is None:
                cells[t] = {"metrics": {}, "skipped": "not evaluated (task not configured)"}
            else:
                cells[t] = {"metrics": m["metrics"], "std": m.get("std"), "n_seeds": m.get("n_seeds"),
                            "skipped": m["skipped"], "best": m.get("best")}
        datasets = sorted({m["dataset"] for m in per_task.values()})
        rows.append({"model": model, "source": "this build", "dataset": ", ".join(datasets), "cells": cells})
    for model, values in PUBLISHED.items():
        rows.append({"model": model, "source": "published", "dataset": "JGLUE (dev)", "reference": PUBLISHED_SOURCE,
                     "cells": _published_cells(values)})
    skipped = [{"model": model, "task": t, "reason": m["skipped"]}
               for model, per_task in metrics_by_model.items() for t, m in per_task.items() if m["skipped"]]
    return {"columns": columns, "titles": {t: T.get(t).title for t in columns},
            "metric_names": {t: list(T.get(t).metrics) for t in columns}, "rows": rows,
            "skipped": skipped, "published_source": PUBLISHED_SOURCE}


def cell_text(cell: dict, task: T.Task) -> str:
    if cell.get("skipped"):
        return "–"
    if not cell["metrics"]:
        return "–"
    std = cell.get("std") or {}
    parts = []
    for m in task.metrics:
        if m not in cell["metrics"]:
            continue
        v = f"{cell['metrics'][m]:.3f}"
        if m in std:
            v += f" ± {std[m]:.3f}"
        parts.append(v)
    return " / ".join(parts)


def markdown(res: dict) -> str:
    cols = res["columns"]
    tasks = [T.get(c) for c in cols]
    lines = ["| Model | " + " | ".join(t.title for t in tasks) + " | Source |",
             "| :--- | " + " | ".join(":---:" for _ in tasks) + " | :--- |",
             "| | " + " | ".join(" / ".join(T.METRIC_LABELS[m] for m in t.metrics) for t in tasks) + " | |"]
    notes = [f"- `{s['model']}` {T.get(s['task']).title}: {s['reason']}" for s in res["skipped"]]
    for r in res["rows"]:
        name = f"`{r['model']}`"
        if r["source"] == "published":
            name += " (published)"
            source = "published (cl-tohoku README)"
        else:
            source = f"this build: {r['dataset']}"
        lines.append(f"| {name} | " + " | ".join(cell_text(r["cells"][t.name], t) for t in tasks) + f" | {source} |")
    text = ["# JGLUE results (dev sets)", "",
            "Each task fine-tuned on its train split and scored on its dev split; the best point of the "
            "hyperparameter grid on dev, as JGLUE reports it (mean ± sample std over seeds when several; "
            "settings of every run in `eval/jglue/<model>/<task>/metrics.json`). Rows marked *published* are "
            f"the cl-tohoku models' own figures ({res['published_source']}), one seed each.", "",
            *lines, ""]
    if notes:
        text += ["Skipped (– in the table; a task skipped for every model has no column):", "", *notes, ""]
    return "\n".join(text)
