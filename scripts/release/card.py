"""The model card (``README.md``) of a released model, written from its facts (:mod:`scripts.release.facts`).

Every number in it is one of the facts (``card.json`` beside it holds them unrounded): the
architecture and parameter count, the tokenizer's training statistics and the ``[UNK]`` rate of
the pretraining data, the corpora (documents, lines, sizes, the dumps' sha256), each training
stage's steps, batch, time and final losses and accuracies, the JGLUE rows (or that the model was
not evaluated), and a fill-mask example the model produced when the card was written. Then how to
load it, the provenance, the licence and what to cite.

Decisions:

* The YAML front matter is written by a YAML dumper (:func:`front_matter`), so no value (a
  description, a tag) can add keys to it; the description is body text.
* Losses and accuracies are printed with 4 decimals, JGLUE scores with 3 (as
  ``eval/jglue/results.md``); table cells have ``|`` escaped.
* Scores are only written for what ``metrics.json`` holds: a task skipped for missing data is
  listed with its reason, and a model not configured for evaluation says so and has no scores.
"""

from __future__ import annotations

import json

from scripts.eval import tasks as T

DATASET_IDS = {"cc-100": "cc100", "wikipedia": "wikipedia"}
FAMILY_NAMES = {"bert": "BERT", "roberta": "RoBERTa", "distilbert": "DistilBERT"}

CITATIONS = {
    "recipe": """@misc{cl-tohoku-bert-japanese,
  author       = {{Tohoku NLP Group}},
  title        = {Pretrained {J}apanese {BERT} models},
  howpublished = {\\url{https://github.com/cl-tohoku/bert-japanese}}
}""",
    "bert": """@inproceedings{devlin-etal-2019-bert,
  title     = "{BERT}: Pre-training of Deep Bidirectional Transformers for Language Understanding",
  author    = "Devlin, Jacob and Chang, Ming-Wei and Lee, Kenton and Toutanova, Kristina",
  booktitle = "Proceedings of the 2019 Conference of the North {A}merican Chapter of the Association for
               Computational Linguistics: Human Language Technologies, Volume 1 (Long and Short Papers)",
  year      = "2019",
  publisher = "Association for Computational Linguistics",
  url       = "https://aclanthology.org/N19-1423",
  pages     = "4171--4186"
}""",
    "roberta": """@article{liu2019roberta,
  title   = {{RoBERTa}: A Robustly Optimized {BERT} Pretraining Approach},
  author  = {Liu, Yinhan and Ott, Myle and Goyal, Naman and Du, Jingfei and Joshi, Mandar and Chen, Danqi and
             Levy, Omer and Lewis, Mike and Zettlemoyer, Luke and Stoyanov, Veselin},
  journal = {arXiv preprint arXiv:1907.11692},
  year    = {2019}
}""",
    "distilbert": """@article{Sanh2019DistilBERTAD,
  title   = {{DistilBERT}, a distilled version of {BERT}: smaller, faster, cheaper and lighter},
  author  = {Victor Sanh and Lysandre Debut and Julien Chaumond and Thomas Wolf},
  journal = {ArXiv},
  year    = {2019},
  volume  = {abs/1910.01108}
}""",
    "jglue": """@inproceedings{kurihara-etal-2022-jglue,
  title     = "{JGLUE}: {J}apanese General Language Understanding Evaluation",
  author    = "Kurihara, Kentaro and Kawahara, Daisuke and Shibata, Tomohide",
  booktitle = "Proceedings of the Thirteenth Language Resources and Evaluation Conference",
  year      = "2022",
  publisher = "European Language Resources Association",
  url       = "https://aclanthology.org/2022.lrec-1.317"
}""",
}


def front_matter(meta: dict) -> str:
    """The card's YAML metadata block, written by a YAML dumper: every value stays a value (a
    newline or ``key: value`` in a field cannot add keys)."""
    import yaml

    return "---\n" + yaml.safe_dump(meta, allow_unicode=True, sort_keys=False, default_flow_style=False) + "---"


def cell(v) -> str:
    return str(v).replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def code(v) -> str:
    """Inline code of any text (a backtick in it gets a longer fence)."""
    s = str(v).replace("\n", " ")
    fence = "``" if "`" in s else "`"
    return f"{fence}{' ' if fence == '``' else ''}{s}{' ' if fence == '``' else ''}{fence}"


