"""Compiled inner loops of ``create_pretraining_data`` (numba): layout, whole-word groups, the
greedy masking fill, and tf.train.Example / TFRecord serialisation with CRC32C.

Why our own compiled code: after MeCab, these loops are the stage's whole cost, and in numpy they
either stay in the interpreter (the layout walks sentences one chunk at a time) or move several
times more memory than the data (fixed-width slot matrices). Every function here is a pure
function of its arrays; the random numbers are drawn by the caller from numpy's PCG64 streams,
so the output does not depend on numba, the thread count or the machine.

Compiled code is cached next to this file (``__pycache__``; numba falls back to a per-user cache
when that is not writable): the first run on a machine compiles for a few seconds.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# ---------------------------------------------------------------------------------------------
# CRC32C (Castagnoli), slicing-by-8, and TFRecord's masking
# ---------------------------------------------------------------------------------------------


def _crc32c_tables() -> np.ndarray:
    t = np.zeros((8, 256), np.uint32)
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t[0, i] = c
    for k in range(1, 8):
        t[k] = (t[k - 1] >> 8) ^ t[0][t[k - 1] & 0xFF]
    return t


CRC32C_TABLES = _crc32c_tables()


@njit(cache=True, nogil=True)
def masked_crc32c(buf, start, end, tab):
    """TFRecord's ``masked_crc32c`` of ``buf[start:end]`` (uint8 array)."""
    c = np.uint32(0xFFFFFFFF)
    i = start
    while i + 8 <= end:
        c ^= (np.uint32(buf[i]) | (np.uint32(buf[i + 1]) << np.uint32(8))
              | (np.uint32(buf[i + 2]) << np.uint32(16)) | (np.uint32(buf[i + 3]) << np.uint32(24)))
        c = (tab[7, c & np.uint32(0xFF)] ^ tab[6, (c >> np.uint32(8)) & np.uint32(0xFF)]
             ^ tab[5, (c >> np.uint32(16)) & np.uint32(0xFF)] ^ tab[4, c >> np.uint32(24)]
             ^ tab[3, buf[i + 4]] ^ tab[2, buf[i + 5]] ^ tab[1, buf[i + 6]] ^ tab[0, buf[i + 7]])
        i += 8
    while i < end:
        c = tab[0, (c ^ np.uint32(buf[i])) & np.uint32(0xFF)] ^ (c >> np.uint32(8))
        i += 1
    c ^= np.uint32(0xFFFFFFFF)
    return np.uint32(((c >> np.uint32(15)) | (c << np.uint32(17))) + np.uint32(0xA282EAD8))


# ---------------------------------------------------------------------------------------------
# tf.train.Example serialisation
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def _varint_len(v):
    n = 1
    while v >= 128:
        v >>= 7
        n += 1
    return n


@njit(cache=True, nogil=True, inline="always")
def _put_varint(buf, pos, v):
    while v >= 128:
        buf[pos] = (v & 0x7F) | 0x80
        v >>= 7
        pos += 1
    buf[pos] = v
    return pos + 1


