"""The JGLUE metrics: accuracy, Pearson/Spearman, Matthews correlation, JSQuAD EM/F1.

Plain numpy, no evaluation library; tests compare every function with scipy / scikit-learn and
with hand-computed values.

JSQuAD's EM and F1 are the ones JGLUE's fine-tuning patch puts into transformers'
``squad_metrics`` (facts read from JGLUE's ``fine-tuning/patch``), i.e. SQuAD's definitions with
Japanese normalisation and *character-level* F1:

* normalise: lower-case, no punctuation removal, strip trailing ``。`` (in place of SQuAD's
  English-article removal), collapse whitespace runs to one space;
* EM: normalised prediction == normalised gold;
* F1: over the multiset of characters of the two normalised strings (spaces count as
  characters); if either is empty, 1.0 when both are, else 0.0;
* per question, the maximum over its gold answers (gold answers that normalise to "" are
  dropped; none left means the gold is ""); the mean over questions. Fractions (0..1), as in
  the cl-tohoku table, not SQuAD's percentages.
"""

from __future__ import annotations

import collections
from typing import Iterable, Sequence

import numpy as np


def accuracy(predictions: Sequence, labels: Sequence) -> float:
    p, y = np.asarray(predictions), np.asarray(labels)
    if p.shape != y.shape or p.size == 0:
        raise ValueError(f"accuracy needs equal, non-empty inputs (got {p.shape} and {y.shape})")
    return float(np.mean(p == y))


def pearson(x: Sequence[float], y: Sequence[float]) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"pearson needs two equal inputs of at least 2 values (got {x.shape}, {y.shape})")
    dx, dy = x - x.mean(), y - y.mean()
    denom = np.sqrt(np.dot(dx, dx) * np.dot(dy, dy))
    return float(np.dot(dx, dy) / denom) if denom > 0 else 0.0


def rankdata(x: Sequence[float]) -> np.ndarray:
    """Ranks 1..n, ties given their average rank (scipy.stats.rankdata's default)."""
    x = np.asarray(x, dtype=np.float64)
    order = np.argsort(x, kind="mergesort")
    sorted_x = x[order]
    ranks = np.empty(len(x), dtype=np.float64)
    i = 0
    while i < len(x):
        j = i
        while j + 1 < len(x) and sorted_x[j + 1] == sorted_x[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def spearman(x: Sequence[float], y: Sequence[float]) -> float:
    return pearson(rankdata(x), rankdata(y))


def matthews(predictions: Sequence[int], labels: Sequence[int]) -> float:
    """Matthews correlation coefficient of a binary task (0 when undefined)."""
    p, y = np.asarray(predictions).astype(bool), np.asarray(labels).astype(bool)
    tp, tn = float(np.sum(p & y)), float(np.sum(~p & ~y))
    fp, fn = float(np.sum(p & ~y)), float(np.sum(~p & y))
    denom = np.sqrt((tp + fp) * (tp + fn) * (tn + fp) * (tn + fn))
    return float((tp * tn - fp * fn) / denom) if denom > 0 else 0.0


# ---------------------------------------------------------------------------------------------
# JSQuAD
# ---------------------------------------------------------------------------------------------


def normalize_answer(s: str) -> str:
    s = s.lower()
    s = s.rstrip("。")
    return " ".join(s.split())


def exact_match(gold: str, pred: str) -> float:
    return float(normalize_answer(gold) == normalize_answer(pred))


def char_f1(gold: str, pred: str) -> float:
    g, p = list(normalize_answer(gold)), list(normalize_answer(pred))
    if not g or not p:
        return float(g == p)
    same = sum((collections.Counter(g) & collections.Counter(p)).values())
    if same == 0:
        return 0.0
    precision, recall = same / len(p), same / len(g)
    return 2 * precision * recall / (precision + recall)


def squad_scores(golds: Iterable[Sequence[str]], preds: Iterable[str]) -> dict[str, float]:
    """``{"exact_match", "f1"}`` over questions; each question's golds is a list of answers."""
    em = f1 = 0.0
    n = 0
    for answers, pred in zip(golds, preds, strict=True):
        answers = [a for a in answers if normalize_answer(a)] or [""]
        em += max(exact_match(a, pred) for a in answers)
        f1 += max(char_f1(a, pred) for a in answers)
        n += 1
    if n == 0:
        raise ValueError("squad_scores needs at least one question")
    return {"exact_match": em / n, "f1": f1 / n}
