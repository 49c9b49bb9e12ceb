"""scripts.release: the released hf_model/<name>/ and its model card, written from the run.

Unit tests build a converted model directory (a tiny random BERT, no TensorFlow) with the files
a run leaves (done.json and event files per stage, corpus, tokenizer and records stats, raw
digests, JGLUE metrics) and check that the card states exactly those facts. The e2e tests check
the demo run's cards against the demo's own files, and what a change replans.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import yaml

import helpers_tf as h
from conftest import clone_run, pending

MODEL = "bert-tiny-japanese-sample"
TWIN = "bert-tiny-japanese-sample-torch"

CONFIG = {"model": "bert-tiny-test", "license": "apache-2.0", "description": "Tiny test BERT.", "seed": 0,
          "backend": "model_garden", "architecture": {"name": "bert_tiny", **h.TINY_ARCH},
          "stages": [{**h.TINY_STAGE, "name": "cc-100", "corpus": "cc-100", "train_steps": 20,
                      "pretraining_data": {"max_seq_length": 64}},
                     {**h.TINY_STAGE, "name": "cc-100_wikipedia", "corpus": "wikipedia", "train_steps": 10,
                      "global_batch_size": 16, "learning_rate": 5e-4, "pretraining_data": {"max_seq_length": 128}}]}
TRAIN = {"training_loss": [(10, 9.5), (20, 8.123456)], "lm_example_loss": [(10, 8.8), (20, 7.654321)],
         "masked_lm_accuracy": [(10, 0.01), (20, 0.0234567)], "next_sentence_loss": [(20, 0.693147)],
         "next_sentence_accuracy": [(20, 0.515625)]}
VALID = {"validation_loss": [(20, 8.2)], "lm_example_loss": [(20, 7.7)], "masked_lm_accuracy": [(20, 0.02)],
         "next_sentence_loss": [(20, 0.7)], "next_sentence_accuracy": [(20, 0.5)]}
# stage 2 has no event files (its run directory is gone): done.json's metrics, torch backend names
DONE2_METRICS = {"loss": 7.25, "mlm_loss": 6.5, "mlm_accuracy": 0.0625, "nsp_loss": 0.75, "nsp_accuracy": 0.5625}
SHA = {"cc-100": "a" * 64, "wikipedia": "b" * 64}


def write_events(d: Path, points: dict) -> None:
    """A TensorBoard event file as Model Garden writes it (TFRecord-framed Event protos)."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.util import tensor_util

    from scripts.shared.tfrecord import frame_record

    d.mkdir(parents=True, exist_ok=True)
    with open(d / "events.out.tfevents.1.host.1.v2", "wb") as fh:
        fh.write(frame_record(event_pb2.Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString()))
        for tag, pts in points.items():
            for step, v in pts:
                val = summary_pb2.Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(v, dtype="float32"))
                fh.write(frame_record(event_pb2.Event(step=step, wall_time=1.0,
                                                      summary=summary_pb2.Summary(value=[val])).SerializeToString()))


def write(path: Path, obj) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return str(path)