def num(v) -> str:
    return f"{v:,}" if isinstance(v, int) else ("–" if v is None else str(v))


def size(n) -> str:
    if n is None:
        return "–"
    for unit, f in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= f:
            return f"{n / f:.1f} {unit}"
    return f"{n} bytes"


def metric(v) -> str:
    return "–" if v is None else f"{v:.4f}"


def seconds(s) -> str:
    if s is None:
        return "–"
    if s < 120:
        return f"{s:.1f} s"
    return f"{s / 3600:.1f} h" if s >= 7200 else f"{s / 60:.1f} min"


# ---------------------------------------------------------------------------------------------


def _meta(f: dict) -> dict:
    card, a = f["card"], f["architecture"]
    family = a.get("model_type") or "bert"
    tags = card.get("tags") or ([family, "fill-mask", "japanese"] + (["pretraining"] if family == "bert" else []))
    meta = {"language": card.get("language", "ja"), "license": card["license"], "library_name": "transformers",
            "pipeline_tag": "fill-mask", "tags": [str(t) for t in tags]}
    datasets = card.get("datasets")
    if datasets is None:
        datasets = [DATASET_IDS[c] for c in dict.fromkeys(s["corpus"] for s in f["stages"]) if c in DATASET_IDS]
    if datasets:
        meta["datasets"] = [str(d) for d in datasets]
    meta["widget"] = [{"text": f["fill_mask"]["input"]}]
    return meta


def _architecture(f: dict) -> list[str]:
    a = f["architecture"]
    family = FAMILY_NAMES.get(a.get("model_type"), a.get("model_type") or "BERT")
    name = f" ({a['name']})" if a.get("name") else ""
    parts = [f"{a['num_layers']} layer{'s' if a['num_layers'] != 1 else ''}", f"hidden size {a['hidden_size']}",
             f"{a['num_attention_heads']} attention heads", f"intermediate size {a['intermediate_size']}",
             f"{a['max_position_embeddings']} position embeddings", f"vocabulary {a['vocab_size']}"]
    tied = ", tied MLM decoder" if a.get("tie_word_embeddings") else ""
    act = a.get("activation")
    note = ""
    if act == "gelu_new":
        note = " (the tanh approximation of GELU" + (", which TensorFlow Model Garden's `gelu` computes)"
                                                    if f.get("backend") == "model_garden" else ")")
    eps = f", layer-norm epsilon {a['layer_norm_eps']:g}" if a.get("layer_norm_eps") is not None else ""
    return ["## Model architecture", "",
            f"{family}{name}: {', '.join(parts)}; {a['parameters']:,} parameters (`{a['class']}`{tied}). "
            f"Activation `{act}`{note}{eps}. (From `config.json`; the parameter count is that of the weights in "
            "this directory.)", ""]


