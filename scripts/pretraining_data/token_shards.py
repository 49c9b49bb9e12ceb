"""Token shards: the per-shard data of MLM-only training (RoBERTa, DistilBERT distillation).

Made by ``python -m scripts.pretraining_data.create --output-format token-shards`` from the same
tokenised shard as the TFRecords (:func:`scripts.pretraining_data.create.read_corpus`: MeCab
once, packed ids with the "continues a word" bit), so the text is tokenised once, by the code
that makes the BERT records. Format (:mod:`scripts.shared.formats`, ``token_shard``):

* ``token_shard_NN.npy``: a 2-D array ``(sequences, max_seq_length)``, ``uint16`` for
  vocabularies of up to 32768 entries, else ``uint32``; every value is a token id with the top
  bit (15 or 31) set when the token *continues* a MeCab word (the whole-word masking groups;
  tokenizers without MeCab words never set it). A plain ``.npy``: ``numpy.load(mmap_mode="r")``
  maps it without reading it.
* ``token_shard_NN.npy.stats.json``: the format's facts the loader needs (``seq_length``, the
  bit, the special ids, ``word_boundaries``, ``vocab_size``), the counts, and the array file's
  ``output_bytes`` / ``output_sha256`` (hashed while writing; training's run key uses them, as it
  uses a TFRecord's stats).

Packing, RoBERTa's FULL-SENTENCES (:func:`pack_kernel`): each row is ``[CLS]``, then whole
sentences in corpus order -- continuing across a document end with a ``[SEP]`` between the two
documents -- as long as they fit, then ``[SEP]`` and ``[PAD]`` to the end. A sentence that does
not fit starts the next row; a sentence longer than a whole row (``max_seq_length - 2``) is cut
into row-sized pieces. Rows are not shuffled here (the loader permutes them per epoch) and no
mask is applied (the loader masks every time a row is read: :mod:`scripts.training.mlm_data`).
The output depends on the shard, the tokenizer and ``max_seq_length`` only.
"""

from __future__ import annotations

import hashlib
import os
import time

import numpy as np
from numba import njit

from scripts.shared.common import LOG, InputError, atomic_path
from scripts.shared.formats import TOKEN_SHARD_FORMAT, write_stats

SPECIAL_TOKENS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


@njit(cache=True, nogil=True)
def pack_kernel(sent_off, doc_sent, capacity, out_rows, cls_id, sep_id, pad_id, tokens, fill):
    """Pack sentences into rows of ``capacity + 2`` tokens (module docstring).

    With ``fill`` false, only counts the rows (returns ``(rows, split_sentences, separators)``);
    with ``fill`` true, writes them into ``out_rows`` (``rows x (capacity + 2)``).
    """
    L = capacity + 2
    row = 0
    cur = 0  # content tokens in the current row
    pending_sep = False  # a document ended since the row's last content token
    split = 0
    seps = 0
    n_docs = doc_sent.shape[0] - 1
    for d in range(n_docs):
        for s in range(doc_sent[d], doc_sent[d + 1]):
            a = sent_off[s]
            n = sent_off[s + 1] - a
            pos = 0
            if n > capacity:
                split += 1
            while pos < n:
                sep = 1 if (pending_sep and cur > 0) else 0
                chunk = n - pos
                if cur > 0 and cur + sep + chunk > capacity:
                    if fill:  # close the row: [SEP], padding
                        out_rows[row, 1 + cur] = sep_id
                        for j in range(2 + cur, L):
                            out_rows[row, j] = pad_id
                    row += 1
                    cur = 0
                    pending_sep = False
                    continue
                if chunk > capacity - cur - sep:
                    chunk = capacity - cur - sep  # only in an empty row: a cut long sentence
                if fill:
                    if cur == 0:
                        out_rows[row, 0] = cls_id
                    if sep:
                        out_rows[row, 1 + cur] = sep_id
                    for j in range(chunk):
                        out_rows[row, 1 + cur + sep + j] = tokens[a + pos + j]
                seps += sep
                cur += sep + chunk
                pending_sep = False
                pos += chunk
                if cur == capacity:
                    if fill:
                        out_rows[row, 1 + cur] = sep_id
                    row += 1
                    cur = 0
        pending_sep = True
    if cur > 0:
        if fill:
            out_rows[row, 1 + cur] = sep_id
            for j in range(2 + cur, L):
                out_rows[row, j] = pad_id
        row += 1
    return row, split, seps