@njit(cache=True, nogil=True, inline="always")
def _encode_row(row_ints, row_floats, kind, col, length, keys, key_off, key_len, sz, out, pos, tab):
    """One framed record at ``out[pos:]`` from a row of values (see :func:`encode_examples`);
    returns the end."""
    nf = kind.shape[0]
    features_len = 0
    for f in range(nf):
        c0 = col[f]
        if kind[f] == 1:
            p = 4 * length[f]
        elif kind[f] == 2:
            p = length[f]
        else:
            p = 0
            for j in range(c0, c0 + length[f]):
                p += _varint_len(row_ints[j])
        lst = 1 + _varint_len(p) + p                  # List: 0x0A P payload
        val = 1 + _varint_len(lst) + lst              # Feature: tag L list
        ent = 2 + key_len[f] + 1 + _varint_len(val) + val  # map entry: key, value
        sz[f, 0] = p
        sz[f, 1] = lst
        sz[f, 2] = val
        sz[f, 3] = ent
        features_len += 1 + _varint_len(ent) + ent
    data_len = 1 + _varint_len(features_len) + features_len
    x = data_len
    for k in range(8):
        out[pos + k] = x & 0xFF
        x >>= 8
    mc = masked_crc32c(out, pos, pos + 8, tab)
    for k in range(4):
        out[pos + 8 + k] = (mc >> np.uint32(8 * k)) & np.uint32(0xFF)
    q = pos + 12
    data_start = q
    out[q] = 0x0A
    q = _put_varint(out, q + 1, features_len)
    for f in range(nf):
        out[q] = 0x0A
        q = _put_varint(out, q + 1, sz[f, 3])
        out[q] = 0x0A
        out[q + 1] = key_len[f]
        q += 2
        for k in range(key_len[f]):
            out[q + k] = keys[key_off[f] + k]
        q += key_len[f]
        out[q] = 0x12
        q = _put_varint(out, q + 1, sz[f, 2])
        out[q] = 0x12 if kind[f] == 1 else 0x1A
        q = _put_varint(out, q + 1, sz[f, 1])
        out[q] = 0x0A
        q = _put_varint(out, q + 1, sz[f, 0])
        c0 = col[f]
        if kind[f] == 1:
            for j in range(c0, c0 + length[f]):
                b = row_floats[j]
                out[q] = b & 0xFF
                out[q + 1] = (b >> np.uint32(8)) & np.uint32(0xFF)
                out[q + 2] = (b >> np.uint32(16)) & np.uint32(0xFF)
                out[q + 3] = b >> np.uint32(24)
                q += 4
        elif kind[f] == 2:
            for j in range(c0, c0 + length[f]):
                out[q] = row_ints[j]
                q += 1
        else:
            for j in range(c0, c0 + length[f]):
                q = _put_varint(out, q, row_ints[j])
    mc = masked_crc32c(out, data_start, q, tab)
    for k in range(4):
        out[q + k] = (mc >> np.uint32(8 * k)) & np.uint32(0xFF)
    return q + 4


@njit(cache=True, nogil=True)
def encode_examples(ints, floats, kind, col, length, keys, key_off, key_len, out, tab):
    """Framed TFRecords of ``n`` fixed-shape tf.train.Examples into ``out``; returns the end.

    Features (in this order, sorted by name) are described by ``kind`` (0: Int64List of the
    non-negative values ``ints[:, col:col + length]``; 2: the same with every value < 128, i.e.
    one byte each; 1: FloatList of the float32 bit patterns ``floats[:, col:col + length]``) and
    their UTF-8 names ``keys[key_off:key_off + key_len]``.
    Wire format: ``Example{1: Features{1: map entry {1: key, 2: Feature{2|3: List{1: packed}}}}}``
    with minimal varints; each record is framed as ``len (u64 LE), masked_crc32c(len), data,
    masked_crc32c(data)``.
    """
    sz = np.zeros((kind.shape[0], 4), np.int64)
    pos = 0
    for r in range(ints.shape[0]):
        pos = _encode_row(ints[r], floats[r], kind, col, length, keys, key_off, key_len, sz, out, pos, tab)
    return pos


@njit(cache=True, nogil=True)
def encode_pretraining(ids, la, lb, nsp, mcol, mcount, new_ids, fcol, kind, col, length, keys, key_off,
                       key_len, out, tab):
    """BERT pretraining records of a block straight from the compact results of the masking:
    ``ids (n, L)`` (original tokens), segment lengths, NSP labels, the masked columns per row and
    their replacement ids (``new_ids``, flat in row-then-column order). ``fcol`` gives the
    column of each feature in the encoder's int row: input_mask, input_type_ids,
    input_word_ids, masked_lm_ids, masked_lm_positions, next_sentence_labels; the float row is
    masked_lm_weights. Returns the end in ``out``."""
    n, L = ids.shape
    P = mcol.shape[1]
    c_mask, c_type, c_ids, c_lab, c_pos, c_nsp = fcol[0], fcol[1], fcol[2], fcol[3], fcol[4], fcol[5]
    n_int = 0
    for f in range(kind.shape[0]):
        if kind[f] != 1:
            n_int = max(n_int, col[f] + length[f])
    row = np.zeros(n_int, np.int32)
    wrow = np.zeros(P, np.uint32)
    one = np.uint32(0x3F800000)  # 1.0f
    sz = np.zeros((kind.shape[0], 4), np.int64)
    pos = 0
    k = 0
    for r in range(n):
        nt = np.int64(la[r]) + np.int64(lb[r]) + 3
        b0 = np.int64(la[r]) + 2
        for c in range(L):
            row[c_mask + c] = 1 if c < nt else 0
            row[c_type + c] = 1 if (c >= b0 and c < nt) else 0
            row[c_ids + c] = ids[r, c]
        m = mcount[r]
        for t in range(P):
            if t < m:
                c = mcol[r, t]
                row[c_lab + t] = ids[r, c]
                row[c_pos + t] = c
                row[c_ids + c] = new_ids[k]
                wrow[t] = one
                k += 1
            else:
                row[c_lab + t] = 0
                row[c_pos + t] = 0
                wrow[t] = 0
        row[c_nsp] = nsp[r]
        pos = _encode_row(row, wrow, kind, col, length, keys, key_off, key_len, sz, out, pos, tab)
    return pos


