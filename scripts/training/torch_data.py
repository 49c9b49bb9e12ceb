"""The pretraining records as a PyTorch input pipeline, without TensorFlow.

Reads the ``pretraining_data_NN.tfrecord.gz`` files (gzip TFRecords of ``tf.train.Example``,
:mod:`scripts.shared.tfrecord`) straight into fixed-shape numpy rows:

* **Decode.** A compiled kernel (:func:`parse_records`, numba) walks the TFRecord frames of a
  decompressed buffer, checks both masked CRC32Cs (the CRC tables and kernel of
  :mod:`scripts.pretraining_data.kernels`, the writer of these files) and parses each Example into
  one int32 row (``input_word_ids | input_mask | input_type_ids | masked_lm_positions |
  masked_lm_ids | next_sentence_labels``) and one float32 row (``masked_lm_weights``). Feature
  order, packed or unpacked lists and extra features are all accepted (TensorFlow's writer and the
  data stage's differ); a missing feature, a wrong length or a bad CRC is an error naming the file
  and the record. One worker decodes ~14x the records/s of the per-record Python decoder of
  :mod:`scripts.shared.tfrecord` (191k vs 13.7k records/s at seq 64; 33k at seq 512; docs/benchmarks.md).
* **Decompress.** ``isal`` (ISA-L, in the lock) when installed, else ``zlib``, in blocks; gzip
  members are followed (multi-member files read whole).

Distribution (:func:`consumer_files`): the records are split over *consumers*, one per
(DDP rank, DataLoader worker). With at least as many files as consumers, consumer ``k`` reads
the files ``f`` with ``f % N == k``; with fewer, the consumers that share a file each keep every
``n``-th record of it (a stride), so no record is read by two consumers and every consumer sees
records. Each consumer's stream is infinite: epoch ``e`` visits its files in an order drawn from
``(seed, k, e)``, and the kept records are shuffled in blocks of ``shuffle_records`` (a block
is permuted with a generator seeded by ``(seed, k, e, block)``). A consumer's position is
``(epoch, records emitted in that epoch)``: two integers, stored in the training checkpoint, from
which the same stream is rebuilt exactly (the blocks before the position are re-read, not
re-shuffled: the cost of a resume is at most one pass over the consumer's share).

Why block shuffling and not a shuffle buffer: the data stage already shuffles the instances of a
shard, and a permuted block is a pure function of its index, so the data position is two
integers instead of a buffer of records in every checkpoint.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Iterator, Sequence

import numpy as np
from numba import njit

from scripts.pretraining_data.kernels import CRC32C_TABLES, masked_crc32c
from scripts.shared.common import InputError
from scripts.shared.formats import NSP_FEATURE, PRED_FEATURES, SEQ_FEATURES

# Column order of the int32 rows (masked_lm_weights is the one float feature, in its own array).
INT_FEATURES = SEQ_FEATURES + ("masked_lm_positions", "masked_lm_ids", NSP_FEATURE)
FLOAT_FEATURES = ("masked_lm_weights",)
assert set(INT_FEATURES + FLOAT_FEATURES) == set(SEQ_FEATURES + PRED_FEATURES + (NSP_FEATURE,))

ERRORS = {1: "corrupt length (CRC mismatch)", 2: "data CRC mismatch", 3: "malformed tf.train.Example",
          4: "a feature has the wrong number of values", 5: "a feature has the wrong type",
          6: "a feature is missing", 7: "record longer than 256 MiB"}


@dataclass(frozen=True)
class Layout:
    """The fixed shape of one record: ``seq_length`` tokens, ``max_predictions`` masked slots."""

    seq_length: int
    max_predictions: int

    def lengths(self) -> dict[str, int]:
        L, P = self.seq_length, self.max_predictions
        return {"input_word_ids": L, "input_mask": L, "input_type_ids": L, "masked_lm_positions": P,
                "masked_lm_ids": P, NSP_FEATURE: 1, "masked_lm_weights": P}

    @property
    def int_cols(self) -> int:
        return 3 * self.seq_length + 2 * self.max_predictions + 1

    def tables(self):
        """Name bytes, offsets, lengths, kinds (0 int, 1 float) and column offsets per feature."""
        names = INT_FEATURES + FLOAT_FEATURES
        lengths = self.lengths()
        blob = b"".join(n.encode() for n in names)
        off = np.cumsum([0] + [len(n) for n in names[:-1]]).astype(np.int64)
        nlen = np.array([len(n) for n in names], np.int64)
        kind = np.array([0] * len(INT_FEATURES) + [1] * len(FLOAT_FEATURES), np.int64)
        count = np.array([lengths[n] for n in names], np.int64)
        col = np.zeros(len(names), np.int64)
        ci = cf = 0
        for i, n in enumerate(names):
            if kind[i] == 0:
                col[i], ci = ci, ci + lengths[n]
            else:
                col[i], cf = cf, cf + lengths[n]
        return np.frombuffer(blob, np.uint8).copy(), off, nlen, kind, count, col

    def split(self, ints: np.ndarray) -> dict[str, np.ndarray]:
        """Views of the int32 rows per feature."""
        L, P = self.seq_length, self.max_predictions
        return {"input_word_ids": ints[:, :L], "input_mask": ints[:, L:2 * L],
                "input_type_ids": ints[:, 2 * L:3 * L], "masked_lm_positions": ints[:, 3 * L:3 * L + P],
                "masked_lm_ids": ints[:, 3 * L + P:3 * L + 2 * P], NSP_FEATURE: ints[:, 3 * L + 2 * P]}


# ---------------------------------------------------------------------------------------------
# The compiled decoder
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def _varint(buf, p, end):
    """(value, new position); position -1 when the varint runs past ``end``."""
    v = np.uint64(0)
    shift = np.uint64(0)
    while p < end:
        b = buf[p]
        p += 1
        v |= np.uint64(b & 0x7F) << shift
        if b < 128:
            return v, p
        shift += np.uint64(7)
        if shift > np.uint64(63):
            return v, -1
    return v, -1


@njit(cache=True, nogil=True, inline="always")
def _skip(buf, p, end, wire):
    if wire == 0:
        _, p = _varint(buf, p, end)
        return p
    if wire == 1:
        return p + 8 if p + 8 <= end else -1
    if wire == 5:
        return p + 4 if p + 4 <= end else -1
    if wire == 2:
        n, p = _varint(buf, p, end)
        if p < 0 or p + np.int64(n) > end:
            return -1
        return p + np.int64(n)
    return -1


@njit(cache=True, nogil=True, inline="always")
def _match(buf, p, n, names, noff, nlen):
    for f in range(nlen.shape[0]):
        if nlen[f] != n:
            continue
        same = True
        for j in range(n):
            if buf[p + j] != names[noff[f] + j]:
                same = False
                break
        if same:
            return f
    return -1


@njit(cache=True, nogil=True)
def _parse_list(buf, p, end, kind, count, col, row_i, row_f):
    """One Int64List/FloatList payload ``buf[p:end]`` into the row; returns error code or 0."""
    got = 0
    while p < end:
        key, p = _varint(buf, p, end)
        if p < 0:
            return 3
        fld = np.int64(key >> np.uint64(3))
        wire = np.int64(key & np.uint64(7))
        if fld != 1:
            p = _skip(buf, p, end, wire)
            if p < 0:
                return 3
            continue
        if kind == 0 and wire == 2:  # packed varints
            n, p = _varint(buf, p, end)
            if p < 0 or p + np.int64(n) > end:
                return 3
            q_end = p + np.int64(n)
            while p < q_end:
                v, p = _varint(buf, p, q_end)
                if p < 0:
                    return 3
                if got < count:
                    row_i[col + got] = np.int32(np.int64(v))
                got += 1
        elif kind == 0 and wire == 0:
            v, p = _varint(buf, p, end)
            if p < 0:
                return 3
            if got < count:
                row_i[col + got] = np.int32(np.int64(v))
            got += 1
        elif kind == 1 and (wire == 2 or wire == 5):
            if wire == 2:
                n, p = _varint(buf, p, end)
                if p < 0 or p + np.int64(n) > end or n % np.uint64(4):
                    return 3
                k = np.int64(n) // 4
            else:
                k = 1
                if p + 4 > end:
                    return 3
            for j in range(k):
                bits = (np.uint32(buf[p]) | (np.uint32(buf[p + 1]) << np.uint32(8))
                        | (np.uint32(buf[p + 2]) << np.uint32(16)) | (np.uint32(buf[p + 3]) << np.uint32(24)))
                if got < count:
                    row_f[col + got] = bits
                got += 1
                p += 4
        else:
            return 5
    return 0 if got == count else 4


@njit(cache=True, nogil=True)
def _parse_example(buf, p, end, names, noff, nlen, kind, count, col, row_i, row_f, seen):
    seen[:] = 0
    while p < end:
        key, p = _varint(buf, p, end)
        if p < 0:
            return 3
        if key != np.uint64(0x0A):  # Example.features (field 1, length-delimited)
            p = _skip(buf, p, end, np.int64(key & np.uint64(7)))
            if p < 0:
                return 3
            continue
        n, p = _varint(buf, p, end)
        if p < 0 or p + np.int64(n) > end:
            return 3
        fend = p + np.int64(n)
        while p < fend:  # map entries
            key, p = _varint(buf, p, fend)
            if p < 0:
                return 3
            if key != np.uint64(0x0A):
                p = _skip(buf, p, fend, np.int64(key & np.uint64(7)))
                if p < 0:
                    return 3
                continue
            n, p = _varint(buf, p, fend)
            if p < 0 or p + np.int64(n) > fend:
                return 3
            eend = p + np.int64(n)
            f = -1
            vstart = -1
            vend = -1
            while p < eend:
                key, p = _varint(buf, p, eend)
                if p < 0:
                    return 3
                fld = np.int64(key >> np.uint64(3))
                wire = np.int64(key & np.uint64(7))
                if wire != 2:
                    p = _skip(buf, p, eend, wire)
                    if p < 0:
                        return 3
                    continue
                n, p = _varint(buf, p, eend)
                if p < 0 or p + np.int64(n) > eend:
                    return 3
                if fld == 1:
                    f = _match(buf, p, np.int64(n), names, noff, nlen)
                elif fld == 2:
                    vstart = p
                    vend = p + np.int64(n)
                p += np.int64(n)
            if f < 0:
                continue  # a feature the trainer does not use
            if vstart < 0:
                return 4
            q = vstart  # Feature {1: BytesList, 2: FloatList, 3: Int64List}
            found = False
            while q < vend:
                key, q = _varint(buf, q, vend)
                if q < 0:
                    return 3
                fld = np.int64(key >> np.uint64(3))
                wire = np.int64(key & np.uint64(7))
                if wire != 2:
                    return 3
                n, q = _varint(buf, q, vend)
                if q < 0 or q + np.int64(n) > vend:
                    return 3
                want = 3 if kind[f] == 0 else 2
                if fld != want:
                    return 5
                err = _parse_list(buf, q, q + np.int64(n), kind[f], count[f], col[f], row_i, row_f)
                if err:
                    return err
                found = True
                q += np.int64(n)
            if not found:
                if count[f] != 0:
                    return 4
            seen[f] = 1
    for f in range(seen.shape[0]):
        if seen[f] == 0:
            return 6
    return 0


@njit(cache=True, nogil=True)
def parse_records(buf, end, verify, tab, names, noff, nlen, kind, count, col, stride, offset, index0,
                  ints, floats):
    """Decode the complete TFRecords at the start of ``buf[:end]`` into rows.

    Records whose running index ``i`` (from ``index0``) has ``i % stride == offset`` are decoded
    into ``ints``/``floats`` (float32 bit patterns as uint32), until the arrays are full; the
    others are only framed (their CRCs are not checked). Returns ``(consumed_bytes, rows,
    records, error, error_record)``: ``consumed`` ends at the last complete record handled.
    """
    pos = 0
    rows = 0
    recs = 0
    seen = np.zeros(nlen.shape[0], np.int64)
    cap = ints.shape[0]
    while pos + 12 <= end:
        length = np.int64(0)
        for k in range(8):
            length |= np.int64(buf[pos + k]) << np.int64(8 * k)
        if length < 0 or length > (1 << 28):
            return pos, rows, recs, 7, index0 + recs
        if pos + 16 + length > end:
            break
        keep = (index0 + recs) % stride == offset
        if keep and rows >= cap:
            break
        if keep:
            if verify:
                c = np.uint32(buf[pos + 8]) | (np.uint32(buf[pos + 9]) << np.uint32(8)) \
                    | (np.uint32(buf[pos + 10]) << np.uint32(16)) | (np.uint32(buf[pos + 11]) << np.uint32(24))
                if masked_crc32c(buf, pos, pos + 8, tab) != c:
                    return pos, rows, recs, 1, index0 + recs
                d = pos + 12 + length
                c = np.uint32(buf[d]) | (np.uint32(buf[d + 1]) << np.uint32(8)) \
                    | (np.uint32(buf[d + 2]) << np.uint32(16)) | (np.uint32(buf[d + 3]) << np.uint32(24))
                if masked_crc32c(buf, pos + 12, d, tab) != c:
                    return pos, rows, recs, 2, index0 + recs
            err = _parse_example(buf, pos + 12, pos + 12 + length, names, noff, nlen, kind, count, col,
                                 ints[rows], floats[rows], seen)
            if err:
                return pos, rows, recs, err, index0 + recs
            rows += 1
        recs += 1
        pos += 16 + length
    return pos, rows, recs, 0, -1


# ---------------------------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------------------------


def _decompressor():
    try:
        from isal import isal_zlib

        return isal_zlib.decompressobj(31), isal_zlib.error
    except ImportError:  # pragma: no cover - the lock pins isal
        import zlib

        return zlib.decompressobj(31), zlib.error


class RecordReader:
    """Fixed-shape rows of one file: ``for ints, floats in RecordReader(...).chunks()``."""

    def __init__(self, path: str, layout: Layout, *, stride: int = 1, offset: int = 0, verify: bool = True,
                 chunk_rows: int = 4096):
        if not (0 <= offset < stride):
            raise ValueError(f"offset {offset} not in [0, {stride})")
        self.path, self.layout, self.stride, self.offset = str(path), layout, stride, offset
        self.verify, self.chunk_rows = verify, chunk_rows
        self.tables = layout.tables()

    def chunks(self) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        names, noff, nlen, kind, count, col = self.tables
        P = self.layout.max_predictions
        pending = b""
        index = 0
        for block in _blocks_with_end(self.path):
            data = pending + block if pending else block
            buf = np.frombuffer(data, np.uint8)
            start = 0
            while True:
                ints = np.empty((self.chunk_rows, self.layout.int_cols), np.int32)
                floats = np.empty((self.chunk_rows, P), np.uint32)
                view = buf[start:]
                used, rows, recs, err, where = parse_records(
                    view, view.shape[0], self.verify, CRC32C_TABLES, names, noff, nlen, kind, count, col,
                    self.stride, self.offset, index, ints, floats)
                if err:
                    raise InputError(self.path, f"record {where}: {ERRORS.get(err, err)} "
                                                f"(expected seq_length {self.layout.seq_length}, "
                                                f"max_predictions_per_seq {P})")
                index += recs
                start += used
                if rows:
                    yield ints[:rows], floats[:rows].view(np.float32)
                if rows < self.chunk_rows:
                    break
            pending = data[start:]
        if pending:
            raise InputError(self.path, f"truncated record after {index} records")

    def __iter__(self):
        return self.chunks()


def _blocks_with_end(path: str) -> Iterator[bytes]:
    try:
        yield from _iter_gzip_blocks(path)
    except (OSError, EOFError) as e:
        raise InputError(path, f"cannot read: {e}") from None


def _iter_gzip_blocks(path: str, read_bytes: int = 1 << 20) -> Iterator[bytes]:
    with open(path, "rb") as fh:
        head = fh.read(2)
        fh.seek(0)
        if head != b"\x1f\x8b":
            while data := fh.read(read_bytes):
                yield data
            return
        d, error = _decompressor()
        started = False
        try:
            while data := fh.read(read_bytes):
                while data:
                    started = True
                    out = d.decompress(data)
                    if out:
                        yield out
                    if d.eof:
                        data = d.unused_data
                        d, _ = _decompressor()
                        started = False
                    else:
                        data = b""
        except error as e:
            raise InputError(path, f"corrupt gzip stream: {e}") from None
        if started and not d.eof:
            raise InputError(path, "truncated gzip stream")


def read_file(path: str, layout: Layout, verify: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Every record of one file as ``(ints, floats)`` (tests, small files)."""
    parts = list(RecordReader(path, layout, verify=verify).chunks())
    if not parts:
        return np.empty((0, layout.int_cols), np.int32), np.empty((0, layout.max_predictions), np.float32)
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def check_first_record(path: str, layout: Layout) -> None:
    """Decode the first record (fails fast, naming the file, on a layout/config mismatch)."""
    reader = RecordReader(path, layout, chunk_rows=1)
    for _ in reader.chunks():
        return
    raise InputError(path, "no records")


