"""The ``jglue`` block of config.yaml as plain Python: per-model settings, the grid, run ids,
file paths, and the cross-checks a schema cannot make (rules/inputs/eval.smk imports this).

Resolution of one run's settings, later entries winning: the ``jglue`` block's run keys <- its
``tasks.<task>`` entry <- ``jglue.model_overrides.<model>`` (deep-merged, so an override may
change one task field) <- that override's ``tasks.<task>`` entry.
"""

from __future__ import annotations

import copy
import os

from scripts.eval.tasks import TASKS

# Keys of a run (the grid keys expand into learning_rate/epochs/seed).
RUN_KEYS = ("max_seq_length", "train_batch_size", "eval_batch_size", "warmup_ratio", "weight_decay",
            "max_train_examples", "max_valid_examples", "precision", "device", "doc_stride", "max_query_length",
            "max_answer_length", "n_best_size")
GRID_KEYS = ("learning_rates", "epochs", "seeds")


class EvalConfigError(ValueError):
    """A problem in the jglue block; the message names the key."""


def _merge(base: dict, over: dict) -> dict:
    out = copy.deepcopy(base)
    for k, v in over.items():
        out[k] = _merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else copy.deepcopy(v)
    return out


def block(config: dict, model: str) -> dict:
    """The jglue block as it applies to ``model`` (its override merged in)."""
    jg = config["jglue"]
    base = {k: v for k, v in jg.items() if k != "model_overrides"}
    return _merge(base, (jg.get("model_overrides") or {}).get(model, {}))


def task_settings(config: dict, model: str, task: str) -> dict:
    b = block(config, model)
    return {**{k: v for k, v in b.items() if k != "tasks"}, **b["tasks"][task]}


def task_names(config: dict, model: str) -> list[str]:
    return list(block(config, model)["tasks"])


def task_files(config: dict, model: str, task: str) -> dict[str, str]:
    s = task_settings(config, model, task)
    return {split: os.path.join(s["data_dir"], s[split]) for split in ("train", "valid")}


def data_key(config: dict, model: str) -> str:
    """The config key that says where the model's JGLUE data lives (for skip messages)."""
    over = (config["jglue"].get("model_overrides") or {}).get(model, {})
    return f"jglue.model_overrides.{model}.data_dir" if "data_dir" in over else "jglue.data_dir"


def run_id(learning_rate: float, epochs: int, seed: int) -> str:
    return f"lr{learning_rate:g}_ep{epochs}_seed{seed}"


def grid(config: dict, model: str, task: str) -> dict[str, dict]:
    """``{run id: run settings}`` of one model and task, in grid order."""
    s = task_settings(config, model, task)
    base = {k: s[k] for k in RUN_KEYS if k in s}
    out = {}
    for lr in s["learning_rates"]:
        for ep in s["epochs"]:
            for seed in s["seeds"]:
                out[run_id(lr, ep, seed)] = {**base, "learning_rate": lr, "epochs": ep, "seed": seed}
    return out


def spec(config: dict, model: str, task: str) -> dict:
    """What the metrics job needs besides the run records."""
    s = task_settings(config, model, task)
    return {"model": model, "task": task, "files": task_files(config, model, task),
            "data_key": data_key(config, model), "dataset": s["dataset_label"],
            "grid": {k: s[k] for k in GRID_KEYS}, "runs": list(grid(config, model, task))}


def check(config: dict) -> None:
    """Cross-references of the jglue block and default_eval (types and ranges: the schema)."""
    models = config["models"]
    for i, m in enumerate(config.get("default_eval") or []):
        if m not in models:
            raise EvalConfigError(f"config key 'default_eval[{i}]': unknown model {m!r} "
                                  f"(registered: {', '.join(models)})")
    jg = config.get("jglue")
    if jg is None:
        if config.get("default_eval"):
            raise EvalConfigError("config key 'jglue': required when default_eval names models")
        return
    for m in jg.get("model_overrides") or {}:
        if m not in models:
            raise EvalConfigError(f"config key 'jglue.model_overrides.{m}': unknown model {m!r}")
    for m in [None, *(jg.get("model_overrides") or {})]:
        b = block(config, m) if m else {k: v for k, v in jg.items() if k != "model_overrides"}
        where = f"jglue.model_overrides.{m}" if m else "jglue"
        for t, entry in b["tasks"].items():
            if t not in TASKS:
                raise EvalConfigError(f"config key '{where}.tasks.{t}': unknown task (known: {', '.join(TASKS)})")
            merged = {**{k: v for k, v in b.items() if k != "tasks"}, **entry}
            for k in ("train", "valid", "max_seq_length", *GRID_KEYS):
                if k not in merged:
                    raise EvalConfigError(f"config key '{where}.tasks.{t}.{k}': required (here or in {where})")
            for k in GRID_KEYS:
                if not merged[k]:
                    raise EvalConfigError(f"config key '{where}.tasks.{t}.{k}': must not be empty")
            ids = [run_id(lr, ep, sd) for lr in merged["learning_rates"] for ep in merged["epochs"]
                   for sd in merged["seeds"]]
            if len(set(ids)) != len(ids):
                raise EvalConfigError(f"config key '{where}.tasks.{t}': the grid repeats a point ({ids})")
