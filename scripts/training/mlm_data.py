"""Masked-LM batches from token shards, masked on the fly (RoBERTa, DistilBERT distillation).

The input is the token shards of :mod:`scripts.pretraining_data.token_shards` (FULL-SENTENCES
rows of token ids, each with a "continues a MeCab word" bit; :func:`scripts.shared.formats.read_token_shard`
maps them without reading). Every time a row is read it is masked anew (:func:`mask_rows`, a
compiled kernel):

* **Candidates**: every token of the row except ``[CLS]``, ``[SEP]`` and ``[PAD]``.
* **How many**: ``num = min(max_predictions, max(1, round(candidates x masked_lm_prob)))``.
* **Groups**: with ``whole_word`` and a tokenizer that has MeCab words, a group is a MeCab word
  (its first token and the tokens that continue it; a word cut by a row boundary is the part
  inside the row); otherwise every token is a group. Groups are visited in random order and a
  group is taken iff it still fits into ``num`` (so a word is never split, as in the BERT data
  stage).
* **Replacement**: ``bert``: each chosen token becomes ``[MASK]`` with probability 0.8, stays with
  0.1, becomes a uniformly drawn non-special token with 0.1; ``mask``: always ``[MASK]`` (rinna).

The random numbers of a row come from a counter-based generator (splitmix64) keyed by ``(seed,
epoch, the row's global index)``: the masks are reproducible from the seed and the stream
position alone -- independent of the batch a row lands in, the number of workers or ranks,
and of where a run was resumed.

Distribution over consumers (one per DDP rank and DataLoader worker, as
:mod:`scripts.training.torch_data`): the rows of all files are numbered in file order; consumer
``k`` of ``N`` owns the rows ``i`` with ``i % N == k`` and visits them in a permutation drawn
from ``(seed, k, epoch)``. A consumer's position is ``(epoch, rows emitted in that epoch)``,
stored in the checkpoint; a resumed stream continues exactly (nothing is re-read: rows are
addressed directly in the mapped files).

Batches carry the keys of the BERT records' batches (``input_ids``, ``attention_mask``,
``token_type_ids`` (zeros), ``masked_lm_positions``, ``masked_lm_ids``, ``masked_lm_weights``,
``next_sentence_labels`` (zeros)), so the engine's device transfer and padding trim apply.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Sequence

import numpy as np
from numba import njit

from scripts.shared.common import InputError
from scripts.shared.formats import read_token_shard
from scripts.shared.registry import mlm_max_predictions

REPLACE = ("bert", "mask")


@dataclass(frozen=True)
class MaskSpec:
    masked_lm_prob: float = 0.15
    max_predictions: int = 20
    whole_word: bool = True
    replace: str = "bert"     # bert (80/10/10) | mask (always [MASK])

    def check(self) -> None:
        if not 0.0 < self.masked_lm_prob < 1.0:
            raise ValueError("masked_lm_prob must be in (0, 1)")
        if self.max_predictions < 1:
            raise ValueError("max_predictions must be at least 1")
        if self.replace not in REPLACE:
            raise ValueError(f"replace must be one of {', '.join(REPLACE)}")


def max_predictions(seq_length: int, masked_lm_prob: float) -> int:
    """The masked slots a row needs (``num`` above can never exceed it): the registry's rule, which
    the stage config is written with."""
    return mlm_max_predictions(seq_length, masked_lm_prob)


# ---------------------------------------------------------------------------------------------
# The kernel
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def _mix(z):
    z = (z + np.uint64(0x9E3779B97F4A7C15))
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


@njit(cache=True, nogil=True)
def row_key(seed, epoch, row):
    return _mix(_mix(_mix(np.uint64(seed)) ^ np.uint64(epoch)) ^ np.uint64(row))


@njit(cache=True, nogil=True)
def mask_rows(rows, global_index, epoch, seed, bit, cls_id, sep_id, pad_id, mask_id, random_ids, prob,
              whole_word, always_mask, P, input_ids, attention_mask, positions, labels, weights):
    """Mask ``rows`` (``n x L`` packed ids) into the output arrays (module docstring).

    Returns the number of masked tokens per replacement kind ``[mask, keep, random]`` and the
    candidate count, for statistics."""
    n, L = rows.shape
    id_mask = (np.uint64(1) << np.uint64(bit)) - np.uint64(1)
    counts = np.zeros(4, np.int64)
    cand = np.zeros(L, np.bool_)
    gstart = np.zeros(L, np.int64)
    gsize = np.zeros(L, np.int64)
    keys = np.zeros(L, np.uint64)
    chosen = np.zeros(L, np.bool_)
    n_random = random_ids.shape[0]
    for r in range(n):
        state = row_key(seed, epoch, global_index[r])
        length = L
        while length > 0 and (np.uint64(rows[r, length - 1]) & id_mask) == np.uint64(pad_id):
            length -= 1
        ncand = 0
        ng = 0
        for j in range(L):
            tid = np.int64(np.uint64(rows[r, j]) & id_mask)
            input_ids[r, j] = tid
            attention_mask[r, j] = 1 if j < length else 0
            c = j < length and tid != cls_id and tid != sep_id and tid != pad_id
            cand[j] = c
            chosen[j] = False
            if not c:
                continue
            ncand += 1
            cont = (np.uint64(rows[r, j]) >> np.uint64(bit)) != np.uint64(0)
            if whole_word and cont and j > 0 and cand[j - 1] and ng > 0:
                gsize[ng - 1] += 1
            else:
                gstart[ng] = j
                gsize[ng] = 1
                ng += 1
        for k in range(P):
            positions[r, k] = 0
            labels[r, k] = 0
            weights[r, k] = 0.0
        counts[3] += ncand
        if ncand == 0:
            continue
        num = min(P, max(1, np.int64(np.round(ncand * prob))))
        for g in range(ng):
            state = _mix(state)
            keys[g] = state
        order = np.argsort(keys[:ng], kind="mergesort")
        taken = 0
        for oi in range(ng):
            g = order[oi]
            if taken + gsize[g] <= num:
                for j in range(gstart[g], gstart[g] + gsize[g]):
                    chosen[j] = True
                taken += gsize[g]
                if taken == num:
                    break
        k = 0
        for j in range(L):
            if not chosen[j]:
                continue
            positions[r, k] = j
            labels[r, k] = input_ids[r, j]
            weights[r, k] = 1.0
            k += 1
            if always_mask:
                input_ids[r, j] = mask_id
                counts[0] += 1
                continue
            state = _mix(state)
            u = np.float64(state >> np.uint64(11)) * (1.0 / 9007199254740992.0)
            if u < 0.8:
                input_ids[r, j] = mask_id
                counts[0] += 1
            elif u < 0.9:
                counts[1] += 1
            else:
                state = _mix(state)
                input_ids[r, j] = random_ids[np.int64(state % np.uint64(n_random))]
                counts[2] += 1
    return counts


# ---------------------------------------------------------------------------------------------
# Shards, consumers, streams
# ---------------------------------------------------------------------------------------------


class ShardSet:
    """The token shards of a stage, mapped; rows numbered across files in the given order."""

    def __init__(self, files: Sequence[str]):
        if not files:
            raise InputError("--train-file", "no token shards given")
        self.files = [str(f) for f in files]
        self._rows: list[np.ndarray | None] = [None] * len(self.files)
        metas = []
        sizes = []
        for f in self.files:
            rows, meta = read_token_shard(f)
            metas.append(meta)
            sizes.append(rows.shape[0])
        first = metas[0]
        for f, m in zip(self.files, metas):
            for key in ("seq_length", "dtype", "continuation_bit", "special_ids", "vocab_size"):
                if m[key] != first[key]:
                    raise InputError(f, f"token shard's {key} {m[key]!r} differs from {self.files[0]}'s {first[key]!r}")
        self.meta = first
        self.word_boundaries = any(m["word_boundaries"] for m in metas)
        self.offsets = np.concatenate(([0], np.cumsum(sizes))).astype(np.int64)
        self.total = int(self.offsets[-1])
        if self.total == 0:
            raise InputError(self.files[0], "the token shards hold no rows")

    @property
    def seq_length(self) -> int:
        return int(self.meta["seq_length"])

    def rows(self, i: int) -> np.ndarray:
        if self._rows[i] is None:  # mapped lazily (per process: DataLoader workers map their own)
            self._rows[i] = read_token_shard(self.files[i])[0]
        return self._rows[i]

    def gather(self, index: np.ndarray) -> np.ndarray:
        """Rows by global index (in the given order)."""
        out = np.empty((index.size, self.seq_length), np.dtype(self.meta["dtype"]))
        f = np.searchsorted(self.offsets, index, side="right") - 1
        for fi in np.unique(f):
            sel = np.flatnonzero(f == fi)
            out[sel] = self.rows(int(fi))[index[sel] - self.offsets[fi]]
        return out

    def __getstate__(self):
        state = dict(self.__dict__)
        state["_rows"] = [None] * len(self.files)
        return state


def _rng(*key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(x) for x in key])))


class Masker:
    """:func:`mask_rows` with a stage's settings and a shard set's special ids."""

    def __init__(self, shards: ShardSet, spec: MaskSpec, seed: int):
        spec.check()
        self.spec, self.seed = spec, int(seed)
        ids = shards.meta["special_ids"]
        self.ids = ids
        self.bit = int(shards.meta["continuation_bit"])
        specials = set(ids.values())
        self.random_ids = np.array([i for i in range(int(shards.meta["vocab_size"])) if i not in specials], np.int64)
        self.whole_word = spec.whole_word and shards.word_boundaries
        self.shards = shards

    def __call__(self, rows: np.ndarray, global_index: np.ndarray, epoch: int):
        n, L = rows.shape
        P = self.spec.max_predictions
        input_ids = np.empty((n, L), np.int32)
        attention_mask = np.empty((n, L), np.int32)
        positions = np.empty((n, P), np.int32)
        labels = np.empty((n, P), np.int32)
        weights = np.empty((n, P), np.float32)
        counts = mask_rows(rows, global_index.astype(np.int64), int(epoch), self.seed, self.bit, self.ids["cls"],
                           self.ids["sep"], self.ids["pad"], self.ids["mask"], self.random_ids,
                           float(self.spec.masked_lm_prob), self.whole_word, self.spec.replace == "mask", P,
                           input_ids, attention_mask, positions, labels, weights)
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "token_type_ids": np.zeros((n, L), np.int32), "masked_lm_positions": positions,
                "masked_lm_ids": labels, "masked_lm_weights": weights,
                "next_sentence_labels": np.zeros(n, np.int32)}, counts


@dataclass
class MlmStream:
    """The infinite, seeded row stream of consumer ``k`` of ``num_consumers`` (module docstring)."""

    shards: ShardSet
    k: int
    num_consumers: int
    seed: int = 0
    epoch: int = 0
    offset: int = 0

    def owned(self) -> np.ndarray:
        rows = np.arange(self.k, self.shards.total, self.num_consumers, dtype=np.int64)
        if rows.size == 0:
            raise InputError(self.shards.files[0], f"consumer {self.k} of {self.num_consumers} gets no rows "
                                                   f"(the token shards hold {self.shards.total})")
        return rows

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, int, int]]:
        """``(global row indices, their epochs, epoch after, offset after)`` of each micro-batch."""
        owned = self.owned()
        epoch, offset = self.epoch, self.offset
        perm = owned[_rng(self.seed, self.k, epoch).permutation(owned.size)]
        while True:
            take: list[np.ndarray] = []
            eps: list[np.ndarray] = []
            need = batch_size
            while need:
                part = perm[offset:offset + need]
                take.append(part)
                eps.append(np.full(part.size, epoch, np.int64))
                need -= part.size
                offset += part.size
                if offset >= perm.size:
                    epoch, offset = epoch + 1, 0
                    perm = owned[_rng(self.seed, self.k, epoch).permutation(owned.size)]
            if len(take) == 1:
                yield take[0], eps[0], epoch, offset
            else:
                yield np.concatenate(take), np.concatenate(eps), epoch, offset


def to_tensors(arrays: dict) -> dict:
    import torch

    return {k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in arrays.items()}


def masked_batches(shards: ShardSet, masker: Masker, stream: MlmStream, batch_size: int):
    """``(arrays, epoch, offset)`` per micro-batch: the masked rows and the stream state after them."""
    for index, epochs, epoch, offset in stream.batches(batch_size):
        rows = shards.gather(index)
        if (epochs == epochs[0]).all():
            arrays, _ = masker(rows, index, int(epochs[0]))
        else:  # a batch across an epoch end: each part masked with its own epoch
            arrays = masker(rows, index, 0)[0]
            for e in np.unique(epochs):
                sel = np.flatnonzero(epochs == e)
                part = masker(rows[sel], index[sel], int(e))[0]
                for k, v in part.items():
                    arrays[k][sel] = v
        yield arrays, epoch, offset


def _iterable_base():
    import torch.utils.data

    return torch.utils.data.IterableDataset


class MlmRankData(_iterable_base()):
    """The micro-batches of one DDP rank (the MLM counterpart of
    :class:`scripts.training.torch_data.RankData`: same consumers, rotation and batch fields)."""

    def __init__(self, files: Sequence[str], spec: MaskSpec, *, rank: int, world: int, workers: int,
                 micro_batch: int, seed: int, states: dict | None = None, rotation: int = 0):
        super().__init__()
        self.shards = ShardSet(files)
        self.spec, self.rank, self.world = spec, rank, world
        self.W = max(1, workers)
        self.micro_batch, self.seed = micro_batch, seed
        self.states = {int(k): v for k, v in (states or {}).items()}
        self.rotation = rotation % self.W

    @property
    def num_consumers(self) -> int:
        return self.world * self.W

    def consumer(self, worker: int) -> int:
        return self.rank * self.W + (worker + self.rotation) % self.W

    def __iter__(self):
        import torch.utils.data

        info = torch.utils.data.get_worker_info()
        k = self.consumer(info.id if info is not None else 0)
        epoch, offset = self.states.get(k, (0, 0))
        masker = Masker(self.shards, self.spec, self.seed)
        stream = MlmStream(self.shards, k, self.num_consumers, seed=self.seed, epoch=int(epoch), offset=int(offset))
        for arrays, ep, off in masked_batches(self.shards, masker, stream, self.micro_batch):
            b = to_tensors(arrays)
            b["consumer"], b["epoch"], b["offset"] = k, ep, off
            yield b


def eval_batches(files: Sequence[str], spec: MaskSpec, *, rank: int, world: int, micro_batch: int, seed: int):
    """A separate seeded stream for validation (tensors), from its start."""
    shards = ShardSet(files)
    masker = Masker(shards, spec, seed)
    stream = MlmStream(shards, rank, world, seed=seed)
    for arrays, _, _ in masked_batches(shards, masker, stream, micro_batch):
        yield to_tensors(arrays)


def warm_up() -> None:
    """Compile (or load) the kernel in this process (before DataLoader workers fork)."""
    rows = np.array([[2, 7, 3, 0]], np.uint16)
    out = [np.zeros((1, 4), np.int32), np.zeros((1, 4), np.int32), np.zeros((1, 1), np.int32),
           np.zeros((1, 1), np.int32), np.zeros((1, 1), np.float32)]
    mask_rows(rows, np.zeros(1, np.int64), 0, 0, 15, 2, 3, 0, 4, np.array([5, 6, 7], np.int64), 0.15, True, False, 1,
              *out)