# ---------------------------------------------------------------------------------------------
# Consumers: (rank, worker) shares of the files, infinite seeded streams, resumable positions
# ---------------------------------------------------------------------------------------------


def consumer_files(num_files: int, num_consumers: int, k: int) -> list[tuple[int, int, int]]:
    """``[(file index, stride, offset)]`` read by consumer ``k`` of ``num_consumers``."""
    if num_files <= 0:
        raise ValueError("no files")
    if not 0 <= k < num_consumers:
        raise ValueError(f"consumer {k} not in [0, {num_consumers})")
    if num_files >= num_consumers:
        return [(f, 1, 0) for f in range(k, num_files, num_consumers)]
    f = k % num_files
    sharing = [c for c in range(num_consumers) if c % num_files == f]
    return [(f, len(sharing), sharing.index(k))]


def _rng(*key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence([int(x) for x in key])))


@dataclass
class StreamState:
    epoch: int = 0
    offset: int = 0  # records of this epoch already emitted

    def as_list(self) -> list[int]:
        return [self.epoch, self.offset]


@dataclass
class ConsumerStream:
    """The infinite, seeded record stream of one consumer (see the module docstring)."""

    files: Sequence[str]
    layout: Layout
    k: int
    num_consumers: int
    seed: int = 0
    shuffle_records: int = 10000
    verify: bool = True
    state: StreamState = field(default_factory=StreamState)

    def __post_init__(self):
        self.share = consumer_files(len(self.files), self.num_consumers, self.k)

    def _epoch_rows(self, epoch: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        order = _rng(self.seed, self.k, epoch).permutation(len(self.share))
        for i in order:
            f, stride, offset = self.share[i]
            yield from RecordReader(self.files[f], self.layout, stride=stride, offset=offset,
                                    verify=self.verify).chunks()

    def _epoch_blocks(self, epoch: int, skip: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """The epoch's shuffled blocks, without its first ``skip`` records."""
        K = max(1, self.shuffle_records)
        buf_i: list[np.ndarray] = []
        buf_f: list[np.ndarray] = []
        have = 0
        block = 0
        seen = 0

        def emit(n_rows):
            nonlocal buf_i, buf_f, have, block, seen
            ints = np.concatenate(buf_i) if len(buf_i) > 1 else buf_i[0]
            floats = np.concatenate(buf_f) if len(buf_f) > 1 else buf_f[0]
            bi, bf = ints[:n_rows], floats[:n_rows]
            rest_i, rest_f = ints[n_rows:], floats[n_rows:]
            buf_i, buf_f = ([rest_i], [rest_f]) if len(rest_i) else ([], [])
            have = len(rest_i)
            start = seen
            seen += n_rows
            b = block
            block += 1
            if seen <= skip:
                return None
            perm = _rng(self.seed, self.k, epoch, 1 + b).permutation(n_rows) if K > 1 else np.arange(n_rows)
            lo = max(0, skip - start)
            idx = perm[lo:]
            return bi[idx], bf[idx]

        for ints, floats in self._epoch_rows(epoch):
            buf_i.append(ints)
            buf_f.append(floats)
            have += len(ints)
            while have >= K:
                out = emit(K)
                if out is not None:
                    yield out
        if have:
            out = emit(have)
            if out is not None:
                yield out

    def pieces(self) -> Iterator[tuple[np.ndarray, np.ndarray, int, int]]:
        """Infinite: ``(ints, floats, epoch, offset of the first row)``, epoch after epoch."""
        epoch, offset = self.state.epoch, self.state.offset
        while True:
            n = offset
            for ints, floats in self._epoch_blocks(epoch, offset):
                yield ints, floats, epoch, n
                n += len(ints)
            if n == 0:
                raise InputError(self.files[self.share[0][0]],
                                 f"consumer {self.k} of {self.num_consumers} gets no records from its files")
            epoch, offset = epoch + 1, 0

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, StreamState]]:
        """Micro-batches of ``batch_size`` rows, each with the stream state after it."""
        pend: list[list] = []  # [ints, floats, epoch, offset of first row]
        have = 0
        for ints, floats, epoch, start in self.pieces():
            if not len(ints):
                continue
            pend.append([ints, floats, epoch, start])
            have += len(ints)
            while have >= batch_size:
                need, parts_i, parts_f = batch_size, [], []
                while need:
                    pi, pf, e, o = pend[0]
                    take = min(need, len(pi))
                    parts_i.append(pi[:take])
                    parts_f.append(pf[:take])
                    need -= take
                    state = StreamState(e, o + take)
                    if take == len(pi):
                        pend.pop(0)
                    else:
                        pend[0] = [pi[take:], pf[take:], e, o + take]
                have -= batch_size
                yield (np.concatenate(parts_i) if len(parts_i) > 1 else parts_i[0],
                       np.concatenate(parts_f) if len(parts_f) > 1 else parts_f[0], state)