def make_run(root: Path, *, evaluated: bool = True) -> dict:
    """A converted tiny model in root/build and the files its run left; the release spec."""
    import torch
    from transformers import BertConfig, BertForPreTraining

    from scripts.hf_model.convert import SPECIAL_TOKENS, tokenizer_config

    build = root / "build" / "hf_model" / "bert-tiny-test"
    build.mkdir(parents=True)
    vocab = h.write_vocab(build / "vocab.txt", h.TINY_VOCAB)
    torch.manual_seed(0)
    cfg = BertConfig(vocab_size=h.TINY_VOCAB, hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                     intermediate_size=256, max_position_embeddings=128, hidden_act="gelu_new", layer_norm_eps=1e-12,
                     pad_token_id=0, architectures=["BertForPreTraining"], tokenizer_class="BertJapaneseTokenizer")
    BertForPreTraining(cfg).eval().save_pretrained(build)
    write(build / "tokenizer_config.json",
          tokenizer_config(subword="wordpiece", mecab_dic="unidic_lite", model_max_length=128))
    write(build / "special_tokens_map.json", SPECIAL_TOKENS)
    stages = []
    for i, st in enumerate(CONFIG["stages"]):
        sd = root / "model" / "tok" / "bert_tiny" / "training" / st["name"]
        run = sd / f"run-{i}123456789abcdef"
        done = {"checkpoint": str(run / f"ckpt-{st['train_steps']}"), "model_dir": str(run), "run_dir": str(run),
                "run_key": f"{i}123456789abcdef" + "0" * 48, "final_step": st["train_steps"], "start_step": 0,
                "trained_steps": st["train_steps"], "global_batch_size": st["global_batch_size"],
                "seconds": 12.5 + i, "backend": "model_garden", "devices": ["/physical_device:CPU:0"],
                "train_metrics": {**DONE2_METRICS, "grad_norm": 1.0}, "validation_metrics": None}
        if i == 0:
            write_events(run / "train", TRAIN)
            write_events(run / "validation", VALID)
        rec = [write(root / "pretraining_data" / "tok" / st["corpus"] / f"pretraining_data_0{k}.stats.json",
                     {"instances": 100 + k, "tokens": 1000 * k, "unk_tokens": 10 * k, "seconds": 1.0})
               for k in (1, 2)]
        stages.append({"name": st["name"], "corpus": st["corpus"], "done": write(sd / "done.json", done),
                       "records_stats": rec})
    write(build / "provenance.json",
          {"config": CONFIG, "training": json.loads(Path(stages[-1]["done"]).read_text()),
           "code": {"commit": "0123abc", "dirty": True}, "packages": {"transformers": "5.0", "torch": "2.0"},
           "python": "3.11.7", "raw_inputs": []})
    corpora = []
    for c in ("cc-100", "wikipedia"):
        cd = root / "corpus" / c
        corpora.append({
            "name": c, "url": f"https://example.org/{c}",
            "raw_digest": write(cd / "raw.sha256.json", {"files": [{"path": f"data/{c}.dump", "sha256": SHA[c],
                                                                     "size": 123_456_789}]}),
            "shard_stats": write(cd / "shards.stats.json", {"documents": 4321, "lines_written": 98765,
                                                             "bytes_out": 7_654_321, "num_shards": 8,
                                                             "settings": {"split_sentences": c == "wikipedia"}}),
            "wiki_stats": write(cd / "corpus.stats.json", {"pages_read": 5000, "pages_written": 4321,
                                                           "sentences_written": 98765}) if c == "wikipedia" else None})
    tok = {"name": "tok", "type": "wordpiece", "stats_of": "tok",
           "stats": write(root / "tokenizers" / "tok" / "train.stats.json",
                          {"input": "corpus/wikipedia/corpus_sampled.txt", "lines": 555, "words": 14047,
                           "unique_words": 2523, "vocab_size_requested": 900, "vocab_size": h.TINY_VOCAB,
                           "special_tokens": 5, "unused_tokens": 10, "alphabet": 7012, "continuation_chars": 863,
                           "learned_subwords": 302, "seconds": 3.0})}
    jglue = None
    if evaluated:
        ej = root / "eval" / "jglue" / "bert-tiny-test"
        jglue = {"metrics": [
            write(ej / "jsts" / "metrics.json", {"task": "jsts", "dataset": "JGLUE v1.3 dev", "skipped": None,
                                                 "metrics": {"pearson": 0.81234, "spearman": 0.79876},
                                                 "std": {"pearson": 0.0123, "spearman": 0.0234}, "n_seeds": 3,
                                                 "best": {"learning_rate": 3e-05, "epochs": 4, "runs": []},
                                                 "select_by": "pearson"}),
            write(ej / "jcola" / "metrics.json", {"task": "jcola", "dataset": "JGLUE v1.3 dev", "metrics": {},
                                                  "skipped": "JCoLA skipped: its train file x does not exist.",
                                                  "select_by": "accuracy"})]}
    return {"root": root, "build": build, "vocab": vocab,
            "spec": {"model": "bert-tiny-test", "stages": stages, "tokenizer": tok, "corpora": corpora,
                     "jglue": jglue}}


