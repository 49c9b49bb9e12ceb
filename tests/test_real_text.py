"""The demo chain on real third-party text in the current CirrusSearch format (issue 10).

The Wikipedia dump is built by ``scripts.tools.jglue_cirrus`` from the JSQuAD contexts of
``../shared/jglue`` (real Japanese Wikipedia paragraphs, JGLUE v1.3, CC BY-SA 4.0) and written
with ``{"index":{"_type":"_doc",...}}`` action lines, as recent dumps are. The workflow builds the
demo model's conversion from it with a vocabulary request that the WordPiece trainer must exceed
(its continuation characters): training must not fail, and every size of the model must be the
vocab file's. Skips when ``../shared/jglue`` is absent.
"""

from __future__ import annotations

import gzip
import json

import pytest
import yaml

from conftest import ROOT, copy_workflow, snakemake

JSQUAD = ROOT.parent / "shared" / "jglue" / "datasets" / "jsquad-v1.3" / "valid-v1.3.json"
MODEL = "bert-tiny-japanese-sample"
TOK = "sample_wordpiece_unidic_lite"
REQUEST = 7100  # above the floor (5 specials + 10 unused + 7012 alphabet), below what the text needs

pytestmark = pytest.mark.skipif(not JSQUAD.exists(), reason=f"{JSQUAD} is absent (JGLUE v1.3)")


def test_demo_builds_from_a_real_text_cirrussearch_dump_and_fills_masks(tmp_path):
    from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

    from scripts.tools import jglue_cirrus

    wd = copy_workflow(tmp_path / "wf")
    dump = wd / "data" / "jsquad" / "jawiki-jsquad-cirrussearch-content.json.gz"
    dump.parent.mkdir(parents=True)
    jglue_cirrus.main(["--input", str(JSQUAD), "--output", str(dump)])
    first = gzip.open(dump, "rt", encoding="utf-8").readline()
    assert json.loads(first)["index"]["_type"] == "_doc"
    override = tmp_path / "real.yaml"
    override.write_text(yaml.safe_dump({
        "corpora": {"sample-wikipedia": {"raw": {"path": str(dump.relative_to(wd))}}},
        "tokenizers": {TOK: {"vocab_size": REQUEST}},
    }))
    build = f"build/hf_model/{MODEL}"
    snakemake(wd, "--cores", "2", build, "--configfile", override, timeout=1800)

    stats = json.loads((wd / "corpus" / "sample-wikipedia" / "corpus.stats.json").read_text())
    assert stats["settings"]["mode"] == "recipe" and stats["sentences_written"] > 3000, stats
    vocab = (wd / "tokenizers" / TOK / "vocab.txt").read_text(encoding="utf-8").splitlines()
    n = len(vocab)
    train = json.loads((wd / "tokenizers" / TOK / "train.stats.json").read_text())
    assert train["vocab_size_requested"] == REQUEST and train["vocab_size"] == n > REQUEST
    out = wd / build
    assert json.loads((out / "config.json").read_text())["vocab_size"] == n
    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForMaskedLM.from_pretrained(out)
    assert model.get_input_embeddings().weight.shape[0] == n == len(tok)
    preds = pipeline("fill-mask", model=model, tokenizer=tok)(f"日本の首都は{tok.mask_token}です。")
    assert len(preds) == 5 and all(p["token_str"] for p in preds)
