"""TFRecord files of ``tf.train.Example`` protobufs, written and read without TensorFlow.

Wire formats (public specifications, implemented here from scratch):

* **TFRecord**: each record is ``uint64 length (LE)``, ``uint32 masked_crc32c(length bytes)``,
  ``data``, ``uint32 masked_crc32c(data)``, where ``masked(c) = ((c >> 15) | (c << 17)) +
  0xa282ead8 (mod 2**32)`` and crc32c is Castagnoli's CRC (``google_crc32c``).
* **tf.train.Example** (protobuf): ``Example{1: Features}``, ``Features{1: map<string, Feature>}``
  (each map entry a message ``{1: key, 2: value}``), ``Feature{2: FloatList, 3: Int64List}``,
  ``*List{1: packed values}``. Int64 values are varints (non-negative here), floats little-endian
  float32. Map entries are written in sorted key order, so the bytes are deterministic.
* **gzip**: one member (RFC 1952) with mtime 0, no file name, OS byte 255; its deflate stream
  may be assembled from independently compressed pieces (each ends with a sync flush, the
  stream with an empty final block) so compression can run in parallel and still give one
  byte-identical file; the member CRC-32 is combined from the pieces' CRCs (:func:`crc32_combine`).

The pretraining-data stage's batch encoder (:class:`scripts.pretraining_data.encoder.ExampleEncoder`)
serialises a whole batch of examples, framing and CRC32C included, in one compiled loop; the
per-record functions here are the simple reference it is tested against, and the reader that the
training stage uses.
"""

from __future__ import annotations

import gzip
import io
import struct
import zlib
from typing import BinaryIO, Iterable, Iterator

import numpy as np

try:  # hardware-accelerated CRC32C; a pure-Python fallback keeps the reader usable without it
    import google_crc32c as _gcrc

    _crc32c_value = _gcrc.value
except ImportError:  # pragma: no cover - the project pins google-crc32c
    _gcrc = None
    _crc32c_value = None

MASK_DELTA = 0xA282EAD8
_U32 = 0xFFFFFFFF


# ---------------------------------------------------------------------------------------------
# CRCs
# ---------------------------------------------------------------------------------------------


def _crc32c_py(data: bytes) -> int:  # pragma: no cover - fallback only
    crc = _U32
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ _U32


def crc32c(data: bytes) -> int:
    return _crc32c_value(bytes(data)) if _crc32c_value else _crc32c_py(bytes(data))


def mask_crc(crc: int) -> int:
    return ((((crc >> 15) | (crc << 17)) & _U32) + MASK_DELTA) & _U32


def masked_crc32c(data: bytes) -> int:
    return mask_crc(crc32c(data))


_CRC32_POLY = 0xEDB88320  # CRC-32 (gzip), reflected


def _gf2_mulmod(a: int, b: int) -> int:
    """a(x) * b(x) modulo the CRC-32 polynomial, both in reflected bit order."""
    prod = 0
    bit = 1 << 31
    while a:
        if a & bit:
            prod ^= b
            a ^= bit
        bit >>= 1
        b = (b >> 1) ^ _CRC32_POLY if b & 1 else b >> 1
    return prod


# _X_POW_2K[k] = x^(2^k) mod P (reflected); x^1 is bit 30 in reflected order.
_X_POW_2K = [1 << 30]
for _ in range(31):
    _X_POW_2K.append(_gf2_mulmod(_X_POW_2K[-1], _X_POW_2K[-1]))


def crc32_combine(crc1: int, crc2: int, len2: int) -> int:
    """CRC-32 of ``A + B`` from ``crc32(A)``, ``crc32(B)`` and ``len(B)``.

    Appending ``len2`` bytes multiplies the (pre-/post-conditioned) register by x^(8*len2);
    the power is built from the table of x^(2^k) by the binary expansion of ``8 * len2``.
    """
    if len2 <= 0:
        return crc1
    power = 1 << 31  # x^0
    n, k = len2, 3  # 8 * len2 = len2 * 2^3
    while n:
        if n & 1:
            power = _gf2_mulmod(_X_POW_2K[k % 32], power)
        n >>= 1
        k += 1
    return _gf2_mulmod(power, crc1) ^ crc2


# ---------------------------------------------------------------------------------------------
# Single records (simple, per-record API: tests, small files)
# ---------------------------------------------------------------------------------------------