def assemble(run: dict, name: str = "out") -> Path:
    from scripts.release.assemble import main

    out = run["root"] / "hf_model" / name
    assert main(["--spec", json.dumps(run["spec"]), "--build", str(run["build"]), "--output", str(out)]) == 0
    return out


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("release"))
    (run["build"] / ".snakemake_timestamp").write_text("")  # as Snakemake leaves it
    (run["build"] / "README.md").write_text("an old card")
    out = assemble(run)
    return {**run, "out": out, "card": (out / "README.md").read_text(encoding="utf-8"),
            "facts": json.loads((out / "card.json").read_text(encoding="utf-8"))}


def front_matter_of(card: str) -> dict:
    """The model card's metadata block, found as the Hub finds it (the first `---` block)."""
    import yaml

    m = re.match(r"^(\s*---[\r\n]+)([\S\s]*?)([\r\n]+---(\r\n|\n|$))", card)
    assert m, card[:500]
    return yaml.safe_load(m.group(2))


def table_rows(card: str, first_cell: str) -> list[list[str]]:
    return [[c.strip() for c in line.strip("|").split("|")] for line in card.splitlines()
            if line.startswith(f"| {first_cell} |")]


# ---------------------------------------------------------------------------------------------


def test_released_directory_is_the_build_plus_the_card(released):
    out, build = released["out"], released["build"]
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md", "card.json", "config.json", "model.safetensors", "provenance.json", "special_tokens_map.json",
        "tokenizer_config.json", "vocab.txt"]
    for name in ("model.safetensors", "config.json", "vocab.txt", "provenance.json"):
        assert os.stat(out / name).st_ino == os.stat(build / name).st_ino, name  # hard links, not copies
    assert released["card"] != "an old card" and (build / "README.md").read_text() == "an old card"
    assert not [p for p in out.parent.iterdir() if p.name.startswith(".")]  # the temporary name is gone


def test_card_states_the_architecture_and_the_parameter_count_of_the_weights(released):
    from transformers import BertForPreTraining

    n = sum(p.numel() for p in BertForPreTraining.from_pretrained(released["out"]).parameters())
    assert released["facts"]["architecture"]["parameters"] == n
    assert f"BERT (bert_tiny): 2 layers, hidden size 64, 2 attention heads, intermediate size 256, 128 position " \
           f"embeddings, vocabulary {h.TINY_VOCAB}; {n:,} parameters (`BertForPreTraining`, tied MLM decoder)" \
        in released["card"]


def test_card_states_tokenizer_corpora_and_records_statistics(released):
    card = released["card"]
    assert f"Vocabulary size: {h.TINY_VOCAB}." in card
    assert ("trained on 555 lines of `corpus/wikipedia/corpus_sampled.txt` (14,047 words, 2,523 distinct): 900 "
            f"entries requested, {h.TINY_VOCAB:,} kept (5 special tokens, 10 `[unusedN]`, an alphabet of 7,012 "
            "characters, 863 `##` characters, 302 learned subwords)") in card
    cc, wiki = (next(r for r in table_rows(card, c) if r[1].startswith("`data/")) for c in ("cc-100", "wikipedia"))
    assert cc == ["cc-100", "`data/cc-100.dump` (123.5 MB)", "4,321", "98,765 lines (paragraphs, not split)",
                  "7.7 MB in 8 shards"]
    assert wiki[2:4] == ["4,321 pages (of 5,000 read)", "98,765 sentences"]
    for c, sha in SHA.items():
        assert f"- {c}: `data/{c}.dump`, 123,456,789 bytes, sha256 `{sha}`" in card
    # [UNK] rate of each stage's records: 30 of 3,000 tokens
    assert "| cc-100 | cc-100 | 203 | 3,000 | 1.00 % |" in card


def test_card_states_each_stages_final_losses_from_events_or_done_json(released):
    card, stages = released["card"], released["facts"]["stages"]
    assert stages[0]["source"].startswith("TensorBoard event files in ")
    assert stages[0]["train"]["loss"] == pytest.approx(8.123456, rel=1e-6)  # float32 in the event file
    assert table_rows(card, "cc-100")[-2:] == [
        ["cc-100", "train", "20", "8.1235", "7.6543", "0.0235", "0.6931", "0.5156"],
        ["cc-100", "validation", "20", "8.2000", "7.7000", "0.0200", "0.7000", "0.5000"]]
    assert stages[1]["source"].endswith("done.json")  # no event files: done.json's (torch names)
    assert table_rows(card, "cc-100_wikipedia")[-1] == [
        "cc-100_wikipedia", "train", "10", "7.2500", "6.5000", "0.0625", "0.7500", "0.5625"]
    assert "| cc-100_wikipedia | wikipedia | 128 | 16 | 10 | 0.0005 | 5 | 0.0 | 13.5 s |" in card
    assert "Converted from the checkpoint" in card and "(step 10)." in card


