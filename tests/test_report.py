"""scripts.report and `snakemake --report`: the readers behind each figure, the figures' data, and
the finished report opened in headless Chromium as a person would (its images load, a plot shows
when clicked, every plot has data). The browser check is skipped where Chromium is absent
(`make test` installs it when it can: `make report-deps`)."""

from __future__ import annotations

import html
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from conftest import ROOT, snakemake
from scripts.report import data as D
from scripts.report import plots as P


def write_events(d: Path, points: dict[str, list[tuple[int, float]]]) -> None:
    """A TensorBoard event file as Model Garden's summary writer leaves it (TFRecord-framed
    Event protos with scalar tensors), written without TensorFlow."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.util import tensor_util

    from scripts.shared.tfrecord import frame_record

    d.mkdir(parents=True, exist_ok=True)
    with open(d / "events.out.tfevents.1.host.1.v2", "wb") as fh:
        fh.write(frame_record(event_pb2.Event(wall_time=1.0, file_version="brain.Event:2").SerializeToString()))
        for tag, pts in points.items():
            for step, v in pts:
                val = summary_pb2.Summary.Value(tag=tag, tensor=tensor_util.make_tensor_proto(v))
                ev = event_pb2.Event(step=step, wall_time=1.0, summary=summary_pb2.Summary(value=[val]))
                fh.write(frame_record(ev.SerializeToString()))


def test_training_curves_are_read_from_the_event_files_of_each_stage(tmp_path):
    stages = []
    for i, name in enumerate(["cc-100", "cc-100_wikipedia"]):
        run = tmp_path / "model" / name / "run-0123456789abcdef"
        write_events(run / "train", {"training_loss": [(10, 9.0 - i), (20, 8.0 - i), (20, 7.5 - i)],
                                     "masked_lm_accuracy": [(10, 0.1), (20, 0.2)],
                                     "next_sentence_accuracy": [(10, 0.5), (20, 0.6)]})
        write_events(run / "validation", {"validation_loss": [(20, 7.9)], "masked_lm_accuracy": [(20, 0.15)],
                                          "next_sentence_accuracy": [(20, 0.55)]})
        done = tmp_path / "model" / name / "done.json"
        done.write_text(json.dumps({"checkpoint": str(run / "ckpt-20"), "model_dir": str(tmp_path / "model" / name)}))
        stages.append((name, str(done)))
    curves = D.training_curves(stages)
    assert curves[0]["dir"].endswith("run-0123456789abcdef")
    assert curves[1]["train"]["training_loss"] == [(10, 8.0), (20, 6.5)]   # a re-logged step keeps its last value
    assert curves[0]["validation"]["validation_loss"] == [(20, pytest.approx(7.9))]
    fig, counts = P.training_figure("m", curves)
    assert counts == {"loss": 2 * (2 + 1), "mlm_accuracy": 2 * 3, "nsp_accuracy": 2 * 3}
    # steps continue across stages: stage 2's first point is drawn at 20 + 10
    assert min(fig.axes[0].lines[2].get_xdata()) == 30


def test_benchmarks_are_matched_to_their_rules_by_pattern(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    root = Path("logs/benchmarks")
    rows = {"pretraining_data/tok/c/01.tsv": (3.5, 120.0), "pretraining_data/tok/c/02.tsv": (4.5, 150.0),
            "hf_model/m.tsv": (10.0, 900.0), "other/thing.tsv": (1.0, 10.0)}
    for rel, (s, rss) in rows.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(f"s\th:m:s\tmax_rss\n{s}\t0:00:0{int(s)}\t{rss}\n")
    patterns = {"pretraining_data": r"logs/benchmarks/pretraining_data/{tokenizer,a|b}/{corpus}/{shard,\d{2,3}}.tsv",
                "hf_model": "logs/benchmarks/hf_model/{model}.tsv"}
    agg = {r["rule"]: r for r in D.per_rule(D.read_benchmarks(patterns, str(root)))}
    assert agg["pretraining_data"] == {"rule": "pretraining_data", "jobs": 2, "total_s": 8.0, "max_s": 4.5, "max_rss": 150.0}
    assert agg["hf_model"]["max_rss"] == 900.0 and agg["other"]["jobs"] == 1


def test_corpus_and_tokenizer_summaries(tmp_path):
    shard_stats = tmp_path / "shards.stats.json"
    shard_stats.write_text(json.dumps({"documents": 10, "lines_written": 50, "num_shards": 2,
                                       "documents_per_shard": [5, 5], "skipped": {"bad_utf8_lines": 2},
                                       "lines_dropped": {"too_short": 3}}))
    wiki = tmp_path / "corpus.stats.json"
    wiki.write_text(json.dumps({"pages_read": 12, "pages_written": 10, "sentences_written": 50,
                                "skipped": {"disambiguation": 2}, "sentences_dropped": {"math": 4}}))
    s = D.corpus_summary("w", str(shard_stats), str(wiki))
    assert s["skipped"] == {"lines dropped: too_short": 3, "pages skipped: disambiguation": 2,
                            "sentences dropped: math": 4, "shards: bad_utf8_lines": 2}
    shard = tmp_path / "corpus_01.txt"
    shard.write_text("あいう\n\nかきくけこ\nさ\n", encoding="utf-8")
    assert D.line_lengths([str(shard)]) == [3, 5, 1] and D.line_lengths([str(shard)], max_lines=2) == [3, 5]
    fig, counts = P.corpora_figure([s], {"w": [3, 5, 1]})
    assert all(counts.values())
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("[PAD]\n[UNK]\n[CLS]\n[SEP]\n[MASK]\n[unused0]\nあ\n##い\n東京\n##京都\n", encoding="utf-8")
    assert D.vocab_kinds(str(vocab)) == {"special": 5, "unused": 1, "character": 1, "##character": 1, "word": 1,
                                         "##subword": 1}
    st = tmp_path / "pretraining_data_01.stats.json"
    st.write_text(json.dumps({"tokens": 200, "unk_tokens": 5, "instances": 4, "instance_tokens": 240}))
    assert D.pretraining_summary([str(st)]) == {"shards": 1, "tokens": 200, "unk_rate": 0.025, "instances": 4,
                                                "mean_tokens_per_instance": 60.0}


# ---------------------------------------------------------------------------------------------
# The report of the demo, in a browser
# ---------------------------------------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


def chromium(*args, timeout=120) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--virtual-time-budget=20000", *args], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def report(demo_run) -> Path:
    t0 = time.monotonic()
    snakemake(demo_run, "--report", "report.html")
    took = time.monotonic() - t0
    path = demo_run / "report.html"
    assert path.stat().st_size > 100_000
    assert took < 120, f"snakemake --report took {took:.0f} s"
    return path


@pytest.mark.e2e
def test_demo_figures_have_data_in_every_panel(demo_run):
    figures = sorted((demo_run / "plots").rglob("*.png"))
    assert {p.name for p in figures} >= {"corpora.png", "tokenizers.png", "runtime.png", "jglue.png",
                                          "bert-tiny-japanese-sample.png"}
    for png in figures:
        panels = json.loads(png.with_suffix(".json").read_text())["panels"]
        assert panels and all(n > 0 for n in panels.values()), (png.name, panels)
    runtime = json.loads((demo_run / "plots" / "runtime.json").read_text())["rules"]
    rules = {r["rule"] for r in runtime}
    assert {"train", "pretraining_data", "hf_model", "jglue_run"} <= rules   # matched to rules, not paths
    table = (demo_run / "plots" / "jglue_results.html").read_text(encoding="utf-8")
    assert "bert-tiny-japanese-sample" in table and "published (cl-tohoku README)" in table


@pytest.mark.e2e
@pytest.mark.skipif(CHROMIUM is None, reason="no chromium (make report-deps installs Debian's chromium as root)")
def test_report_opens_in_a_browser_with_its_images_and_plots(report, tmp_path):
    probe = (ROOT / "tests" / "report_probe.js").read_text()
    page = report.read_text(encoding="utf-8")
    at = page.rfind("</body>")
    probed = tmp_path / "probed.html"
    probed.write_text(page[:at] + '<script>window.BERTJA_CATEGORY = "Pretraining";\n' + probe + "</script>"
                      + page[at:], encoding="utf-8")
    dom = chromium("--dump-dom", probed.as_uri()).stdout
    tag = '<pre id="bertja-probe">'
    assert tag in dom, "the probe did not finish: " + dom[-2000:]
    found = json.loads(html.unescape(dom[dom.rfind(tag) + len(tag):dom.find("</pre>", dom.rfind(tag))]))
    assert "fatal" not in found, found
    # the page rendered its menu with our categories
    assert {"Pretraining", "Data", "JGLUE", "Runtime"} <= set(found["menu"]), found["menu"]
    entries = found["entries"]
    images = {p: e for p, e in entries.items() if e["mime"] == "image/png"}
    assert len(images) >= 5, entries.keys()
    for path, e in images.items():
        assert "error" not in e, (path, e)
        assert e["width"] > 500 and e["height"] > 200, (path, e)
        # coloured pixels = plotted lines, bars and points (axes and text are grey/black)
        assert e["colored_fraction"] > 0.003, (path, e)
    table = entries["plots/jglue_results.html"]
    assert table["table_rows"] >= 10 and "bert-base-japanese-v3" in table["text"]
    # clicking the category and the result's view button shows the training curves
    assert found["shown"] and found["shown"][0]["complete"] and found["shown"][0]["width"] > 500
    # and a screenshot of that view is a real picture, not a blank page
    shot = tmp_path / "report.png"
    proc = chromium("--window-size=1400,900", f"--screenshot={shot}", probed.as_uri())
    assert shot.exists(), proc.stderr[-2000:]
    from matplotlib import image

    px = image.imread(str(shot))
    assert px.shape[0] == 900 and px.shape[1] == 1400
    colored = ((px[..., :3].max(-1) - px[..., :3].min(-1)) > 0.25).mean()
    assert colored > 0.001 and px[..., :3].std() > 0.05
    shutil.copy(shot, report.parent / "report-screenshot.png")   # for a person to look at
