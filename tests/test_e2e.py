"""End-to-end: the demo pipeline on the bundled sample, and what rebuilds after a change.

One full `snakemake --cores 2` run (session fixture `demo_run`) is shared; tests that change
something work on their own copy of the finished run.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest

from conftest import ROOT, clone_run, pending, snakemake

pytestmark = pytest.mark.e2e

MODEL = "bert-tiny-japanese-sample"
TOK = "sample_wordpiece_unidic_lite"
WIKI_DUMP = "sample/wikipedia/jawiki-sample-cirrussearch-content.json.gz"


@pytest.fixture
def run_copy(demo_run, tmp_path) -> Path:
    return clone_run(demo_run, tmp_path / "run")


def test_demo_builds_the_hf_model(demo_run):
    out = demo_run / "hf_model" / MODEL
    for name in ["model.safetensors", "config.json", "vocab.txt", "tokenizer_config.json", "README.md",
                 "provenance.json"]:
        assert (out / name).is_file(), name
    # only the model: Snakemake's .snakemake_timestamp for directory() outputs is taken out again
    assert not [p.name for p in out.iterdir() if p.name.startswith(".")]
    log = (demo_run / "snakemake.out").read_text()
    assert f"hf_model/{MODEL}" in log and "Built" in log
    # every stage left its log and benchmark
    assert any((demo_run / "logs" / "benchmarks").rglob("*.tsv"))
    prov = json.loads((out / "provenance.json").read_text())
    assert {r["path"] for r in prov["raw_inputs"]} >= {WIKI_DUMP}
    assert all(len(r["sha256"]) == 64 for r in prov["raw_inputs"])
    assert prov["packages"]["tensorflow"] and prov["packages"]["transformers"]


def test_nothing_is_planned_after_a_full_run(demo_run):
    assert pending(demo_run) == set()
    assert "Nothing to be done" in snakemake(demo_run, "-n").stdout


def test_transformers_loads_the_demo_model_and_fills_masks(demo_run):
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    path = str(demo_run / "hf_model" / MODEL)
    tok = AutoTokenizer.from_pretrained(path)
    assert type(tok).__name__ == "BertJapaneseTokenizer"
    model = AutoModelForMaskedLM.from_pretrained(path)
    preds = pipeline("fill-mask", model=model, tokenizer=tok)("東京は日本の[MASK]です。")
    assert len(preds) == 5 and all("token_str" in p and p["score"] >= 0 for p in preds)


def _records(path: Path, n: int):
    import tensorflow as tf

    ds = tf.data.TFRecordDataset(str(path), compression_type="GZIP").take(n)
    for raw in ds:
        ex = tf.train.Example.FromString(raw.numpy())
        yield {k: list(v.int64_list.value) or list(v.float_list.value) for k, v in ex.features.feature.items()}


def test_tokenizer_ids_equal_the_tfrecord_ids(demo_run):
    """Every record's segment A (masks undone) is a contiguous run of the HF tokenizer's ids of
    its shard's text: the tokenizer that ships with the model is the one the data was made with."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(demo_run / "hf_model" / MODEL))
    shard = demo_run / "corpus" / "sample-cc-100" / "corpus_01.txt"
    docs, cur = [], []
    for line in shard.read_text(encoding="utf-8").splitlines():
        if line.strip():
            cur.extend(tok.convert_tokens_to_ids(tok.tokenize(line)))
        elif cur:
            docs.append(cur)
            cur = []
    if cur:
        docs.append(cur)
    streams = [" " + " ".join(map(str, d)) + " " for d in docs]
    cls, sep = tok.cls_token_id, tok.sep_token_id
    checked = 0
    for rec in _records(demo_run / "pretraining_data" / TOK / "sample-cc-100" / "pretraining_data_01.tfrecord.gz", 40):
        ids = rec["input_word_ids"]
        for pos, orig, w in zip(rec["masked_lm_positions"], rec["masked_lm_ids"], rec["masked_lm_weights"]):
            if w > 0:
                ids[pos] = orig
        assert ids[0] == cls
        a = ids[1:ids.index(sep)]
        needle = " " + " ".join(map(str, a)) + " "
        assert any(needle in s for s in streams), tok.convert_ids_to_tokens(a)
        checked += 1
    assert checked == 40