def test_card_jglue_rows_are_the_metrics_files(released):
    card = released["card"]
    assert table_rows(card, "JSTS") == [
        ["JSTS", "Pearson / Spearman", "0.812 ± 0.012 / 0.799 ± 0.023", "3e-05", "4", "3", "JGLUE v1.3 dev"]]
    assert "- JCoLA: JCoLA skipped: its train file x does not exist." in card
    assert not table_rows(card, "JCoLA") and "kurihara-etal-2022-jglue" in card


def test_fill_mask_example_is_what_the_released_model_predicts(released):
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    fm = released["facts"]["fill_mask"]
    assert fm["input"] == "東北大学で[MASK]の研究をしています。" and len(fm["predictions"]) == 5
    tok = AutoTokenizer.from_pretrained(released["out"])
    preds = pipeline("fill-mask", model=AutoModelForMaskedLM.from_pretrained(released["out"]), tokenizer=tok)(fm["input"])
    assert [p["token_str"] for p in preds] == [p["token_str"] for p in fm["predictions"]]
    assert [p["score"] for p in preds] == pytest.approx([p["score"] for p in fm["predictions"]], abs=1e-6)
    rows = [r for r in (table_rows(released["card"], str(i)) for i in range(1, 6))]
    assert [r[0][1].strip("`") for r in rows] == [p["token_str"] for p in fm["predictions"]]
    assert [r[0][2] for r in rows] == [f"{p['score']:.4f}" for p in fm["predictions"]]


def test_model_card_example_runs_on_an_input_longer_than_the_model(released):
    """The card's fill-mask code, with its sentence made longer than model_max_length (128)."""
    code = released["card"].split("```python\n", 1)[1].split("```", 1)[0]
    sentence = '"東北大学で[MASK]の研究をしています。"'
    assert sentence in code
    long_text = "東北大学で[MASK]の研究をしています。" + "日本語の長い文章です。" * 60
    printed = []
    exec(compile(code.replace(sentence, json.dumps(long_text, ensure_ascii=False)), "README.md", "exec"),
         {"print": printed.append})
    assert len(printed) == 1 and len(printed[0]) == 5 and all("token_str" in p for p in printed[0])


def test_card_licence_provenance_and_citation(released):
    card = released["card"]
    assert front_matter_of(card) == {"language": "ja", "license": "apache-2.0", "library_name": "transformers",
                                     "pipeline_tag": "fill-mask", "tags": ["bert", "fill-mask", "japanese", "pretraining"],
                                     "datasets": ["cc100", "wikipedia"],
                                     "widget": [{"text": "東北大学で[MASK]の研究をしています。"}]}
    assert "## License\n\n`apache-2.0`" in card and "- wikipedia: https://example.org/wikipedia" in card
    assert "commit `0123abc` (with uncommitted changes); seed 0" in card
    assert "devlin-etal-2019-bert" in card and "cl-tohoku/bert-japanese" in card
    assert "fugashi" in card and "AutoModelForMaskedLM" in card


def test_a_model_not_configured_for_evaluation_claims_no_scores(tmp_path):
    run = make_run(tmp_path, evaluated=False)
    out = assemble(run, "noeval")
    card = (out / "README.md").read_text(encoding="utf-8")
    facts = json.loads((out / "card.json").read_text())
    assert facts["jglue"] == {"evaluated": False, "tasks": []}
    section = card.split("## Evaluation (JGLUE)", 1)[1].split("\n## ", 1)[0]
    assert "Not evaluated" in section and "default_eval" in section
    assert "| task |" not in section and not re.search(r"\d\.\d{3}", section)
    assert "kurihara" not in card