def frame_record(data: bytes) -> bytes:
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


def _varint(value: int) -> bytes:
    if value < 0:
        value &= (1 << 64) - 1  # int64 two's complement, as protobuf does
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _len_delimited(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | 2) + _varint(len(payload)) + payload


def encode_example(features: dict) -> bytes:
    """Serialise ``{name: values}`` as a tf.train.Example (float arrays -> FloatList, else Int64List)."""
    entries = b""
    for name in sorted(features):
        values = np.asarray(features[name])
        if values.dtype.kind == "f":
            packed = values.astype("<f4").tobytes()
            feature = _len_delimited(2, _len_delimited(1, packed))
        else:
            packed = b"".join(_varint(int(v)) for v in values.reshape(-1))
            feature = _len_delimited(3, _len_delimited(1, packed))
        entry = _len_delimited(1, name.encode("utf-8")) + _len_delimited(2, feature)
        entries += _len_delimited(1, entry)
    return _len_delimited(1, entries)


def _read_varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes):
    pos, end = 0, len(buf)
    while pos < end:
        key, pos = _read_varint(buf, pos)
        field, wire = key >> 3, key & 7
        if wire == 2:
            n, pos = _read_varint(buf, pos)
            yield field, wire, buf[pos:pos + n]
            pos += n
        elif wire == 0:
            v, pos = _read_varint(buf, pos)
            yield field, wire, v
        elif wire == 5:
            yield field, wire, buf[pos:pos + 4]
            pos += 4
        elif wire == 1:
            yield field, wire, buf[pos:pos + 8]
            pos += 8
        else:
            raise ValueError(f"unsupported protobuf wire type {wire}")


def _to_int64(v: int) -> int:
    return v - (1 << 64) if v >= 1 << 63 else v


def decode_example(data: bytes) -> dict[str, np.ndarray]:
    """Parse a serialised tf.train.Example into ``{name: int64 or float32 array}``."""
    out: dict[str, np.ndarray] = {}
    for f, _, features in _fields(data):
        if f != 1:
            continue
        for f2, _, entry in _fields(features):
            if f2 != 1:
                continue
            name, feature = None, b""
            for f3, _, v in _fields(entry):
                if f3 == 1:
                    name = v.decode("utf-8")
                elif f3 == 2:
                    feature = v
            for kind, _, lst in _fields(feature):
                if kind == 3:
                    vals: list = []
                    for f4, wire, v in _fields(lst):
                        if wire == 2:  # packed
                            pos = 0
                            while pos < len(v):
                                x, pos = _read_varint(v, pos)
                                vals.append(_to_int64(x))
                        else:
                            vals.append(_to_int64(v))
                    out[name] = np.array(vals, np.int64)
                elif kind == 2:
                    raw = b""
                    for f4, wire, v in _fields(lst):
                        raw += v
                    out[name] = np.frombuffer(raw, "<f4").astype(np.float32)
                elif kind == 1:
                    out[name] = np.array([v for _, _, v in _fields(lst)], dtype=object)
            if name not in out:
                out[name] = np.array([], np.int64)
    return out


def _open_maybe_gzip(path) -> BinaryIO:
    fh = open(path, "rb")
    magic = fh.read(2)
    fh.seek(0)
    if magic == b"\x1f\x8b":
        return gzip.GzipFile(fileobj=fh, mode="rb")  # type: ignore[return-value]
    return fh


def iter_records(path, verify: bool = True) -> Iterator[bytes]:
    """Records of a (possibly GZIP-compressed) TFRecord file; CRCs are checked unless told."""
    with _open_maybe_gzip(path) as fh:
        n = 0
        while True:
            header = fh.read(12)
            if not header:
                return
            if len(header) < 12:
                raise ValueError(f"{path}: truncated record header after {n} records")
            (length,) = struct.unpack("<Q", header[:8])
            (len_crc,) = struct.unpack("<I", header[8:])
            if verify and masked_crc32c(header[:8]) != len_crc:
                raise ValueError(f"{path}: record {n}: corrupt length")
            data = fh.read(length)
            footer = fh.read(4)
            if len(data) < length or len(footer) < 4:
                raise ValueError(f"{path}: record {n}: truncated")
            if verify and masked_crc32c(data) != struct.unpack("<I", footer)[0]:
                raise ValueError(f"{path}: record {n}: data CRC mismatch")
            n += 1
            yield data