def _append_gzip_member(path: Path, text: str) -> None:
    with open(path, "ab") as fh:
        fh.write(gzip.compress(text.encode("utf-8"), mtime=0))


def test_new_wikipedia_bytes_plan_only_the_wikipedia_chain(run_copy):
    page = {"title": "追加", "text": "これは追加された記事です。新しい文がここにあります。", "namespace": 0}
    _append_gzip_member(run_copy / WIKI_DUMP, '{"index":{"_id":"999999"}}\n' + json.dumps(page, ensure_ascii=False) + "\n")
    todo = pending(run_copy)
    assert "corpus/sample-wikipedia/corpus.txt.gz" in todo
    assert "corpus/sample-wikipedia/corpus_01.txt" in todo
    assert f"build/hf_model/{MODEL}" in todo and f"hf_model/{MODEL}" in todo  # converted, then its card
    assert not {p for p in todo if p.startswith("corpus/sample-cc-100/")}, todo
    assert "tokenizers/alphabet/unidic_lite.txt" not in todo


def test_vocab_size_change_plans_the_tokenizer_and_its_dependants_only(run_copy):
    cfg = run_copy / "config.yaml"
    text = cfg.read_text()
    new = re.sub(r"(sample_wordpiece_unidic_lite:\n(?:    .*\n)*?    vocab_size: )8192", r"\g<1>8000", text)
    assert new != text
    cfg.write_text(new)
    todo = pending(run_copy)
    assert f"tokenizers/{TOK}/vocab.txt" in todo
    assert any(p.startswith(f"pretraining_data/{TOK}/") for p in todo)
    assert f"build/hf_model/{MODEL}" in todo and f"hf_model/{MODEL}" in todo
    assert not {p for p in todo if p.startswith("corpus/")}, todo
    assert "tokenizers/alphabet/unidic_lite.txt" not in todo


def test_code_edit_reruns_the_stage_and_what_follows_but_a_comment_does_not(run_copy):
    script = run_copy / "scripts" / "corpus" / "sample.py"
    script.write_text(script.read_text() + "\n# a comment only\n")
    assert pending(run_copy) == set()
    script.write_text(script.read_text() + "\n\ndef _unused_helper():\n    return None\n")
    todo = pending(run_copy)
    assert "corpus/sample-wikipedia/corpus_sampled.txt" in todo
    assert f"tokenizers/{TOK}/vocab.txt" in todo and f"hf_model/{MODEL}" in todo
    assert not {p for p in todo if re.match(r"corpus/.*/corpus_\d+\.txt$", p)}, todo


def test_deleting_an_intermediate_shard_plans_nothing(run_copy):
    (run_copy / "corpus" / "sample-cc-100" / "corpus_02.txt").unlink()
    assert pending(run_copy) == set()


def test_converted_demo_model_is_numerically_the_model_garden_model(demo_run):
    """MLM and NSP logits of the trained TF pretrainer and of transformers' BertForPreTraining
    loaded from hf_model/ agree to < 1e-4 on real demo text (with padding and both segments)."""
    import numpy as np
    import tensorflow as tf
    import torch
    from transformers import AutoTokenizer, BertForPreTraining

    from scripts.hf_model.convert import load_pretrainer
    from scripts.training.model_garden import load_params, resolve_checkpoint

    train_dir = demo_run / "model" / TOK / "bert_tiny" / "training"
    params = load_params(str(train_dir / "cc-100_wikipedia.yaml"))
    done = json.loads((train_dir / "cc-100_wikipedia" / "done.json").read_text())
    tf_model = load_pretrainer(params, resolve_checkpoint(str(demo_run / done["checkpoint"])))

    hf_dir = demo_run / "hf_model" / MODEL
    tok = AutoTokenizer.from_pretrained(str(hf_dir))
    pairs = [("東京は日本の首都です。", "多くの人が住んでいます。"), ("富士山は高い。", "今日は晴れ。"),
             ("短い文。", None)]
    enc = tok([a for a, _ in pairs], [b or "" for _, b in pairs], padding="max_length", max_length=32,
              truncation=True, return_tensors="np")
    ids, mask, types = enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]
    assert mask.min() == 0 and types.max() == 1
    pos = np.tile(np.arange(ids.shape[1]), (ids.shape[0], 1))
    out = tf_model({"input_word_ids": tf.constant(ids, tf.int32), "input_mask": tf.constant(mask, tf.int32),
                    "input_type_ids": tf.constant(types, tf.int32), "masked_lm_positions": tf.constant(pos, tf.int32)},
                   training=False)
    hf = BertForPreTraining.from_pretrained(str(hf_dir)).eval()
    with torch.no_grad():
        o = hf(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), token_type_ids=torch.tensor(types))
    valid = mask.astype(bool)
    mlm = np.abs(out["mlm_logits"].numpy() - o.prediction_logits.numpy())[valid].max()
    nsp = np.abs(out["next_sentence"].numpy() - o.seq_relationship_logits.numpy()).max()
    assert mlm < 1e-4 and nsp < 1e-4, (mlm, nsp)


