"""JGLUE evaluation: fine-tune each model on each task's train split, score the dev split,
aggregate the grid into ``eval/jglue/<model>/<task>/metrics.json`` and the results table."""
