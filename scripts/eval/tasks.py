"""The JGLUE tasks: what each one is, and readers for their files (JGLUE's own formats, read
directly: no `datasets` loading scripts).

File formats (JGLUE v1.3, https://github.com/yahoojapan/JGLUE, ``datasets/<task>-v1.3/``):

* MARC-ja, JCoLA: JSON lines; ``sentence`` and ``label`` (MARC-ja: ``positive``/``negative``;
  JCoLA, from https://github.com/osekilab/JCoLA: ``0``/``1``).
* JSTS, JNLI: JSON lines; ``sentence1``, ``sentence2``, ``label`` (JSTS: a similarity 0..5;
  JNLI: ``entailment``/``contradiction``/``neutral``).
* JCommonsenseQA: JSON lines; ``question``, ``choice0`` .. ``choice4``, ``label`` (0..4).
* JSQuAD: one JSON object in SQuAD v1 layout: ``{"data": [{"title", "paragraphs": [{"context",
  "qas": [{"id", "question", "answers": [{"text", "answer_start"}], "is_impossible"}]}]}]}``;
  the context is ``<title> [SEP] <paragraph>``; dev questions have 2-3 answers.

A record that lacks a field or has an unknown label is an error naming the file and line (a
silently dropped dev example would change the score).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from scripts.shared.common import InputError

JGLUE_URL = "https://github.com/yahoojapan/JGLUE"


@dataclass(frozen=True)
class Task:
    name: str                 # config key and path component
    title: str                # the column name in the results table
    kind: str                 # single | pair | regression | choice | qa
    metrics: tuple[str, ...]  # in table order
    select_by: str            # the dev metric that picks the best grid point
    labels: tuple = ()        # class labels (index = class id) for single/pair
    source: str = JGLUE_URL
    note: str = ""            # said when the data is missing

    @property
    def num_labels(self) -> int:
        return {"regression": 1, "choice": 1, "qa": 2}.get(self.kind, len(self.labels))


TASKS = {t.name: t for t in [
    Task("marc_ja", "MARC-ja", "single", ("accuracy",), "accuracy", ("positive", "negative"),
         note="MARC-ja is no longer distributed (Amazon stopped distributing MARC; see JGLUE's README); "
              "a copy made earlier with JGLUE's preprocess/marc-ja script can be placed there"),
    Task("jsts", "JSTS", "regression", ("pearson", "spearman"), "pearson"),
    Task("jnli", "JNLI", "pair", ("accuracy",), "accuracy", ("entailment", "contradiction", "neutral")),
    Task("jsquad", "JSQuAD", "qa", ("exact_match", "f1"), "f1"),
    Task("jcommonsenseqa", "JCommonsenseQA", "choice", ("accuracy",), "accuracy"),
    Task("jcola", "JCoLA", "single", ("accuracy", "matthews"), "accuracy", (0, 1),
         source="https://github.com/osekilab/JCoLA",
         note="JCoLA ships separately from JGLUE's datasets/ (its data/jcola-v1.0/ files)"),
]}

NUM_CHOICES = 5
METRIC_LABELS = {"accuracy": "Acc.", "pearson": "Pearson", "spearman": "Spearman", "exact_match": "EM",
                 "f1": "F1", "matthews": "MCC"}


def get(name: str) -> Task:
    try:
        return TASKS[name]
    except KeyError:
        raise ValueError(f"unknown JGLUE task {name!r} (known: {', '.join(TASKS)})") from None


def missing_message(task: Task, split: str, path: str, config_key: str) -> str:
    msg = (f"{task.title} skipped: its {split} file {path} does not exist. The data comes from "
           f"{task.source}")
    if task.source != JGLUE_URL:
        msg += f" (JGLUE: {JGLUE_URL})"
    if task.note:
        msg += f"; {task.note}"
    return msg + f". Set config key {config_key} to the directory that holds it."


# ---------------------------------------------------------------------------------------------
# Readers
# ---------------------------------------------------------------------------------------------


def iter_json_lines(path: str):
    """``(line number, object)`` of a JSON-lines file; blank lines are skipped."""
    with open(path, encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise InputError(path, f"not JSON: {e.msg}", lineno) from None
            if not isinstance(obj, dict):
                raise InputError(path, "expected a JSON object", lineno)
            yield lineno, obj


def _field(obj: dict, key: str, path: str, lineno, kind=str):
    if key not in obj:
        raise InputError(path, f"missing field {key!r}", lineno)
    v = obj[key]
    if kind is float:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise InputError(path, f"field {key!r} must be a number, got {v!r}", lineno)
        return float(v)
    if not isinstance(v, kind):
        raise InputError(path, f"field {key!r} must be {kind.__name__}, got {v!r}", lineno)
    return v


def _label_id(task: Task, v, path, lineno) -> int:
    for i, lab in enumerate(task.labels):
        if v == lab and type(v) is type(lab):
            return i
    raise InputError(path, f"unknown {task.title} label {v!r} (expected one of {list(task.labels)})", lineno)


def load(task: Task, path: str, limit: int = 0) -> list[dict]:
    """The examples of a split, as dicts (``limit`` > 0 keeps the first ``limit``).

    single: ``{text_a, label}``; pair: ``{text_a, text_b, label}``; regression: same with a
    float label; choice: ``{question, choices, label}``; qa: ``{id, question, context, answers:
    [{text, answer_start}]}`` (one per question).
    """
    if task.kind == "qa":
        examples = load_squad(path)
    else:
        examples = []
        for lineno, obj in iter_json_lines(path):
            if task.kind == "single":
                ex = {"text_a": _field(obj, "sentence", path, lineno)}
            elif task.kind == "choice":
                ex = {"question": _field(obj, "question", path, lineno),
                      "choices": [_field(obj, f"choice{i}", path, lineno) for i in range(NUM_CHOICES)]}
            else:
                ex = {"text_a": _field(obj, "sentence1", path, lineno),
                      "text_b": _field(obj, "sentence2", path, lineno)}
            if task.kind == "regression":
                ex["label"] = _field(obj, "label", path, lineno, float)
            elif task.kind == "choice":
                lab = _field(obj, "label", path, lineno, int)
                if not 0 <= lab < NUM_CHOICES:
                    raise InputError(path, f"label {lab} is not a choice index 0..{NUM_CHOICES - 1}", lineno)
                ex["label"] = lab
            else:
                if "label" not in obj:
                    raise InputError(path, "missing field 'label'", lineno)
                ex["label"] = _label_id(task, obj["label"], path, lineno)
            examples.append(ex)
            if limit and len(examples) >= limit:
                break
    if not examples:
        raise InputError(path, f"no {task.title} examples")
    return examples[:limit] if limit else examples


def load_squad(path: str) -> list[dict]:
    try:
        with open(path, encoding="utf-8") as fh:
            obj = json.load(fh)
    except json.JSONDecodeError as e:
        raise InputError(path, f"not JSON: {e.msg}", e.lineno) from None
    if not isinstance(obj, dict) or not isinstance(obj.get("data"), list):
        raise InputError(path, "not a SQuAD-format file (no 'data' list)")
    out = []
    for a, article in enumerate(obj["data"]):
        for p, para in enumerate(article.get("paragraphs", [])):
            where = f"data[{a}].paragraphs[{p}]"
            context = para.get("context")
            if not isinstance(context, str):
                raise InputError(path, f"{where}: missing 'context'")
            for q, qa in enumerate(para.get("qas", [])):
                qwhere = f"{where}.qas[{q}]"
                if not isinstance(qa.get("question"), str) or not qa.get("answers"):
                    raise InputError(path, f"{qwhere}: needs 'question' and 'answers'")
                answers = []
                for ans in qa["answers"]:
                    if not isinstance(ans.get("text"), str) or not isinstance(ans.get("answer_start"), int):
                        raise InputError(path, f"{qwhere}: an answer needs 'text' and 'answer_start'")
                    answers.append({"text": ans["text"], "answer_start": ans["answer_start"]})
                out.append({"id": str(qa.get("id", qwhere)), "question": qa["question"], "context": context,
                            "answers": answers})
    return out