def test_killed_training_resumes_from_its_latest_checkpoint(run_copy):
    """Stage 2 of the demo model is retrained and SIGKILLed (Snakemake and the job) once its first
    checkpoint exists; with nothing changed, `--unlock` and a rerun continue from that checkpoint
    in the same run directory (the same run key as the demo run's), not from scratch."""
    import os
    import shutil
    import signal
    import subprocess
    import time

    from conftest import SNAKEMAKE, job_env

    stage = run_copy / "model" / TOK / "bert_tiny" / "training" / "cc-100_wikipedia"
    key = json.loads((stage / "done.json").read_text())["run_key"]
    run_dir = stage / f"run-{key[:16]}"
    shutil.rmtree(stage)
    # A deleted intermediate is not rebuilt while its dependants are up to date: target it.
    done_target = str((stage / "done.json").relative_to(run_copy))
    proc = subprocess.Popen([SNAKEMAKE, "--cores", "2", done_target], cwd=run_copy, env=job_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 600
    try:
        while not list(stage.glob("run-*/ckpt-*.index")) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    assert [p.name for p in stage.glob("run-*")] == [run_dir.name]  # the key is reproducible
    steps = sorted(int(p.name[5:-6]) for p in run_dir.glob("ckpt-*.index"))
    assert steps and steps[-1] < 60, f"the kill came too late: {steps}"
    assert not (stage / "done.json").exists()

    snakemake(run_copy, "--unlock")
    snakemake(run_copy, "--cores", "2", done_target)
    log = (run_copy / "logs" / "training" / "train" / TOK / "bert_tiny" / "cc-100_wikipedia.log").read_text()
    assert re.search(rf"run {key[:16]}: resuming from {re.escape(str(run_dir.relative_to(run_copy)))}/ckpt-(\d+) "
                     rf"at step ({'|'.join(map(str, steps))}) ", log), log[-3000:]
    done = json.loads((stage / "done.json").read_text())
    assert done["final_step"] == 60 and done["run_key"] == key
    assert done["checkpoint"] == f"{run_dir.relative_to(run_copy)}/ckpt-60"
    assert {f"build/hf_model/{MODEL}", f"hf_model/{MODEL}"} <= pending(run_copy)  # converted again, new card
    snakemake(run_copy, "--cores", "2", f"hf_model/{MODEL}")
    assert pending_upstream(run_copy) == set()


def pending_upstream(wd: Path) -> set[str]:
    """What is still planned, leaving out the evaluation and report outputs (downstream of a
    model that a test rebuilt on its own, through an hf_model/ target)."""
    return {p for p in pending(wd) if not p.startswith(("eval/", "plots/"))}


def _stage_log(wd: Path, stage: str) -> str:
    return (wd / "logs" / "training" / "train" / TOK / "bert_tiny" / f"{stage}.log").read_text()


def _done(wd: Path, stage: str) -> dict:
    return json.loads((wd / "model" / TOK / "bert_tiny" / "training" / stage / "done.json").read_text())


def test_learning_rate_change_retrains_and_changes_the_weights(demo_run, run_copy):
    """A new stage-2 learning rate trains a fresh run (the old checkpoint at train_steps is not
    taken as the new model) and the converted weights change; the old run stays, listed as stale."""
    cfg = run_copy / "config.yaml"
    text = cfg.read_text()
    new = re.sub(r"(name: cc-100_wikipedia, corpus: sample-wikipedia,[^}]*?learning_rate: )1\.0e-3", r"\g<1>5.0e-4", text,
                 count=1)  # the demo model's stage (its torch twin, listed later, keeps its own)
    assert new != text
    cfg.write_text(new)
    old, old1 = _done(demo_run, "cc-100_wikipedia"), _done(demo_run, "cc-100")
    snakemake(run_copy, "--cores", "2", f"hf_model/{MODEL}")
    done = _done(run_copy, "cc-100_wikipedia")
    assert done["run_key"] != old["run_key"] and done["start_step"] == 0 and done["trained_steps"] == 60
    assert _done(run_copy, "cc-100") == old1  # stage 1 is not retrained
    log = _stage_log(run_copy, "cc-100_wikipedia")
    assert f"run {done['run_key'][:16]}: starting fresh (init from {old1['checkpoint']})" in log
    assert re.search(rf"stale run directory {re.escape(old['run_dir'])} \(differs in config", log), log[-3000:]
    assert (run_copy / old["checkpoint"]).with_suffix(".index").exists()  # never deleted
    hf = run_copy / "hf_model" / MODEL
    assert (hf / "model.safetensors").read_bytes() != (demo_run / "hf_model" / MODEL / "model.safetensors").read_bytes()
    assert json.loads((hf / "provenance.json").read_text())["training"]["run_key"] == done["run_key"]
    assert pending_upstream(run_copy) == set()


def test_vocab_request_exceeded_by_the_trainer_trains_and_converts(run_copy):
    """Issue 10 + a vocab_size change: asking for the floor (7027 = specials + unused + alphabet)
    gets a larger vocabulary (the trainer keeps every ##continuation character of the sample);
    training and conversion use the vocab file's size, and both stages train fresh runs (an old
    checkpoint of the other shape is never restored)."""
    from safetensors import safe_open

    cfg = run_copy / "config.yaml"
    text = cfg.read_text()
    new = re.sub(r"(sample_wordpiece_unidic_lite:\n(?:    .*\n)*?    vocab_size: )8192", r"\g<1>7027", text)
    assert new != text
    cfg.write_text(new)
    old = {st: _done(run_copy, st) for st in ("cc-100", "cc-100_wikipedia")}
    snakemake(run_copy, "--cores", "2")
    vocab = (run_copy / "tokenizers" / TOK / "vocab.txt").read_text(encoding="utf-8").splitlines()
    n = len(vocab)
    stats = json.loads((run_copy / "tokenizers" / TOK / "train.stats.json").read_text())
    assert stats["vocab_size_requested"] == 7027 and stats["vocab_size"] == n > 7027
    log = (run_copy / "logs" / "tokenizers" / "wordpiece_vocab" / f"{TOK}.log").read_text()
    assert f"vocab size: requested 7,027, actual {n:,}" in log
    hf = run_copy / "hf_model" / MODEL
    assert json.loads((hf / "config.json").read_text())["vocab_size"] == n
    assert len((hf / "vocab.txt").read_text(encoding="utf-8").splitlines()) == n
    with safe_open(str(hf / "model.safetensors"), "pt") as f:
        assert f.get_slice("bert.embeddings.word_embeddings.weight").get_shape() == [n, 64]
        assert f.get_slice("cls.predictions.bias").get_shape() == [n]
    for st in old:
        done = _done(run_copy, st)
        assert done["run_key"] != old[st]["run_key"] and done["start_step"] == 0
        assert "stale run directory" in _stage_log(run_copy, st)
    assert f"Vocabulary size: {n}." in (hf / "README.md").read_text(encoding="utf-8")
    tok = json.loads((hf / "provenance.json").read_text())["config"]["tokenizer"]
    assert tok["vocab_size_requested"] == 7027 and "vocab_size" not in tok  # the request, named as such
    assert pending(run_copy) == set()