def iter_examples(path) -> Iterator[dict[str, np.ndarray]]:
    for rec in iter_records(path):
        yield decode_example(rec)


# ---------------------------------------------------------------------------------------------
# gzip assembled from independently deflated pieces
# ---------------------------------------------------------------------------------------------

GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # deflate, no flags, mtime 0, OS unknown
_DEFLATE_END = b"\x03\x00"  # an empty final block (fixed Huffman), as zlib writes for Z_FINISH


def resolve_compressor(name: str = "auto") -> str:
    """``"isal"`` (ISA-L via the ``isal`` package: ~6x faster deflate) or ``"zlib"``.

    ``"auto"`` picks isal when it is installed. The output bytes depend on the compressor (and
    its level), so it is recorded in the stats; any choice gives a standard gzip file.
    """
    if name == "auto":
        try:
            import isal.isal_zlib  # noqa: F401
        except ImportError:
            return "zlib"
        return "isal"
    if name not in ("zlib", "isal"):
        raise ValueError(f"unknown compressor {name!r} (auto, zlib, isal)")
    if name == "isal":
        import isal.isal_zlib  # noqa: F401  (fails loudly when asked for and missing)
    return name


def deflate_piece(data, level: int = 1, compressor: str = "zlib") -> tuple[bytes, int, int]:
    """Raw-deflate ``data`` as a piece of a longer stream: ``(bytes, crc32, length)``.

    The piece ends with a sync flush (byte-aligned, not final), so pieces compressed separately
    (in any process) concatenate into one valid deflate stream; :class:`GzipPieceWriter` ends it.
    ISA-L has levels 0-3; higher levels are capped at 3 for it.
    """
    if compressor == "isal":
        from isal import isal_zlib

        comp = isal_zlib.compressobj(min(level, 3), isal_zlib.DEFLATED, -15)
        out = comp.compress(data) + comp.flush(isal_zlib.Z_SYNC_FLUSH)
        return out, isal_zlib.crc32(data), len(data)  # the same CRC-32, several times faster
    comp = zlib.compressobj(level, zlib.DEFLATED, -15, 9)
    out = comp.compress(data) + comp.flush(zlib.Z_SYNC_FLUSH)
    return out, zlib.crc32(data), len(data)


class GzipPieceWriter:
    """Write one gzip member from pieces made by :func:`deflate_piece`, in order."""

    def __init__(self, fh: BinaryIO):
        self.fh = fh
        self.crc = 0
        self.size = 0
        self.compressed = 0
        fh.write(GZIP_HEADER)

    def write_piece(self, piece: tuple[bytes, int, int]) -> None:
        data, crc, length = piece
        self.fh.write(data)
        self.crc = crc32_combine(self.crc, crc, length)
        self.size += length
        self.compressed += len(data)

    def close(self) -> None:
        self.fh.write(_DEFLATE_END)
        self.fh.write(struct.pack("<II", self.crc & _U32, self.size & _U32))
        self.compressed += len(GZIP_HEADER) + len(_DEFLATE_END) + 8


class TFRecordWriter:
    """A small sequential writer (tests, tools): ``write(record_bytes)``; GZIP unless told."""

    def __init__(self, path, compress: bool = True, level: int = 6, piece_bytes: int = 1 << 22):
        self.fh = open(path, "wb")
        self.level = level
        self.piece_bytes = piece_bytes
        self.buf = io.BytesIO()
        self.gz = GzipPieceWriter(self.fh) if compress else None

    def write(self, record: bytes) -> None:
        self.buf.write(frame_record(record))
        if self.buf.tell() >= self.piece_bytes:
            self._flush()

    def _flush(self) -> None:
        data = self.buf.getvalue()
        self.buf = io.BytesIO()
        if not data:
            return
        if self.gz:
            self.gz.write_piece(deflate_piece(data, self.level))
        else:
            self.fh.write(data)

    def close(self) -> None:
        self._flush()
        if self.gz:
            self.gz.close()
        self.fh.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_records(path, records: Iterable[bytes], compress: bool = True, level: int = 6) -> int:
    n = 0
    with TFRecordWriter(path, compress=compress, level=level) as w:
        for rec in records:
            w.write(rec)
            n += 1
    return n
