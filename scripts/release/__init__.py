"""The released model directory ``hf_model/<name>/``: the converted model (``build/hf_model/<name>/``)
with a model card written from what the run produced, after its evaluation."""
