"""Batch serialisation of fixed-shape ``tf.train.Example`` records (the pretraining-data writer).

The bytes equal :func:`scripts.shared.tfrecord.frame_record` of
:func:`scripts.shared.tfrecord.encode_example` for every row; the work is one compiled loop
(:func:`scripts.pretraining_data.kernels.encode_examples`), CRC32C included.
"""

from __future__ import annotations

import numpy as np

from scripts.pretraining_data.kernels import CRC32C_TABLES, encode_examples

# ---------------------------------------------------------------------------------------------
# Batch encoder
# ---------------------------------------------------------------------------------------------


class ExampleEncoder:
    """Serialise batches of fixed-shape tf.train.Examples straight to framed TFRecord bytes.

    ``features``: ``[(name, kind, length, max_value)]`` with kind ``"int64"`` (non-negative
    values ``<= max_value < 2**24``) or ``"float"`` (float32). :meth:`encode` takes ``{name: (n,
    length) array}`` and returns the TFRecord stream of the ``n`` records (a uint8 array, valid
    until the next call) and the record count; the bytes equal ``frame_record(encode_example(
    ...))`` for every row (features in sorted name order, minimal varints). The work is done by
    the compiled :func:`scripts.pretraining_data.kernels.encode_examples`, CRC32C included.
    """

    def __init__(self, features: list[tuple[str, str, int, int]]):
        self.features = sorted(features)
        kinds, cols, lengths, keys = [], [], [], []
        n_int = n_float = 0
        bound = 12 + 4 + 1 + 5
        for name, kind, length, max_value in self.features:
            key = name.encode("utf-8")
            if len(key) >= 128:
                raise ValueError(f"feature name too long: {name}")
            if kind not in ("int64", "float"):
                raise ValueError(f"{name}: unknown kind {kind!r}")
            if kind == "int64" and not 0 <= max_value < 1 << 24:
                raise ValueError(f"{name}: values must lie in [0, 2**24)")
            kinds.append(1 if kind == "float" else 2 if max_value < 128 else 0)  # 2: one byte per value
            cols.append(n_float if kind == "float" else n_int)
            if kind == "float":
                n_float += length
            else:
                n_int += length
            lengths.append(length)
            keys.append(key)
            bound += 4 * 6 + 2 + len(key) + 4 * length  # headers with 5-byte varints, values <= 4 bytes
        self._kind = np.array(kinds, np.int64)
        self._col = np.array(cols, np.int64)
        self._length = np.array(lengths, np.int64)
        self._keys = np.frombuffer(b"".join(keys) or b"\0", np.uint8)
        self._key_len = np.array([len(k) for k in keys], np.int64)
        self._key_off = np.concatenate(([0], np.cumsum(self._key_len)[:-1])).astype(np.int64)
        self._n_int, self._n_float = n_int, n_float
        self._row_bound = bound
        self._out = np.zeros(0, np.uint8)

    @property
    def layout(self) -> tuple[np.ndarray, ...]:
        """``(kind, col, length, keys, key_off, key_len)``: the feature table of the kernels."""
        return self._kind, self._col, self._length, self._keys, self._key_off, self._key_len

    def column(self, name: str) -> int:
        """Column of feature ``name`` in the kernels' int (or float) row."""
        return int(self._col[[f[0] for f in self.features].index(name)])

    def buffer(self, n: int) -> np.ndarray:
        """An output buffer large enough for ``n`` records (reused between calls)."""
        if self._out.size < n * self._row_bound:
            self._out = np.empty(n * self._row_bound, np.uint8)
        return self._out

    def encode(self, arrays: dict[str, np.ndarray]) -> tuple[np.ndarray, int]:
        first = next(iter(arrays.values()))
        n = first.shape[0]
        if n == 0:
            return np.zeros(0, np.uint8), 0
        ints = np.empty((n, max(self._n_int, 1)), np.int32)
        floats = np.zeros((n, max(self._n_float, 1)), np.uint32)
        for (name, kind, length, max_value), col in zip(self.features, self._col):
            vals = arrays[name]
            if vals.shape != (n, length):
                raise ValueError(f"{name}: expected shape {(n, length)}, got {vals.shape}")
            if kind == "float":
                floats[:, col:col + length] = np.ascontiguousarray(vals, "<f4").view(np.uint32)
            else:
                if vals.size and (vals.min() < 0 or vals.max() > max_value):
                    raise ValueError(f"{name}: values must lie in [0, {max_value}]")
                ints[:, col:col + length] = vals
        out = self.buffer(n)
        end = encode_examples(ints, floats, *self.layout, out, CRC32C_TABLES)
        return out[:end], n