# ---------------------------------------------------------------------------------------------
# The torch side: one IterableDataset per rank, one consumer per DataLoader worker
# ---------------------------------------------------------------------------------------------


def to_batch(ints: np.ndarray, floats: np.ndarray, layout: Layout) -> dict:
    """Numpy rows -> the trainer's tensors (transformers' argument names)."""
    import torch

    f = layout.split(ints)
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a))  # noqa: E731
    return {"input_ids": t(f["input_word_ids"]), "attention_mask": t(f["input_mask"]),
            "token_type_ids": t(f["input_type_ids"]), "masked_lm_positions": t(f["masked_lm_positions"]),
            "masked_lm_ids": t(f["masked_lm_ids"]), "masked_lm_weights": t(np.ascontiguousarray(floats)),
            "next_sentence_labels": t(f[NSP_FEATURE])}


def _iterable_base():
    import torch.utils.data

    return torch.utils.data.IterableDataset


class RankData(_iterable_base()):
    """The micro-batches of one DDP rank: worker ``w`` of ``W`` streams consumer
    ``rank * W + (w + rotation) % W``.

    ``rotation`` is the number of micro-batches this rank consumed before (mod ``W``): the
    DataLoader takes batches from its workers in turn starting with worker 0, so after a resume
    the consumer whose batch was next in the uninterrupted run is served first. Each batch
    carries ``consumer``, ``epoch`` and ``offset`` (the stream state after it).
    """

    def __init__(self, files: Sequence[str], layout: Layout, *, rank: int, world: int, workers: int,
                 micro_batch: int, seed: int, shuffle_records: int, states: dict | None = None,
                 rotation: int = 0, verify: bool = True):
        super().__init__()
        self.files, self.layout, self.rank, self.world = list(files), layout, rank, world
        self.W = max(1, workers)
        self.micro_batch, self.seed, self.shuffle_records = micro_batch, seed, shuffle_records
        self.states = {int(k): v for k, v in (states or {}).items()}
        self.rotation, self.verify = rotation % self.W, verify

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
        stream = ConsumerStream(self.files, self.layout, k, self.num_consumers, seed=self.seed,
                                shuffle_records=self.shuffle_records, verify=self.verify,
                                state=StreamState(int(epoch), int(offset)))
        for ints, floats, state in stream.batches(self.micro_batch):
            b = to_batch(ints, floats, self.layout)
            b["consumer"], b["epoch"], b["offset"] = k, state.epoch, state.offset
            yield b
