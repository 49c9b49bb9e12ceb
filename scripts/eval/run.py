"""One JGLUE fine-tuning run (a grid point): ``eval/jglue/<model>/<task>/runs/<run>.json``.

::

    python -m scripts.eval.run --task jsts --model-dir hf_model/<name> \\
        --train data/jglue/datasets/jsts-v1.3/train-v1.3.json --valid .../valid-v1.3.json \\
        --settings '{"learning_rate": 5e-05, "epochs": 3, "seed": 42, "max_seq_length": 128, ...}' \\
        --threads 4 --output eval/jglue/<name>/jsts/runs/lr5e-05_ep3_seed42.json

The logic is :func:`scripts.eval.finetune.run`; the record it returns is written as JSON.
"""

from __future__ import annotations

import argparse
import json

from scripts.eval.finetune import run
from scripts.shared.common import run_cli, write_json


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--task", required=True)
    ap.add_argument("--model-dir", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--valid", required=True)
    ap.add_argument("--settings", required=True, help="JSON object of the run's settings")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--output", required=True)
    a = ap.parse_args(argv)
    record = run(task_name=a.task, model_dir=a.model_dir, train_path=a.train, valid_path=a.valid,
                 settings=json.loads(a.settings), threads=a.threads)
    write_json(a.output, record)
    return 0


if __name__ == "__main__":
    run_cli(main)