def _tokenization(f: dict) -> list[str]:
    t = f["tokenizer"]
    dic, sub = t.get("mecab_dic"), t.get("subword_tokenizer_type")
    if t.get("class") == "BertJapaneseTokenizer":
        how = {"wordpiece": "into subwords by WordPiece", "character": "into characters",
               "sentencepiece": "into SentencePiece pieces within each word"}.get(sub, f"by `{sub}`")
        text = (f"Text is split into words by MeCab with the `{dic}` dictionary (via fugashi), then {how} "
                f"(`BertJapaneseTokenizer`, `subword_tokenizer_type: {sub}`).")
    else:
        text = f"`{t.get('class')}` (`tokenizer.json`)."
    lines = ["## Tokenization", "", f"{text} Vocabulary size: {t['vocab_size']}.", ""]
    tr = t.get("training")
    if tr:
        what = (f"The character vocabulary `{t['name']}` is the first {t['vocab_size']:,} entries of the vocabulary "
                f"`{tr['of']}`, which" if t["type"] == "character" and tr["of"] != t["name"]
                else f"The vocabulary `{t['name']}` ({t['type']})")
        specials = tr.get("special_tokens")
        counts = [f"{len(specials) if isinstance(specials, list) else specials} special tokens" if specials else None,
                  f"{tr['unused_tokens']} `[unusedN]`" if "unused_tokens" in tr else None,
                  f"an alphabet of {tr['alphabet']:,} characters" if "alphabet" in tr else None,
                  f"{tr['continuation_chars']:,} `##` characters" if "continuation_chars" in tr else None,
                  f"{tr['learned_subwords']:,} learned subwords" if "learned_subwords" in tr else None]
        counts = [c for c in counts if c]
        words = (f" ({tr['words']:,} words, {tr['unique_words']:,} distinct)"
                 if isinstance(tr.get("words"), int) and isinstance(tr.get("unique_words"), int) else "")
        sample = f" on {tr['lines']:,} lines of `{tr['input']}`{words}" if "lines" in tr and "input" in tr else ""
        sizes = ""
        if "vocab_size" in tr:
            req = tr.get("vocab_size_requested")
            sizes = (f": {req:,} entries requested, {tr['vocab_size']:,} kept" if req is not None and req != tr["vocab_size"]
                     else f": {tr['vocab_size']:,} entries") + (f" ({', '.join(counts)})" if counts else "")
        lines += [f"{what} was trained{sample}{sizes} (`tokenizers/{tr['of']}/train.stats.json`).", ""]
    rec = [s for s in f["stages"] if s.get("records")]
    if rec:
        lines += ["The pretraining data of each stage, tokenized with it:", "",
                  "| stage | corpus | records | tokens | `[UNK]` |", "| --- | --- | ---: | ---: | ---: |"]
        for s in rec:
            r = s["records"]
            unk = "–" if r["unk_rate"] is None else f"{100 * r['unk_rate']:.2f} %"
            lines.append(f"| {cell(s['name'])} | {cell(s['corpus'])} | {r['instances']:,} | {r['tokens']:,} | {unk} |")
        lines.append("")
    return lines


def _corpora(f: dict) -> list[str]:
    if not f["corpora"]:
        return []
    lines = ["## Training data", "",
             "| corpus | raw dump | documents | sentences / lines | text in shards |",
             "| --- | --- | ---: | ---: | ---: |"]
    for c in f["corpora"]:
        dump = "<br>".join(f"{code(d['path'])} ({size(d['size'])})" for d in c["dump"])
        docs = num(c.get("documents"))
        if c.get("pages"):
            docs = f"{num(c['pages'].get('pages_written'))} pages (of {num(c['pages'].get('pages_read'))} read)"
        unit = "sentences" if c.get("split_sentences") else "lines (paragraphs, not split)"
        lines.append(f"| {cell(c['name'])} | {dump} | {docs} | {num(c.get('lines'))} {unit} | "
                     f"{size(c.get('text_bytes'))} in {num(c.get('num_shards'))} shards |")
    lines += ["", "The raw dumps, as read (sha256):", ""]
    for c in f["corpora"]:
        for d in c["dump"]:
            lines.append(f"- {cell(c['name'])}: {code(d['path'])}, {d['size']:,} bytes, sha256 `{d['sha256']}`")
    lines.append("")
    return lines


def _has_nsp(f: dict) -> bool:
    return f["architecture"].get("class") == "BertForPreTraining"


def _objective(f: dict) -> str:
    a = f["architecture"]
    mlm_nsp = _has_nsp(f)
    objective = ("masked language modelling + next sentence prediction" if mlm_nsp
                 else "masked language modelling" + (" with distillation" if a.get("model_type") == "distilbert"
                                                     else ""))
    if f.get("backend") == "torch":
        who = ("Pretrained with PyTorch (this project's `torch` backend" +
               (", which reproduces Model Garden's `bert/pretraining` recipe" if mlm_nsp else "") + f"): {objective}")
    else:
        who = f"Pretrained with TensorFlow Model Garden's `bert/pretraining` experiment: {objective}"
    stages = ", in stages; each stage starts from the previous stage's weights." if len(f["stages"]) > 1 else "."
    return f"{who}, AdamW, linear warm-up then linear decay{stages}"


