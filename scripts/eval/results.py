"""``eval/jglue/results.md`` and ``results.json``: one row per evaluated model, beside the
published cl-tohoku rows, in the layout of the cl-tohoku README's JGLUE table.

::

    python -m scripts.eval.results --metrics eval/jglue/<model>/<task>/metrics.json ... \\
        --models <model> ... --output-md eval/jglue/results.md --output-json eval/jglue/results.json
"""

from __future__ import annotations

import argparse
import json

from scripts.eval.summary import markdown, read_json, table
from scripts.shared.common import AtomicFiles, run_cli


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metrics", nargs="*", default=[])
    ap.add_argument("--models", nargs="*", default=[], help="row order")
    ap.add_argument("--output-md", required=True)
    ap.add_argument("--output-json", required=True)
    a = ap.parse_args(argv)
    by_model: dict[str, dict] = {m: {} for m in a.models}
    for p in a.metrics:
        m = read_json(p)
        by_model.setdefault(m["model"], {})[m["task"]] = m
    res = table(by_model)
    with AtomicFiles() as files:
        files.open(a.output_md, "w", encoding="utf-8").write(markdown(res))
        fh = files.open(a.output_json, "w", encoding="utf-8")
        json.dump(res, fh, ensure_ascii=False, indent=2, sort_keys=True)
        fh.write("\n")
    return 0


if __name__ == "__main__":
    run_cli(main)
