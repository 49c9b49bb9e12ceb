"""``eval/jglue/<model>/<task>/metrics.json`` from the task's run records (or a skip record).

::

    python -m scripts.eval.collect --spec '{"model", "task", "files", "data_key", "dataset", "grid", "runs"}' \\
        --runs eval/jglue/<model>/<task>/runs/*.json --output eval/jglue/<model>/<task>/metrics.json

With a data file missing there are no runs: the output records ``"skipped"`` with the reason
(also logged), and the job succeeds. See :mod:`scripts.eval.summary` for the format.
"""

from __future__ import annotations

import argparse
import json
import os

from scripts.eval.summary import collect, read_json
from scripts.shared.common import LOG, run_cli, write_json


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--spec", required=True, help="JSON object (scripts.eval.settings.spec)")
    ap.add_argument("--runs", nargs="*", default=[])
    ap.add_argument("--output", required=True)
    a = ap.parse_args(argv)
    spec = json.loads(a.spec)
    records = {os.path.basename(p)[:-len(".json")]: read_json(p) for p in a.runs}
    out = collect(spec, records)
    if out["skipped"]:
        LOG.warning("%s", out["skipped"])
    else:
        LOG.info("%s %s: %s (best: lr %g, %d epochs)", spec["model"], out["title"],
                 ", ".join(f"{k} {v:.4f}" for k, v in out["metrics"].items()), out["best"]["learning_rate"],
                 out["best"]["epochs"])
    write_json(a.output, out)
    return 0


if __name__ == "__main__":
    run_cli(main)