@pytest.mark.parametrize("field,value", [
    ("license", "apache-2.0\npipeline_tag: text-generation\ninference: false"),
    ("description", "Tiny.\n---\nlicense: mit\ninference: false"),
    ("tags", ["bert", "x\ninference: false"]),
    ("language", "ja\ninference: false"),
])
def test_card_text_cannot_add_keys_to_the_front_matter(released, field, value):
    from scripts.release.card import model_card

    facts = {**released["facts"], "card": {**released["facts"]["card"], field: value}}
    meta = front_matter_of(model_card(facts))
    assert set(meta) == {"language", "license", "library_name", "pipeline_tag", "tags", "datasets", "widget"}
    assert meta["pipeline_tag"] == "fill-mask"
    if field != "description":  # (the description is body text, after the block)
        assert meta[field] == value


def test_a_model_without_the_next_sentence_head_has_no_nsp_columns(released):
    from scripts.release.card import model_card

    f = released["facts"]
    card = model_card({**f, "backend": "torch", "architecture": {**f["architecture"], "model_type": "roberta",
                                                                 "class": "RobertaForMaskedLM", "num_layers": 1}})
    assert "| stage | split | step | loss | MLM loss | MLM accuracy |\n" in card and "NSP" not in card
    assert "RoBERTa (bert_tiny): 1 layer, " in card and "Model Garden" not in card and "liu2019roberta" in card


def test_copies_where_hard_links_are_impossible_and_no_output_on_failure(tmp_path, monkeypatch):
    import errno

    from scripts.release import assemble as A
    from scripts.shared.common import InputError

    run = make_run(tmp_path)

    def no_links(src, dst):
        raise OSError(errno.EXDEV, "cross-device link")

    monkeypatch.setattr(A.os, "link", no_links)
    out = assemble(run, "copied")
    assert os.stat(out / "model.safetensors").st_ino != os.stat(run["build"] / "model.safetensors").st_ino
    assert (out / "model.safetensors").read_bytes() == (run["build"] / "model.safetensors").read_bytes()
    os.remove(run["spec"]["jglue"]["metrics"][0])
    with pytest.raises(InputError, match="jsts/metrics.json"):
        assemble(run, "broken")
    assert not (tmp_path / "hf_model" / "broken").exists()
    assert not [p for p in (tmp_path / "hf_model").iterdir() if p.name.startswith(".")]


# ---------------------------------------------------------------------------------------------
# The demo run's cards (shares the e2e session's demo run)
# ---------------------------------------------------------------------------------------------


def _demo_card(demo_run: Path, model: str) -> tuple[str, dict]:
    out = demo_run / "hf_model" / model
    return (out / "README.md").read_text(encoding="utf-8"), json.loads((out / "card.json").read_text())


