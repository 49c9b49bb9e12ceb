# Input functions and resources of the eval stage (its rules are in rules/eval.smk). The logic
# (merging per-model overrides, the grid, run ids) is scripts/eval/settings.py.

from scripts.eval import settings as eval_settings  # noqa: E402

try:
    eval_settings.check(config)
except eval_settings.EvalConfigError as e:
    raise WorkflowError(f"Invalid configuration: {e}")

JGLUE_TASKS = sorted(
    {t for m in MODELS for t in eval_settings.task_names(config, m)}
    if config.get("jglue")
    else []
)


def _jglue_files(wildcards):
    return eval_settings.task_files(config, wildcards.model, wildcards.task)


def jglue_model_dir(wildcards):
    """The converted model (build/hf_model/<name>/): its card, written after the evaluation, is
    not needed to fine-tune it."""
    return PATHS.hf_build.format(model=wildcards.model)


def jglue_train(wildcards):
    return _jglue_files(wildcards)["train"]


def jglue_valid(wildcards):
    return _jglue_files(wildcards)["valid"]


def jglue_data_present(wildcards):
    """The task's data files that exist (a missing one makes the task a skip, not an error)."""
    return [p for p in _jglue_files(wildcards).values() if os.path.exists(p)]


def jglue_runs(wildcards):
    """The grid's run records, or none when a data file is missing (the task is skipped). Adding
    the files later changes this input set, which reruns the metrics job."""
    if len(jglue_data_present(wildcards)) < 2:
        return []
    grid = eval_settings.grid(config, wildcards.model, wildcards.task)
    return [
        PATHS.jglue_run.format(model=wildcards.model, task=wildcards.task, run=r)
        for r in grid
    ]


def jglue_run_settings(wildcards):
    grid = eval_settings.grid(config, wildcards.model, wildcards.task)
    if wildcards.run not in grid:
        raise WorkflowError(
            f"{wildcards.run} is not a grid point of {wildcards.model}/{wildcards.task} "
            f"(grid: {', '.join(grid)})"
        )
    return json.dumps(grid[wildcards.run], sort_keys=True)


def jglue_spec(wildcards):
    return json.dumps(
        eval_settings.spec(config, wildcards.model, wildcards.task), sort_keys=True
    )


def _jglue_block(wildcards):
    return eval_settings.block(config, wildcards.model)


def jglue_threads(wildcards):
    return _jglue_block(wildcards)["threads"]


def jglue_resource(key, default):
    def get(wildcards):
        return _jglue_block(wildcards)["resources"].get(key, default)

    return get


def jglue_metrics_of(models):
    return [
        PATHS.jglue_metrics.format(model=m, task=t)
        for m in models
        for t in eval_settings.task_names(config, m)
    ]


def jglue_results_metrics(wildcards):
    return jglue_metrics_of(config.get("default_eval") or [])


def eval_targets():
    """What the default target needs from this stage: the results table of `default_eval`."""
    if not config.get("default_eval"):
        return []
    return [PATHS.jglue_results_md, PATHS.jglue_results_json]


def print_eval_summary():
    """After a run: where the JGLUE results are, and every skipped task with its reason."""
    path = PATHS.jglue_results_json
    if not config.get("default_eval") or not os.path.exists(path):
        return
    with open(path, encoding="utf-8") as fh:
        res = json.load(fh)
    print(f"JGLUE results: {os.path.abspath(PATHS.jglue_results_md)}")
    for skip in res.get("skipped", []):
        print(f"  skipped {skip['model']}/{skip['task']}: {skip['reason']}")