# ---------------------------------------------------------------------------------------------
# Instance layout (Google BERT's create_instances_from_document, per block of documents)
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True, inline="always")
def _bisect_left(a, x, lo, hi):
    while lo < hi:
        mid = (lo + hi) // 2
        if a[mid] < x:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def layout_documents(cum, dstart, draws, pool, short_prob, max_num, n_docs_total, d0):
    """Chunks of the documents ``d0 + [0, len(dstart) - 1)``: see ``_layout_task``.

    ``cum``: token offsets of the block's sentences (block-local, ``len = sentences + 1``);
    ``dstart``: first sentence of every document; ``draws``: uniforms consumed in order;
    ``pool``: further uniforms for the rare retries of a random document that hit this one.
    Returns ``(a_s, a_e, b_e, r_doc, r_u, t_b, short, counters)`` trimmed to the instances made;
    ``counters = [instances, random nexts, short documents, forced random nexts, pool used]``,
    with ``pool used = -1`` when ``pool`` ran out (the caller retries with a longer one).
    """
    nd = dstart.shape[0] - 1
    ns = cum.shape[0] - 1
    a_s = np.empty(ns, np.int64)
    a_e = np.empty(ns, np.int64)
    b_e = np.empty(ns, np.int64)
    short = np.zeros(ns, np.uint8)
    r_doc = np.empty(ns, np.int64)
    r_u = np.empty(ns, np.float64)
    t_b = np.empty(ns, np.int64)
    counters = np.zeros(5, np.int64)
    n_inst = 0
    n_rand = 0
    k = 0
    used = 0
    short_docs = 0
    forced = 0
    for d in range(nd):
        i = dstart[d]
        end = dstart[d + 1]
        target = max_num
        is_short = draws[k] < short_prob
        k += 1
        if is_short:
            target = 2 + int(draws[k] * (max_num - 1))  # randint(2, max_num)
            k += 1
            short_docs += 1
        this_doc = d0 + d
        while i < end:
            e = _bisect_left(cum, cum[i] + target, i + 1, end)
            n = e - i
            a_s[n_inst] = i
            short[n_inst] = 2 if is_short else 0
            if n >= 2:
                a_end = i + 1 + int(draws[k] * (n - 1))  # randint(1, n - 1) sentences
                a_e[n_inst] = a_end
                if draws[k + 1] >= 0.5:  # actual next
                    k += 2
                    b_e[n_inst] = e
                    n_inst += 1
                    i = e
                    continue
                k += 2
            else:
                a_end = i + 1
                a_e[n_inst] = a_end
                forced += 1  # a one-sentence chunk always takes a random B
            rd = int(draws[k] * n_docs_total)
            if rd == this_doc and n_docs_total > 1:
                for _ in range(9):
                    if used >= pool.shape[0]:
                        counters[4] = -1
                        return a_s[:0], a_e[:0], b_e[:0], r_doc[:0], r_u[:0], t_b[:0], short[:0], counters
                    rd = int(pool[used] * n_docs_total)
                    used += 1
                    if rd != this_doc:
                        break
            b_e[n_inst] = -1
            r_doc[n_rand] = rd
            r_u[n_rand] = draws[k + 1]
            k += 2
            t_b[n_rand] = target - (cum[a_end] - cum[i])
            n_rand += 1
            n_inst += 1
            i = a_end  # the unused sentences of the chunk are put back
    counters[0] = n_inst
    counters[1] = n_rand
    counters[2] = short_docs
    counters[3] = forced
    counters[4] = used
    return (a_s[:n_inst], a_e[:n_inst], b_e[:n_inst], r_doc[:n_rand], r_u[:n_rand], t_b[:n_rand],
            short[:n_inst], counters)


# ---------------------------------------------------------------------------------------------
# Instances: token ids and whole-word groups; the greedy masking fill
# ---------------------------------------------------------------------------------------------