def pack(corpus, seq_length: int, cls_id: int, sep_id: int, pad_id: int) -> tuple[np.ndarray, dict]:
    """The FULL-SENTENCES rows of a tokenised shard (:class:`scripts.pretraining_data.create.Corpus`)."""
    if seq_length < 3:
        raise ValueError("max_seq_length must be at least 3 ([CLS], a token, [SEP])")
    cap = seq_length - 2
    tokens = corpus.tokens
    dtype = tokens.dtype
    empty = np.zeros((1, seq_length), dtype)
    n_rows, split, seps = pack_kernel(corpus.sent_off, corpus.doc_sent, cap, empty,
                                      dtype.type(cls_id), dtype.type(sep_id), dtype.type(pad_id), tokens, False)
    rows = np.empty((n_rows, seq_length), dtype)
    pack_kernel(corpus.sent_off, corpus.doc_sent, cap, rows, dtype.type(cls_id),
                dtype.type(sep_id), dtype.type(pad_id), tokens, True)
    content = int(tokens.size) + int(seps)
    return rows, {"sequences": int(n_rows), "content_tokens": content, "document_separators": int(seps),
                  "split_sentences": int(split),
                  "fill_fraction": (content + 2 * n_rows) / max(n_rows * seq_length, 1)}


class _HashWriter:
    def __init__(self, fh):
        self.fh, self.sha, self.size = fh, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.fh.write(data)

    def flush(self):
        self.fh.flush()


def write_token_shard(corpus, tokenizer, *, seq_length: int, output, stats_path, input_path, subword: str,
                      mecab_dic: str | None, started: float | None = None, extra: dict | None = None) -> dict:
    """Pack ``corpus`` and write the ``.npy`` and its stats (both atomically); returns the stats."""
    t0 = time.monotonic()
    if corpus.n_docs == 0:
        raise InputError(input_path, "no documents: the input has no line with any token")
    v = tokenizer.vocab
    missing = [t for t in SPECIAL_TOKENS if t not in v]
    if missing:
        raise InputError(tokenizer.vocab_file, f"vocabulary lacks special tokens {missing}")
    ids = {t: int(v[t]) for t in SPECIAL_TOKENS}
    rows, counts = pack(corpus, seq_length, ids["[CLS]"], ids["[SEP]"], ids["[PAD]"])
    word_boundaries = bool(np.any(corpus.tokens >> corpus.tokens.dtype.type(corpus.shift)))
    id_counts = np.bincount(corpus.tokens & corpus.tokens.dtype.type(corpus.id_mask), minlength=tokenizer.vocab_size)
    unk = int(id_counts[ids["[UNK]"]])
    with atomic_path(output) as tmp:
        with open(tmp, "wb") as raw:
            fh = _HashWriter(raw)
            np.lib.format.write_array(fh, rows, allow_pickle=False)
        size = os.path.getsize(tmp)
        if size != fh.size:
            raise RuntimeError(f"{tmp}: wrote {fh.size} bytes, the file has {size}")
    stats = {
        "format": TOKEN_SHARD_FORMAT, "input": str(input_path), "output": str(output), "output_bytes": size,
        "output_sha256": fh.sha.hexdigest(), "seq_length": int(seq_length), "dtype": str(rows.dtype),
        "continuation_bit": int(corpus.shift), "word_boundaries": word_boundaries,
        "special_ids": {"pad": ids["[PAD]"], "unk": ids["[UNK]"], "cls": ids["[CLS]"], "sep": ids["[SEP]"],
                        "mask": ids["[MASK]"]},
        "vocab_size": int(tokenizer.vocab_size), "vocab_file": str(tokenizer.vocab_file), "subword_tokenizer": subword,
        "mecab_dic": mecab_dic, "lines": int(corpus.lines), "documents": int(corpus.n_docs),
        "sentences": int(len(corpus.sent_off) - 1), "tokens": int(corpus.tokens.size), "unk_tokens": unk,
        "unk_rate": unk / max(int(corpus.tokens.size), 1), "instances": counts["sequences"], **counts,
        "seconds": {"pack_and_write": round(time.monotonic() - t0, 3),
                    **({"total": round(time.monotonic() - started, 3)} if started else {})},
        **(extra or {}),
    }
    write_stats(stats_path, stats)
    LOG.info("built %s: %d sequences of %d tokens (%.1f%% filled) from %d documents, %d sentences",
             output, counts["sequences"], seq_length, 100 * counts["fill_fraction"], corpus.n_docs,
             stats["sentences"])
    return stats