@pytest.mark.e2e
def test_demo_card_states_what_the_run_produced(demo_run, monkeypatch):
    from transformers import AutoModelForMaskedLM, AutoTokenizer, BertForPreTraining, pipeline

    from scripts.training.events import read_events, stage_event_dir

    monkeypatch.chdir(demo_run)  # done.json paths are relative to the workflow directory
    out, build = Path("hf_model") / MODEL, Path("build") / "hf_model" / MODEL
    card, facts = _demo_card(demo_run, MODEL)
    # only the model, the card and its facts; the weights are the build's
    assert not [p.name for p in [*out.iterdir(), *build.iterdir()] if p.name.startswith(".")]
    assert os.stat(out / "model.safetensors").st_ino == os.stat(build / "model.safetensors").st_ino
    assert not (build / "README.md").exists() and (out / "provenance.json").is_file()
    # parameters
    n = sum(p.numel() for p in BertForPreTraining.from_pretrained(out).parameters())
    assert facts["architecture"]["parameters"] == n and f"{n:,} parameters" in card
    # final losses: the last points of each stage's event files, and done.json's metrics
    for st in facts["stages"]:
        done_path = f"model/sample_wordpiece_unidic_lite/bert_tiny/training/{st['name']}/done.json"
        done = json.loads(Path(done_path).read_text())
        ev = read_events(os.path.join(stage_event_dir(done_path), "train"))
        assert st["final_step"] == done["final_step"] == ev["training_loss"][-1][0] == 60
        assert st["global_batch_size"] == done["global_batch_size"]
        for name, tag in (("loss", "training_loss"), ("mlm_loss", "lm_example_loss"),
                          ("mlm_accuracy", "masked_lm_accuracy"), ("nsp_loss", "next_sentence_loss"),
                          ("nsp_accuracy", "next_sentence_accuracy")):
            assert st["train"][name] == ev[tag][-1][1] == pytest.approx(done["train_metrics"][tag], rel=1e-6)
        assert st["validation"]["loss"] == pytest.approx(done["validation_metrics"]["validation_loss"], rel=1e-6)
        row = next(r for r in table_rows(card, st["name"]) if r[1] == "train")
        assert row[3:] == [f"{st['train'][k]:.4f}" for k in ("loss", "mlm_loss", "mlm_accuracy", "nsp_loss",
                                                             "nsp_accuracy")]
    # corpora: the dumps' digests
    for c in facts["corpora"]:
        (dump,) = json.loads(Path(f"corpus/{c['name']}/raw.sha256.json").read_text())["files"]
        assert f"sha256 `{dump['sha256']}`" in card
    # JGLUE rows: the metrics files
    scored = 0
    for task in ("marc_ja", "jsts", "jnli", "jsquad", "jcommonsenseqa", "jcola"):
        m = json.loads(Path(f"eval/jglue/{MODEL}/{task}/metrics.json").read_text())
        (row,) = [r for r in facts["jglue"]["tasks"] if r["task"] == task]
        assert row["metrics"] == m["metrics"] and row["skipped"] == m["skipped"]
        if m["skipped"]:
            assert f"- {m['title']}: {m['skipped']}" in card
            continue
        scored += 1
        (cells,) = table_rows(card, m["title"])
        assert cells[2] == " / ".join(f"{m['metrics'][k]:.3f}" for k in row["metric_names"])
        assert cells[-1] == m["dataset"] == "bundled sample (not JGLUE)"
    assert scored == 5
    # the fill-mask example: reproduced by loading the released model
    fm = facts["fill_mask"]
    preds = pipeline("fill-mask", model=AutoModelForMaskedLM.from_pretrained(out),
                     tokenizer=AutoTokenizer.from_pretrained(out))(fm["input"])
    assert [p["token_str"] for p in preds] == [p["token_str"] for p in fm["predictions"]]
    assert [p["score"] for p in preds] == pytest.approx([p["score"] for p in fm["predictions"]], abs=1e-6)


@pytest.mark.e2e
def test_demo_twin_not_in_default_eval_gets_a_card_without_scores(demo_run):
    card, facts = _demo_card(demo_run, TWIN)
    assert facts["jglue"] == {"evaluated": False, "tasks": []} and not (demo_run / "eval" / "jglue" / TWIN).exists()
    section = card.split("## Evaluation (JGLUE)", 1)[1].split("\n## ", 1)[0]
    assert "Not evaluated" in section and not re.search(r"\d\.\d{3}", section)
    assert "Pretrained with PyTorch" in card
    assert all(st["source"].startswith("TensorBoard event files in model/sample_wordpiece_unidic_lite/bert_tiny/"
                                       "training-torch/") for st in facts["stages"])


@pytest.mark.e2e
def test_eval_data_or_card_code_changes_replan_only_the_cards_they_reach(demo_run, tmp_path):
    """New JGLUE data replans that model's evaluation and card, not its conversion nor the card of
    a model that is not evaluated; a card-code edit replans the cards only."""
    run = clone_run(demo_run, tmp_path / "run")
    jsts = run / "sample" / "jglue" / "datasets" / "jsts-v1.3" / "train-v1.3.json"
    jsts.write_text(jsts.read_text(encoding="utf-8").replace("。", "。 ", 1), encoding="utf-8")
    todo = pending(run)
    assert f"hf_model/{MODEL}" in todo and f"eval/jglue/{MODEL}/jsts/metrics.json" in todo
    assert not {p for p in todo if p.startswith("build/") or p == f"hf_model/{TWIN}"}, todo
    jsts.write_text(jsts.read_text(encoding="utf-8").replace("。 ", "。", 1), encoding="utf-8")
    card = run / "scripts" / "release" / "card.py"
    card.write_text(card.read_text() + "\n\ndef _unused_helper():\n    return None\n")
    cards = {f"hf_model/{m}" for m in yaml.safe_load((run / "config.yaml").read_text())["default_models"]}
    assert {MODEL, TWIN} <= {c.split("/", 1)[1] for c in cards}
    assert {p for p in pending(run) if not p.startswith("plots/")} == cards