@njit(cache=True, nogil=True)
def instance_groups(a_tok, la, b_tok, lb, tokens, id_mask, shift, cls_id, sep_id, literal, L):
    """``[CLS] A [SEP] B [SEP] [PAD]...`` ids of every instance and its whole-word groups.

    A candidate is a segment token (not [CLS]/[SEP]/padding; with ``literal``, not a literal
    [CLS]/[SEP] of the text either). A group starts at a candidate unless the token continues
    a word (top bit of the packed id) whose previous token is a candidate too -- so a word cut
    by truncation at a segment start is the part inside the segment. Returns ``ids (n, L)
    int32``, ``gcol``/``gsz (n, L) int16`` (column and size of each group, in column order),
    ``ng (n)`` groups per row and the number of candidates.
    """
    n = a_tok.shape[0]
    ids = np.zeros((n, L), np.int32)
    gcol = np.zeros((n, L), np.int16)
    gsz = np.zeros((n, L), np.int16)
    ng = np.zeros(n, np.int64)
    n_cand = 0
    for r in range(n):
        A = np.int64(la[r])
        nt = A + np.int64(lb[r]) + 3
        ids[r, 0] = cls_id
        ids[r, A + 1] = sep_id
        ids[r, nt - 1] = sep_id
        g = -1
        prev_cand = False
        for c in range(1, nt - 1):
            if c <= A:
                raw = np.int64(tokens[np.int64(a_tok[r]) + c - 1])
            elif c == A + 1:
                prev_cand = False
                continue
            else:
                raw = np.int64(tokens[np.int64(b_tok[r]) + c - A - 2])
            tid = raw & id_mask
            ids[r, c] = tid
            if literal and (tid == cls_id or tid == sep_id):
                prev_cand = False
                continue
            n_cand += 1
            if prev_cand and (raw >> shift) != 0:
                gsz[r, g] += 1
            else:
                g += 1
                gcol[r, g] = c
                gsz[r, g] = 1
            prev_cand = True
        ng[r] = g + 1
    return ids, gcol, gsz, ng, n_cand


@njit(cache=True, nogil=True)
def greedy_fill(order, ng, gcol, gsz, num, P):
    """Masked columns per row, ascending: the row's groups in the random ``order`` (group
    numbers, a row-wise permutation of its first ``ng`` entries), each taken iff it still fits
    into ``num`` (a word is never split). Returns ``mcol (n, P) int32`` and ``mcount (n)``."""
    n = order.shape[0]
    mcol = np.zeros((n, P), np.int32)
    mcount = np.zeros(n, np.int64)
    for r in range(n):
        rem = num[r]
        m = 0
        for t in range(ng[r]):
            if rem <= 0:
                break
            g = order[r, t]
            s = np.int64(gsz[r, g])
            if s <= rem:
                c0 = np.int64(gcol[r, g])
                for c in range(c0, c0 + s):
                    # insertion into the row's sorted list of masked columns
                    j = m
                    while j > 0 and mcol[r, j - 1] > c:
                        mcol[r, j] = mcol[r, j - 1]
                        j -= 1
                    mcol[r, j] = c
                    m += 1
                rem -= s
        mcount[r] = m
    return mcol, mcount


def warm_up(token_dtype=np.uint16, off_dtype=np.uint32) -> None:
    """Compile (or load from the cache) the kernels of ``create_pretraining_data`` for these
    array types, in this process: call it before forking workers, so that they inherit the
    machine code instead of each loading it again (the first load in a process costs ~0.5 s)."""
    tokens = np.array([1, 2, 3, 4], token_dtype)
    one16 = np.ones(1, np.uint16)
    ids, gcol, gsz, ng, _ = instance_groups(np.zeros(1, off_dtype), one16, np.ones(1, off_dtype), one16, tokens,
                                            0x7FFF, 15, 2, 3, False, 8)
    greedy_fill(np.zeros((1, max(int(ng.max()), 1)), np.int32), ng, gcol, gsz, np.ones(1, np.int64), 2)
    layout_documents(np.arange(3, dtype=np.int64), np.array([0, 2], np.int64), np.zeros(12), np.zeros(4), 0.1, 5, 2, 0)
    out = np.zeros(256, np.uint8)
    i64 = np.zeros(1, np.int64)
    layout = (i64, i64, np.ones(1, np.int64), np.frombuffer(b"k", np.uint8), i64, np.ones(1, np.int64))
    encode_pretraining(ids, i64, i64, np.zeros(1, np.int32), np.zeros((1, 2), np.int32), i64,
                       np.zeros(0, np.int32), np.zeros(6, np.int64), *layout, out, CRC32C_TABLES)