def _training(f: dict) -> list[str]:
    lines = ["## Training", "", _objective(f), "",
             "| stage | corpus | sequence length | batch size | steps | peak learning rate | warm-up steps "
             "| final learning rate | job time |",
             "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for s in f["stages"]:
        c = s["config"]
        lines.append(f"| {cell(s['name'])} | {cell(s['corpus'])} | {num(c.get('max_seq_length'))} | "
                     f"{num(s.get('global_batch_size'))} | {num(s.get('final_step'))} | {num(c.get('learning_rate'))} | "
                     f"{num(c.get('warmup_steps'))} | {num(c.get('end_learning_rate'))} | {seconds(s.get('seconds'))} |")
    # NSP columns for a model with the next-sentence head (BertForPreTraining) only
    names = ["loss", "mlm_loss", "mlm_accuracy"] + (["nsp_loss", "nsp_accuracy"] if _has_nsp(f) else [])
    labels = {"loss": "loss", "mlm_loss": "MLM loss", "mlm_accuracy": "MLM accuracy", "nsp_loss": "NSP loss",
              "nsp_accuracy": "NSP accuracy"}
    lines += ["", "Final losses and accuracies of each stage (train: the mean over the last logging interval; "
                  "validation: at the end of the stage):", "",
              "| stage | split | step | " + " | ".join(labels[n] for n in names) + " |",
              "| --- | --- | ---: | " + " | ".join("---:" for _ in names) + " |"]
    for s in f["stages"]:
        for split in ("train", "validation"):
            m = s.get(split)
            if not m:
                continue
            lines.append(f"| {cell(s['name'])} | {split} | {m['step']:,} | "
                         + " | ".join(metric(m.get(n)) for n in names) + " |")
    lines.append("")
    for s in f["stages"]:
        run = f", run `{s['run_key'][:16]}`" if s.get("run_key") else ""
        resumed = f", resumed from `{s['resumed_from']}`" if s.get("resumed_from") else ""
        where = s.get("device") or ", ".join(s.get("devices") or []) or "–"
        lines.append(f"- {cell(s['name'])}: steps {s.get('start_step', 0)} to {s.get('final_step')} on {code(where)}"
                     f"{run}{resumed}; metrics from {s['source']}")
    conv = f.get("converted_from") or {}
    if conv.get("checkpoint"):
        step = f" (step {conv['final_step']})" if conv.get("final_step") is not None else ""
        lines += ["", f"Converted from the checkpoint {code(conv['checkpoint'])}{step}."]
    lines.append("")
    return lines


def score(row: dict) -> str:
    std = row.get("std") or {}
    parts = []
    for m in row["metric_names"]:
        if m in row["metrics"]:
            parts.append(f"{row['metrics'][m]:.3f}" + (f" ± {std[m]:.3f}" if m in std else ""))
    return " / ".join(parts)


def _evaluation(f: dict) -> list[str]:
    j, name = f["jglue"], f["model"]
    lines = ["## Evaluation (JGLUE)", ""]
    if not j["evaluated"]:
        return lines + [
            f"Not evaluated: this build ran no JGLUE evaluation for `{name}` (it is not in `default_eval`), so this "
            "card reports no scores. To evaluate it and rewrite this card with the results: "
            f"`snakemake --cores 8 hf_model/{name} --config 'default_eval=[{name}]'`.", ""]
    scored = [r for r in j["tasks"] if not r.get("skipped") and r["metrics"]]
    if scored:
        lines += ["Each task fine-tuned on its train split and scored on its dev split; the best point of the "
                  "learning-rate × epochs grid on dev (mean ± sample std over seeds when several), as "
                  f"`eval/jglue/{name}/<task>/metrics.json` records it:", "",
                  "| task | metric | score | learning rate | epochs | seeds | data |",
                  "| --- | --- | ---: | ---: | ---: | ---: | --- |"]
        for r in scored:
            best = r.get("best") or {}
            labels = " / ".join(T.METRIC_LABELS.get(m, m) for m in r["metric_names"] if m in r["metrics"])
            lines.append(f"| {cell(r['title'])} | {labels} | {score(r)} | {num(best.get('learning_rate'))} | "
                         f"{num(best.get('epochs'))} | {num(r.get('n_seeds'))} | {cell(r.get('dataset') or '–')} |")
        lines.append("")
    else:
        lines += ["Evaluation was configured, but no task could be scored (their data files are missing):", ""]
    skipped = [r for r in j["tasks"] if r.get("skipped")]
    if skipped:
        lines += ["Not scored:", ""] + [f"- {cell(r['title'])}: {cell(r['skipped'])}" for r in skipped] + [""]
    return lines


def _fill_mask(f: dict) -> list[str]:
    fm = f["fill_mask"]
    lines = ["## Fill-mask example", "",
             f"What this model predicted when this card was written (the `fill-mask` pipeline, as under How to use, "
             f"top {fm['top_k']}) for {code(fm['input'])}:", "",
             "| rank | token | score | sequence |", "| ---: | --- | ---: | --- |"]
    for i, p in enumerate(fm["predictions"], 1):
        lines.append(f"| {i} | {cell(code(p['token_str']))} | {p['score']:.4f} | {cell(p['sequence'])} |")
    return lines + [""]


def _usage(f: dict) -> list[str]:
    t, fm = f["tokenizer"], f["fill_mask"]
    needs = ["Tokenization needs `fugashi` and `unidic-lite` (`pip install fugashi unidic-lite`).", ""] \
        if t.get("class") == "BertJapaneseTokenizer" else []
    return ["## How to use", "", *needs, "```python",
            "from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline", "",
            f"path = {json.dumps(f['path'], ensure_ascii=False)}  # this directory (or the model's Hub id once uploaded)",
            "tokenizer = AutoTokenizer.from_pretrained(path)",
            "model = AutoModelForMaskedLM.from_pretrained(path)",
            'fill_mask = pipeline("fill-mask", model=model, tokenizer=tokenizer)',
            f"text = {json.dumps(fm['input'], ensure_ascii=False)}",
            f"# Inputs longer than the model's {f['architecture']['max_position_embeddings']} tokens must be truncated "
            "(keep the mask token within them):",
            'print(fill_mask(text, tokenizer_kwargs={"truncation": True}))',
            "```", ""]


def _provenance(f: dict) -> list[str]:
    p = f["provenance"]
    c = p.get("code") or {}
    commit = (f"commit `{c['commit']}`" + (" (with uncommitted changes)" if c.get("dirty") else "")
              if c.get("commit") else "not a git checkout (no commit recorded)")
    pk = p.get("packages") or {}
    pkgs = ", ".join(f"{k} {v}" for k, v in pk.items() if k in ("transformers", "torch", "tensorflow",
                                                               "tf-models-official", "tokenizers", "fugashi"))
    return ["## Provenance", "",
            f"- code: {commit}; seed {num(p.get('seed'))}; Python {p.get('python') or '–'}" + (f"; {pkgs}" if pkgs else ""),
            "- `provenance.json` (this directory): the raw dumps' sha256, every configuration value that shaped the "
            "model, the final training stage's record and the package versions; `card.json`: every fact this card "
            "states, unrounded.", ""]


def _license(f: dict) -> list[str]:
    lines = ["## License", "", f"`{f['card']['license']}` (the model files in this directory).", ""]
    if f["corpora"]:
        lines += ["The training text keeps its own terms:", ""]
        lines += [f"- {cell(c['name'])}: {c['url'] or ', '.join(code(d['path']) for d in c['dump'])}"
                  for c in f["corpora"]]
        lines.append("")
    return lines


def _citation(f: dict) -> list[str]:
    family = f["architecture"].get("model_type") or "bert"
    keys = (["recipe", "bert"] if family == "bert" else [family, "bert"] if family in CITATIONS else ["bert"])
    if f["jglue"]["evaluated"]:
        keys.append("jglue")
    what = ("This model follows the recipe of the cl-tohoku Japanese BERT models" if family == "bert"
            else f"This is a {FAMILY_NAMES.get(family, family)} model")
    return ["## Citation", "", f"{what}; please cite:", "", "```bibtex", "\n\n".join(CITATIONS[k] for k in keys),
            "```", ""]


def model_card(f: dict) -> str:
    """The README.md text of the model whose facts are ``f`` (:func:`scripts.release.facts.gather`)."""
    lines = [front_matter(_meta(f)), "", f"# {f['model']}", "", f["card"]["description"], ""]
    for section in (_architecture, _tokenization, _corpora, _training, _evaluation, _fill_mask, _usage, _provenance,
                    _license, _citation):
        lines += section(f)
    return "\n".join(lines)
