"""Model inputs for the JGLUE tasks, and JSQuAD's answer decoding.

* single / pair / regression: ``[CLS] a [SEP] (b [SEP])``, truncated longest-first to
  ``max_seq_length`` (what transformers' ``run_glue.py`` does).
* choice: the question paired with each of the five choices, ``(5, L)`` per example
  (``run_swag.py`` as JGLUE patches it: first segment the question, second the choice).
* qa: ``[CLS] question [SEP] context window [SEP]``. The question is cut to
  ``max_query_length`` tokens; a long context is split into windows of the remaining length whose
  starts are ``doc_stride`` tokens apart (Google BERT's ``run_squad.py`` convention). Answer
  positions come from the token character spans (:mod:`scripts.eval.align`); a window that does
  not contain the answer is labelled ``[CLS]`` (0, 0), as SQuAD v1 training does. A question whose
  answer no token covers is left out of training and counted. Decoding takes the best
  ``start + end`` logit pair over the windows (``n_best_size`` candidates each, end >= start,
  at most ``max_answer_length`` tokens, the window that gives the token its widest context) and
  returns the original context characters of that span.
"""

from __future__ import annotations

import collections
from typing import Sequence

import numpy as np

from scripts.eval.align import encode_with_spans, recovery


def encode_text(tokenizer, examples: list[dict], max_len: int) -> list[dict]:
    pair = "text_b" in examples[0]
    enc = tokenizer([e["text_a"] for e in examples], [e["text_b"] for e in examples] if pair else None,
                    truncation=True, max_length=max_len, return_token_type_ids=True)
    return [{"input_ids": ids, "token_type_ids": tt, "label": e["label"]}
            for ids, tt, e in zip(enc["input_ids"], enc["token_type_ids"], examples)]


def encode_choice(tokenizer, examples: list[dict], max_len: int) -> list[dict]:
    out = []
    for e in examples:
        n = len(e["choices"])
        enc = tokenizer([e["question"]] * n, e["choices"], truncation=True, max_length=max_len,
                        return_token_type_ids=True)
        out.append({"input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"], "label": e["label"]})
    return out


def windows(doc_len: int, max_doc: int, stride: int) -> list[tuple[int, int]]:
    """``(start, length)`` of the context windows."""
    out, start = [], 0
    while True:
        length = min(max_doc, doc_len - start)
        out.append((start, length))
        if start + length >= doc_len:
            return out
        start += min(length, stride)


def _max_context(wins: list[tuple[int, int]], w: int, pos: int) -> bool:
    """Whether window ``w`` gives token ``pos`` its widest context (ties: the earlier window)."""
    best, best_w = None, None
    for i, (s, n) in enumerate(wins):
        if s <= pos < s + n:
            score = min(pos - s, s + n - 1 - pos) + 0.01 * n
            if best is None or score > best:
                best, best_w = score, i
    return best_w == w


def encode_qa(tokenizer, examples: list[dict], *, max_len: int, doc_stride: int, max_query_length: int,
              train: bool) -> tuple[list[dict], dict]:
    """Features (several per long example) and the answer-recovery counts of the first answers."""
    cache: dict[str, tuple] = {}
    feats: list[dict] = []
    counts = collections.Counter()
    cls, sep = tokenizer.cls_token_id, tokenizer.sep_token_id
    for ei, ex in enumerate(examples):
        if ex["context"] not in cache:
            cache[ex["context"]] = encode_with_spans(tokenizer, ex["context"])
        ctx_ids, spans = cache[ex["context"]]
        q_ids = tokenizer.convert_tokens_to_ids(tokenizer.tokenize(ex["question"]))[:max_query_length]
        ans = ex["answers"][0]
        status, ts = recovery(ex["context"], spans, ans["text"], ans["answer_start"])
        counts[status] += 1
        if train and ts is None:
            continue
        max_doc = max_len - len(q_ids) - 3
        if max_doc < 1:
            raise ValueError(f"max_seq_length {max_len} leaves no room for the context")
        wins = windows(len(ctx_ids), max_doc, doc_stride)
        offset = len(q_ids) + 2
        for w, (s, n) in enumerate(wins):
            ids = [cls, *q_ids, sep, *ctx_ids[s:s + n], sep]
            f = {"input_ids": ids, "token_type_ids": [0] * offset + [1] * (n + 1), "example": ei,
                 "offset": offset, "window": (s, n),
                 "max_context": [_max_context(wins, w, s + i) for i in range(n)]}
            if train:
                a, b = ts
                f["start"], f["end"] = (a - s + offset, b - s + offset) if s <= a and b < s + n else (0, 0)
            feats.append(f)
    total = sum(counts.values())
    stats = {"questions": total, **{k: counts.get(k, 0) for k in ("exact", "partial", "lost")},
             "exact_fraction": counts.get("exact", 0) / total if total else 0.0,
             "covered_fraction": (counts.get("exact", 0) + counts.get("partial", 0)) / total if total else 0.0}
    return feats, {"stats": stats, "spans": {c: v[1] for c, v in cache.items()}}


def decode_qa(examples: list[dict], feats: list[dict], spans_of: dict, start_logits: Sequence, end_logits: Sequence,
              *, n_best_size: int = 20, max_answer_length: int = 30) -> list[str]:
    """The predicted answer text of every example (``""`` if no valid span)."""
    best: dict[int, tuple[float, str]] = {}
    for f, sl, el in zip(feats, start_logits, end_logits):
        ex = examples[f["example"]]
        spans = spans_of[ex["context"]]
        off, (s, n) = f["offset"], f["window"]
        sl, el = np.asarray(sl, dtype=np.float64)[off:off + n], np.asarray(el, dtype=np.float64)[off:off + n]
        starts = np.argsort(-sl, kind="stable")[:n_best_size]
        ends = np.argsort(-el, kind="stable")[:n_best_size]
        for i in starts:
            if not f["max_context"][i] or spans[s + i] is None:
                continue
            for j in ends:
                if j < i or j - i + 1 > max_answer_length or spans[s + j] is None:
                    continue
                score = sl[i] + el[j]
                if f["example"] not in best or score > best[f["example"]][0]:
                    best[f["example"]] = (score, ex["context"][spans[s + i][0]:spans[s + j][1]])
    return [best.get(i, (0.0, ""))[1] for i in range(len(examples))]


def collate(batch: list[dict], pad_id: int) -> dict:
    """Pad to the longest sequence of the batch; choice examples become ``(B, choices, L)``."""
    import torch

    nested = isinstance(batch[0]["input_ids"][0], list)
    seqs = [s for b in batch for s in (b["input_ids"] if nested else [b["input_ids"]])]
    types = [s for b in batch for s in (b["token_type_ids"] if nested else [b["token_type_ids"]])]
    L = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), L), pad_id, dtype=torch.long)
    tt = torch.zeros((len(seqs), L), dtype=torch.long)
    mask = torch.zeros((len(seqs), L), dtype=torch.long)
    for i, (s, t) in enumerate(zip(seqs, types)):
        ids[i, :len(s)] = torch.tensor(s)
        tt[i, :len(t)] = torch.tensor(t)
        mask[i, :len(s)] = 1
    out = {"input_ids": ids, "token_type_ids": tt, "attention_mask": mask}
    if nested:
        k = len(batch[0]["input_ids"])
        out = {name: v.view(len(batch), k, L) for name, v in out.items()}
    return out
