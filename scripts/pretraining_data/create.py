"""BERT pretraining TFRecords (MLM with whole-word masking + NSP) from a sentence-per-line shard.

    python -m scripts.pretraining_data.create --input corpus/cc-100/corpus_01.txt \\
        --output pretraining_data/wordpiece_unidic_lite/cc-100/pretraining_data_01.tfrecord.gz \\
        --vocab-file tokenizers/wordpiece_unidic_lite/vocab.txt --subword-tokenizer wordpiece \\
        --mecab-dic unidic_lite --max-seq-length 128 --max-predictions-per-seq 19 \\
        --masked-lm-prob 0.15 --short-seq-prob 0.1 --dupe-factor 5 --seed 1 --threads 4 \\
        --stats pretraining_data/wordpiece_unidic_lite/cc-100/pretraining_data_01.stats.json

Input: one sentence per line, a blank line between documents (UTF-8; .gz/.xz/.bz2 also read).
Output: one GZIP TFRecord file of tf.train.Example with the Model Garden v2 feature names
(``input_word_ids``, ``input_mask``, ``input_type_ids``, ``masked_lm_positions``,
``masked_lm_ids``, ``masked_lm_weights``, ``next_sentence_labels``), padded with zeros as Google
BERT's ``create_pretraining_data`` pads them, and a ``.stats.json``.

Algorithm (the statistics of Google BERT's / cl-tohoku's ``create_pretraining_data``):

* Documents are the non-empty runs of lines; a line whose tokenisation is empty is dropped, an
  empty document too. ``--dupe-factor`` passes over all documents.
* Per document and pass: ``target = max_seq_length - 3``, and with ``--short-seq-prob`` a
  uniform ``randint(2, target)`` instead. Sentences are gathered into a chunk until it holds
  ``>= target`` tokens (or the document ends); ``A`` = the first ``randint(1, len - 1)`` of them;
  ``B`` = the rest (actual next), or -- when the chunk is one sentence, or with probability 1/2
  -- sentences from a random start in a random *other* document of the shard (10 tries) until
  ``target - len(A)`` tokens, and the unused sentences of the chunk are put back.
* ``truncate_seq_pair``: while ``len(A) + len(B) > max_seq_length - 3`` drop a token from the
  longer one (B on ties), from the front or the back with probability 1/2 each.
* ``[CLS] A [SEP] B [SEP]``, type ids 0 for ``[CLS] A [SEP]`` and 1 for ``B [SEP]``.
* Masking: ``num = min(max_predictions, max(1, round(len(tokens) * masked_lm_prob)))``;
  candidate groups = MeCab words (all subword tokens of one word, or all characters of it in
  character mode; a word cut by truncation is the part inside the segment), in random order,
  taken greedily while they fit into ``num`` (a word is never split); each masked token becomes
  ``[MASK]`` (80%), stays (10%) or becomes a uniformly random vocabulary id (10%).
* All instances of the shard are shuffled.

Tokenisation equals transformers' ``BertJapaneseTokenizer(word_tokenizer_type="mecab",
mecab_dic="unidic_lite", subword_tokenizer_type=..., do_lower_case=False)`` on each stripped
line (NFKC, MeCab, WordPiece with ``##`` / characters, [UNK] rules): see :mod:`scripts.tokenizers.wordpiece`.

Design, for speed and memory (the reference keeps Python lists of token strings and Python
``TrainingInstance`` objects for the whole shard: ~54 bytes of RAM per input byte, ~0.165 MB/s):

1. **Tokenise once.** The main process cuts the shard (decompressing it if needed) into ~1 MB
   blocks of whole lines; each worker of a ``multiprocessing`` pool (``--threads``) decodes and
   splits a block, NFKC-normalises and segments the lines with MeCab (wakati, one parse per
   line) and maps words to ids through a bounded word -> ids cache (Japanese word types repeat
   heavily). The shard becomes flat numpy arrays: token ids packed
   with a "continues a word" flag in the top bit (uint16 when the vocabulary has <= 32768
   entries, else uint32), sentence token offsets and document sentence offsets -- 2 bytes of
   RAM per token (+8 per sentence), reused by every dupe pass.
2. **Layout.** Per (dupe pass, block of documents) -- blocks cut by token/sentence counts, never
   by thread count -- a compiled loop over chunks (:func:`scripts.pretraining_data.kernels.layout_documents`;
   random numbers pre-drawn in bulk from a ``np.random.Generator(PCG64)`` seeded with
   ``SeedSequence(seed, spawn_key=(1, dupe, block))``) yields compact instance descriptors
   (A start/length, B start/length in the token array, flags); B of random-next instances and
   the truncation (a binomial number of front drops) are vectorised. Descriptors take 13 bytes
   per instance (uint32 offsets for shards of < 2**32 tokens).
3. **Shuffle** all descriptors with one seeded permutation (the reference shuffles all instances);
   each output block gathers its descriptors through it.
4. **Materialise** blocks of 4096 instances (``spawn_key=(2, block)``): a compiled scan gathers
   the tokens and finds the word groups, numpy orders them at random per row (a SIMD row sort of
   int32 keys ``random << b | group``), a compiled greedy fill picks the masked words, and the
   80/10/10 replacements are drawn; :func:`scripts.pretraining_data.kernels.encode_pretraining` serialises the
   block straight from these compact arrays to framed TFRecord bytes (CRC32C included), and the
   block is raw-deflated as an independent piece of one gzip member (CRC-32s combined). Pieces
   are made in parallel and written in block order, so the output bytes depend on the input,
   vocabulary, parameters, seed and compressor only -- never on ``--threads``.
5. **Compression** is the largest cost after MeCab: the output is ~10x the input before
   compression. ``--gzip-level`` defaults to 1 (zlib level 1 runs at ~100 MB/s here and
   compresses within ~10% of level 6, TensorFlow's default, which is ~2x slower);
   ``--compressor auto`` uses ISA-L (the ``isal`` package, ~6x faster than zlib at the same
   ratio) when it is installed, else zlib. The compressor is recorded in the stats, and so are
   the output's ``output_bytes`` and ``output_sha256`` (hashed as the bytes are written), which
   training uses in its run key instead of re-reading the records (:mod:`scripts.training.runs`).
6. Memory: besides the arrays above, a few tens of MB of per-block temporaries; glibc is told to
   keep freed memory (``mallopt``) so blocks reuse pages instead of faulting in new ones.

The compiled parts (:mod:`scripts.pretraining_data.kernels`, numba) are warmed up in the main process before the
workers fork, so they inherit the machine code. They were checked byte for byte against the
previous pure-numpy implementation (same random streams, same bytes).

Random numbers come from numpy's PCG64 streams, not Python's ``random``: the output is not
bit-identical to the reference scripts, only statistically equivalent.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import resource
import time
from dataclasses import asdict, dataclass, replace

import numpy as np

from scripts.pretraining_data import kernels, token_shards
from scripts.shared.common import (LOG, InputError, Progress, atomic_path, imap_ordered, peak_rss_mb, process_pool,
                            read_blocks, run_cli, write_json)
from scripts.pretraining_data.encoder import ExampleEncoder
from scripts.shared.formats import record_features, token_shard_stats_path
from scripts.shared.tfrecord import GzipPieceWriter, deflate_piece, resolve_compressor
from scripts.tokenizers.sentencepiece import data_tokenizer
from scripts.tokenizers.wordpiece import JapaneseTokenizer

CHUNK_BYTES = 1 << 20          # bytes of text per tokenisation task
BLOCK_TOKENS = 1 << 20         # layout blocks: about this many tokens, or 1/32 as many sentences
OUTPUT_BLOCK = 4096            # instances per materialisation task / gzip piece


@dataclass(frozen=True)
class Params:
    max_seq_length: int = 128
    max_predictions_per_seq: int = 20
    masked_lm_prob: float = 0.15
    short_seq_prob: float = 0.1
    dupe_factor: int = 10
    seed: int = 12345
    gzip_level: int = 1
    compressor: str = "auto"
    block_tokens: int = BLOCK_TOKENS  # layout block size: part of what the output depends on

    def check(self) -> None:
        if self.max_seq_length < 5:
            raise ValueError("--max-seq-length must be at least 5")
        if self.max_seq_length > 1 << 15:
            raise ValueError("--max-seq-length must be at most 32768")
        if not 1 <= self.max_predictions_per_seq <= self.max_seq_length:
            raise ValueError("--max-predictions-per-seq must be in [1, max-seq-length]")
        if not 0.0 <= self.masked_lm_prob <= 1.0:
            raise ValueError("--masked-lm-prob must be in [0, 1]")
        if not 0.0 <= self.short_seq_prob <= 1.0:
            raise ValueError("--short-seq-prob must be in [0, 1]")
        if self.dupe_factor < 1:
            raise ValueError("--dupe-factor must be at least 1")
        if self.seed < 0:
            raise ValueError("--seed must be non-negative")
        if not 0 <= self.gzip_level <= 9:
            raise ValueError("--gzip-level must be in [0, 9]")
        if self.block_tokens < 1:
            raise ValueError("--layout-block-tokens must be positive")
        if self.compressor not in ("auto", "zlib", "isal"):
            raise ValueError("--compressor must be auto, zlib or isal")


def _keep_freed_memory() -> None:
    """Let glibc serve the per-block temporaries (a few MB each) from the heap and keep freed
    memory there: otherwise every block maps fresh pages and page faults cost ~10% of the CPU.
    (No effect elsewhere than glibc; large arrays, over 32 MB, are still mapped separately.)"""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 32 << 20)   # M_MMAP_THRESHOLD
        libc.mallopt(-1, 256 << 20)  # M_TRIM_THRESHOLD
    except (OSError, AttributeError):  # pragma: no cover - not glibc
        pass


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(seed, spawn_key=key)))


# State shared with worker processes: set before a fork pool starts (copy-on-write arrays).
_STATE: dict = {}


# ---------------------------------------------------------------------------------------------
# Phase 1: read and tokenise the shard into flat arrays
# ---------------------------------------------------------------------------------------------


class _Sha256Writer:
    """A binary file wrapper that hashes (sha256) and counts what is written through it."""

    def __init__(self, fh):
        self.fh, self.sha, self.size = fh, hashlib.sha256(), 0

    def write(self, data) -> int:
        self.sha.update(data)
        self.size += len(data)
        return self.fh.write(data)


class _Grow:
    """An append-only numpy array; grows in place (realloc) and is trimmed at the end."""

    def __init__(self, dtype, capacity: int):
        self.a = np.empty(max(int(capacity), 16), dtype)
        self.n = 0

    def extend(self, values: np.ndarray) -> None:
        end = self.n + values.size
        if end > self.a.size:
            self.a.resize(max(end, self.a.size + self.a.size // 2), refcheck=False)
        self.a[self.n:end] = values
        self.n = end

    def finish(self) -> np.ndarray:
        self.a.resize(self.n, refcheck=False)
        out, self.a = self.a, np.empty(0, self.a.dtype)
        return out


@dataclass
class Corpus:
    tokens: np.ndarray      # packed ids: id | continuation << shift
    sent_off: np.ndarray    # int64 (n_sentences + 1): token offset of every sentence
    doc_sent: np.ndarray    # int64 (n_documents + 1): first sentence of every document
    shift: int
    lines: int = 0
    nul_bytes: int = 0

    @property
    def id_mask(self) -> int:
        return (1 << self.shift) - 1

    @property
    def n_docs(self) -> int:
        return len(self.doc_sent) - 1


def _tok_init(tokenizer: JapaneseTokenizer, shift: int) -> None:
    _STATE["tokenizer"] = tokenizer
    _STATE["shift"] = shift


@dataclass
class _Chunk:
    """A tokenised piece of the input, in input order (made by a worker)."""
    tokens: np.ndarray       # packed ids of the chunk's lines
    per_line: np.ndarray     # int32 token count of every non-blank line
    newdoc: np.ndarray       # bool per non-blank line: a blank line came before it (in this chunk)
    pending_break: bool      # the chunk ends with blank lines
    lines: int               # lines read (blank ones included)
    nbytes: int
    nul_bytes: int = 0
    bad_line: int = 0        # line number (in the file) of invalid UTF-8 (0: none)
    bad_message: str = ""


def _split_lines(text: str) -> tuple[list[str], list[bool], bool, int]:
    """Stripped non-blank lines of ``text`` (split at "\n" only, as files are read), a "blank
    line before it" flag per line, whether the text ends with blank lines, and the line count."""
    lines = text.split("\n")
    if lines[-1] == "":
        lines.pop()  # the text ends with a line end
    kept: list[str] = []
    flags: list[bool] = []
    add, flag = kept.append, flags.append
    pending = False
    for s in map(str.strip, lines):
        if s:
            add(s)
            flag(pending)
            pending = False
        else:
            pending = True
    return kept, flags, pending, len(lines)


def _tok_task(task) -> _Chunk:
    """Decode, split and tokenise one block of whole lines (``(first line number, bytes)``).

    NUL bytes are removed (and counted); invalid UTF-8 comes back as an error chunk naming the
    line and the byte within it, as :func:`scripts.shared.common.iter_lines` reports it.
    """
    first, data = task
    nbytes = len(data)
    nul = data.count(b"\0")
    if nul:
        data = data.replace(b"\0", b"")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_start = data.rfind(b"\n", 0, e.start) + 1
        empty = np.zeros(0, np.int32)
        return _Chunk(empty, empty, np.zeros(0, bool), False, 0, nbytes, nul,
                      first + data.count(b"\n", 0, e.start), f"invalid UTF-8 at byte {e.start - line_start} ({e.reason})")
    kept, flags, pending, n_lines = _split_lines(text)
    del text, data
    shift = _STATE["shift"]
    dtype = np.uint16 if shift == 15 else np.uint32
    if not kept:
        empty = np.zeros(0, np.int32)
        return _Chunk(np.zeros(0, dtype), empty, np.zeros(0, bool), pending, n_lines, nbytes, nul)
    ids, word_start, per_line = _STATE["tokenizer"].encode_lines(kept)
    packed = ids.astype(dtype)
    packed |= (~word_start).astype(dtype) << dtype(shift)
    return _Chunk(packed, per_line.astype(np.int32), np.array(flags, bool), pending, n_lines, nbytes, nul)


def read_corpus(path, tokenizer: JapaneseTokenizer, threads: int, chunk_bytes: int = CHUNK_BYTES,
                while_waiting=None) -> Corpus:
    """Tokenise a shard into a :class:`Corpus` (ordered, parallel for ``threads > 1``).

    ``while_waiting``: called once in the main process while the workers tokenise (with
    ``threads > 1``: the main process is otherwise idle then).

    The main process reads (decompressing if needed) blocks of ~``chunk_bytes`` whole lines
    (:func:`scripts.shared.common.read_blocks`); the workers decode, split and tokenise them. The result
    does not depend on ``threads`` nor on ``chunk_bytes``: a block's first line starts a document
    when a blank line ends the block before it.
    """
    shift = 15 if tokenizer.vocab_size <= 1 << 15 else 31
    dtype = np.uint16 if shift == 15 else np.uint32
    try:
        size = os.path.getsize(path)
    except OSError as e:
        raise InputError(path, f"cannot read: {e.strerror}") from None
    if str(path).endswith((".gz", ".xz", ".bz2")):
        size *= 4
    tokens = _Grow(dtype, size // 2 + 1024)
    sent_len = _Grow(np.int32, size // 64 + 1024)
    doc_first = _Grow(np.int64, size // 1024 + 1024)
    n_sent = 0
    last_doc_key = -1
    breaks_before = 0
    lines_done = 0
    nul_bytes = 0
    pending = True  # the first line starts a document
    progress = Progress("tokenised", unit="lines")
    tasks = read_blocks(path, chunk_bytes)
    _tok_init(tokenizer, shift)
    with process_pool(threads, _tok_init, (tokenizer, shift)) as pool:
        for ch in imap_ordered(pool, _tok_task, tasks):
            if while_waiting is not None and pool is not None:
                while_waiting()  # the workers are busy with the tasks in flight
                while_waiting = None
            if ch.bad_line:
                raise InputError(path, ch.bad_message, ch.bad_line)
            lines_done += ch.lines
            nul_bytes += ch.nul_bytes
            newdoc = ch.newdoc
            if newdoc.size:
                newdoc[0] |= pending
                pending = ch.pending_break
            else:
                pending = pending or ch.pending_break
            tokens.extend(ch.tokens)
            per_line = ch.per_line
            keys = breaks_before + np.cumsum(newdoc)
            if keys.size:
                breaks_before = int(keys[-1])
            kept = per_line > 0
            kept_keys = keys[kept]
            if kept_keys.size:
                prev = np.concatenate(([last_doc_key], kept_keys[:-1]))
                starts = np.flatnonzero(kept_keys != prev)
                doc_first.extend(n_sent + starts)
                last_doc_key = int(kept_keys[-1])
                sent_len.extend(per_line[kept])
                n_sent += int(kept.sum())
            progress.update(len(per_line), nbytes=ch.nbytes)
    lens = sent_len.finish()
    sent_off = np.zeros(lens.size + 1, np.int64)
    np.cumsum(lens, out=sent_off[1:])
    del lens
    doc_sent = np.concatenate((doc_first.finish(), [n_sent])).astype(np.int64)
    corpus = Corpus(tokens.finish(), sent_off, doc_sent, shift)
    corpus.lines = lines_done
    if nul_bytes:
        LOG.warning("%s: removed %d NUL bytes", path, nul_bytes)
    corpus.nul_bytes = nul_bytes
    return corpus


# ---------------------------------------------------------------------------------------------
# Phase 2: instance layout (which tokens go into A and B)
# ---------------------------------------------------------------------------------------------


def layout_blocks(corpus: Corpus, block_tokens: int = BLOCK_TOKENS) -> np.ndarray:
    """Document indices where layout blocks start (plus the end): depends on the data only."""
    doc_tok = corpus.sent_off[corpus.doc_sent]
    weight = np.maximum(np.diff(doc_tok) / block_tokens, np.diff(corpus.doc_sent) * 32 / block_tokens)
    block_of_doc = np.floor(np.concatenate(([0.0], np.cumsum(weight)[:-1]))).astype(np.int64)
    starts = np.flatnonzero(np.diff(block_of_doc, prepend=-1))
    return np.concatenate((starts, [corpus.n_docs]))


def truncated_lengths(la: np.ndarray, lb: np.ndarray, max_num: int) -> tuple[np.ndarray, np.ndarray]:
    """Final lengths of ``truncate_seq_pair`` (the longer side shrinks; B on ties), vectorised."""
    la = la.astype(np.int64)
    lb = lb.astype(np.int64)
    excess = np.maximum(la + lb - max_num, 0)
    a_longer = la > lb
    # A longer: A shrinks to len(B), then they alternate starting with B.
    d = la - lb
    e2 = np.maximum(excess - d, 0)
    a1 = np.where(excess <= d, la - excess, lb - e2 // 2)
    b1 = np.where(excess <= d, lb, lb - (e2 + 1) // 2)
    # B at least as long: B shrinks to len(A) - 1, then they alternate starting with A.
    d2 = lb - la + 1
    f2 = np.maximum(excess - d2, 0)
    a2 = np.where(excess <= d2, la, la - (f2 + 1) // 2)
    b2 = np.where(excess <= d2, lb - excess, la - 1 - f2 // 2)
    return np.where(a_longer, a1, a2), np.where(a_longer, b1, b2)


def _layout_pool_draws(rng: np.random.Generator, run):
    """Run ``run(pool)`` with the uniforms a lazily refilled retry pool would have drawn.

    The reference draws retries 256 at a time when needed. ``run`` reports how many it used
    (``-1``: the pool was too short); the generator is left where the lazy pool would leave it,
    so the draws that follow do not depend on how long a pool was tried.
    """
    state = rng.bit_generator.state
    size = 256
    while True:
        rng.bit_generator.state = state
        res, used = run(rng.random(size))
        if used >= 0:
            break
        size *= 4
    rng.bit_generator.state = state
    if used:
        rng.random(256 * -(-used // 256))
    return res


def _layout_task(task):
    """Instances of documents ``[d0, d1)`` for one dupe pass: descriptor arrays + counters."""
    dupe, block, d0, d1 = task
    st = _STATE
    p: Params = st["params"]
    corpus: Corpus = st["corpus"]
    sent_off, doc_sent = corpus.sent_off, corpus.doc_sent
    rng = _rng(p.seed, 1, dupe, block)
    s0, s1 = int(doc_sent[d0]), int(doc_sent[d1])
    nd, ns = d1 - d0, s1 - s0
    cum = sent_off[s0:s1 + 1]
    dstart = doc_sent[d0:d1 + 1] - s0
    draws = rng.random(2 * nd + 4 * ns)
    max_num = p.max_seq_length - 3

    def run(pool):
        out = kernels.layout_documents(cum, dstart, draws, pool, p.short_seq_prob, max_num, corpus.n_docs, d0)
        return out, int(out[-1][4])

    a_s, a_e, b_e, r_doc, r_u, t_b, short, counters = _layout_pool_draws(rng, run)
    n_inst, short_docs, forced = int(counters[0]), int(counters[2]), int(counters[3])
    a_s_arr = a_s + s0
    a_e_arr = a_e + s0
    rand = b_e < 0
    a_tok = sent_off[a_s_arr]
    la = sent_off[a_e_arr] - a_tok
    b_tok = np.empty(n_inst, np.int64)
    lb = np.empty(n_inst, np.int64)
    nr = ~rand
    b_tok[nr] = sent_off[a_e_arr[nr]]
    lb[nr] = sent_off[b_e[nr] + s0] - b_tok[nr]
    if r_doc.size:
        first, last = doc_sent[r_doc], doc_sent[r_doc + 1]
        rs = first + np.floor(r_u * (last - first)).astype(np.int64)
        rs = np.minimum(rs, last - 1)
        want = sent_off[rs] + t_b
        be = np.clip(np.searchsorted(sent_off, want, side="left"), rs + 1, last)
        b_tok[rand] = sent_off[rs]
        lb[rand] = sent_off[be] - sent_off[rs]
    la2, lb2 = truncated_lengths(la, lb, max_num)
    a_tok += rng.binomial(la - la2, 0.5)
    b_tok += rng.binomial(lb - lb2, 0.5)
    flags = rand.astype(np.uint8) | short
    off_dtype = st["off_dtype"]
    return {
        "a_tok": a_tok.astype(off_dtype), "la": la2.astype(np.uint16),
        "b_tok": b_tok.astype(off_dtype), "lb": lb2.astype(np.uint16), "flags": flags,
        "docs": nd, "short_docs": short_docs, "dupe": dupe, "forced_random": forced,
        "truncated": int(np.count_nonzero((la2 < la) | (lb2 < lb))),
    }


# ---------------------------------------------------------------------------------------------
# Phase 3: masking, serialisation, compression
# ---------------------------------------------------------------------------------------------


def make_encoder(p: Params, vocab_size: int) -> ExampleEncoder:
    return ExampleEncoder(record_features(p.max_seq_length, p.max_predictions_per_seq, vocab_size))


def materialize(a_tok, la, b_tok, lb, flags, rng: np.random.Generator, debug: dict | None = None):
    """A block of instances masked (a :class:`Block`, and counters).

    :func:`scripts.pretraining_data.kernels.instance_groups` builds the ids and the whole-word groups (a group
    starts at a candidate token unless it continues a word whose previous token is a candidate
    too: a word cut by truncation at a segment start is the part inside the segment). Every
    row's groups are put in random order by sorting ``random << b | group`` keys (the random
    bits drawn here, one row of ``max groups`` per instance), and
    :func:`scripts.pretraining_data.kernels.greedy_fill` takes each group iff it still fits (never splitting a
    word). Then 80 % [MASK], 10 % unchanged, 10 % a random vocabulary id.
    """
    st = _STATE
    p: Params = st["params"]
    corpus: Corpus = st["corpus"]
    mask_id = st["mask_id"]
    L, P = p.max_seq_length, p.max_predictions_per_seq
    n = a_tok.shape[0]
    ids, gcol, gsz, ng, n_cand = kernels.instance_groups(
        a_tok, la, b_tok, lb, corpus.tokens, corpus.id_mask, corpus.shift, st["cls_id"], st["sep_id"],
        st["literal_specials"], L)
    la = la.astype(np.int64)
    ntok = la + lb + 3
    gmax = int(ng.max()) if n else 0
    num = np.minimum(P, np.maximum(1, np.round(ntok * p.masked_lm_prob).astype(np.int64)))
    # Random group order per row: sort int32 keys (random bits << ib | group number); numpy's
    # row sort is vectorised (SIMD), faster than a compiled per-row sort.
    ib = max(gmax - 1, 1).bit_length()
    keys = rng.integers(0, 1 << (31 - ib), (n, gmax), dtype=np.int32)
    keys <<= ib
    keys |= np.arange(gmax, dtype=np.int32)
    keys[np.arange(gmax) >= ng[:, None]] = np.iinfo(np.int32).max  # no such group: last
    keys.sort(axis=1)
    keys &= (1 << ib) - 1
    mcol, mcount = kernels.greedy_fill(keys, ng, gcol, gsz, num, P)
    del keys, gcol, gsz
    mr = np.repeat(np.arange(n), mcount)
    mc = mcol[np.arange(P) < mcount[:, None]]  # row by row, columns ascending
    m = mr.size
    orig = ids[mr, mc]
    u = rng.random(m)
    random_ids = st["vocab_ids"][rng.integers(0, st["vocab_ids"].size, m)]
    new_ids = np.where(u < 0.8, mask_id, np.where(u < 0.9, orig, random_ids)).astype(np.int32)
    block = Block(ids, la, lb.astype(np.int64), (flags & 1).astype(np.int32), mcol, mcount, new_ids)
    counts = {
        "instances": n, "tokens": int(ntok.sum()), "candidates": int(n_cand),
        "masked": m, "masked_as_mask": int(np.count_nonzero(u < 0.8)),
        "masked_kept": int(np.count_nonzero((u >= 0.8) & (u < 0.9))),
        "masked_random": int(np.count_nonzero(u >= 0.9)),
        "random_next": int(np.count_nonzero(flags & 1)), "short": int(np.count_nonzero(flags & 2)),
        "num_to_predict": int(num.sum()),
    }
    if debug is not None:  # token positions in the corpus (-1: not a candidate), for tests
        j = np.arange(L)
        in_b = j >= (la + 2)[:, None]
        src = np.where(in_b, (b_tok.astype(np.int64) - (la + 2))[:, None], (a_tok.astype(np.int64) - 1)[:, None]) + j
        valid = (j >= 1) & (j < (ntok - 1)[:, None]) & (j != (la + 1)[:, None])
        cand = valid
        if st["literal_specials"]:
            cand = valid & (ids != st["cls_id"]) & (ids != st["sep_id"])
        masked = np.zeros((n, L), bool)
        masked[mr, mc] = True
        debug.update(src=np.where(cand, src, -1), valid=valid, cand=cand, masked=masked,
                     arrays=feature_arrays(block))
    return block, counts


@dataclass
class Block:
    """A block of instances after masking, compactly: original ids ``(n, L)``, segment lengths,
    NSP labels, masked columns per row (ascending) and their replacement ids (flat)."""
    ids: np.ndarray
    la: np.ndarray
    lb: np.ndarray
    nsp: np.ndarray
    mcol: np.ndarray
    mcount: np.ndarray
    new_ids: np.ndarray


def feature_arrays(b: Block) -> dict[str, np.ndarray]:
    """The feature arrays of a block (numpy; the writer serialises from the block directly)."""
    n, L = b.ids.shape
    P = b.mcol.shape[1]
    in_row = np.arange(P) < b.mcount[:, None]
    mr = np.repeat(np.arange(n), b.mcount)
    mc = b.mcol[in_row]
    ids = b.ids.copy()
    ids[mr, mc] = b.new_ids
    labels = np.zeros((n, P), np.int32)
    labels[in_row] = b.ids[mr, mc]
    j = np.arange(L)
    ntok = b.la + b.lb + 3
    input_mask = j < ntok[:, None]
    return {
        "input_word_ids": ids,
        "input_mask": input_mask,
        "input_type_ids": (j >= (b.la + 2)[:, None]) & input_mask,
        "masked_lm_positions": np.where(in_row, b.mcol, 0),
        "masked_lm_ids": labels,
        "masked_lm_weights": in_row.astype(np.float32),
        "next_sentence_labels": b.nsp[:, None],
    }


def encode_block(enc: ExampleEncoder, b: Block) -> np.ndarray:
    """Framed TFRecords of a block (compiled; equal to ``enc.encode(feature_arrays(b))``)."""
    fcol = np.array([enc.column(name) for name in ("input_mask", "input_type_ids", "input_word_ids",
                                                   "masked_lm_ids", "masked_lm_positions",
                                                   "next_sentence_labels")], np.int64)
    out = enc.buffer(b.ids.shape[0])
    end = kernels.encode_pretraining(b.ids, b.la, b.lb, b.nsp, b.mcol, b.mcount, b.new_ids, fcol, *enc.layout,
                                     out, kernels.CRC32C_TABLES)
    return out[:end]


def _write_task(task):
    block, a_tok, la, b_tok, lb, flags = task
    st = _STATE
    p: Params = st["params"]
    if "encoder" not in st:
        st["encoder"] = make_encoder(p, st["vocab_size"])
    blk, counts = materialize(a_tok, la, b_tok, lb, flags, _rng(p.seed, 2, block))
    data = encode_block(st["encoder"], blk)
    piece = deflate_piece(data, p.gzip_level, p.compressor)
    return piece, counts


# ---------------------------------------------------------------------------------------------
# Driver
# ---------------------------------------------------------------------------------------------


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (pool workers), user + system."""
    total = 0.0
    for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN):
        ru = resource.getrusage(who)
        total += ru.ru_utime + ru.ru_stime
    return total


def _children_peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024.0


def create_pretraining_data(input_path, output_path, vocab_file, subword: str = "wordpiece",
                            mecab_dic: str = "unidic_lite", params: Params = Params(),
                            threads: int = 1, stats_path=None, chunk_bytes: int = CHUNK_BYTES, spm_file=None,
                            tokenizer_file=None) -> dict:
    """Build the TFRecord file; returns (and writes, if ``stats_path``) the stats dict."""
    params.check()
    params = replace(params, compressor=resolve_compressor(params.compressor))
    _keep_freed_memory()
    threads = max(1, int(threads))
    t_start = time.monotonic()
    cpu = [_cpu_seconds()]
    tokenizer = data_tokenizer(vocab_file, subword, mecab_dic, spm_file, tokenizer_file)
    input_bytes = os.path.getsize(input_path) if os.path.exists(input_path) else 0

    # Phase 1
    token_dtype = np.uint16 if tokenizer.vocab_size <= 1 << 15 else np.uint32
    corpus = read_corpus(input_path, tokenizer, threads, chunk_bytes,
                         while_waiting=lambda: kernels.warm_up(token_dtype, np.uint32))
    tokenizer.clear_cache()
    t_tok = time.monotonic()
    cpu.append(_cpu_seconds())
    rss = {"tokenize": round(peak_rss_mb(), 1)}
    if corpus.n_docs == 0:
        raise InputError(input_path, "no documents: the input has no line with any token")
    n_tokens = int(corpus.tokens.size)
    id_counts = np.zeros(tokenizer.vocab_size, np.int64)
    for s in range(0, n_tokens, 1 << 20):  # in slices: bincount makes an int64 copy of its input
        id_counts += np.bincount(corpus.tokens[s:s + (1 << 20)] & corpus.id_mask, minlength=id_counts.size)
    unk = int(id_counts[tokenizer.unk_id])
    literal_specials = bool(id_counts[tokenizer.vocab["[CLS]"]] or id_counts[tokenizer.vocab["[SEP]"]])
    LOG.info("tokenised %s: %d lines, %d documents, %d sentences, %d tokens (%.1f s, %.2f MB/s, "
             "peak RSS %.0f MB)", input_path, corpus.lines, corpus.n_docs, len(corpus.sent_off) - 1, n_tokens,
             t_tok - t_start, input_bytes / 1e6 / max(t_tok - t_start, 1e-9), rss["tokenize"])

    _STATE.clear()
    vocab_ids = np.array(sorted(set(tokenizer.vocab.values())), np.int64)
    _STATE.update(params=params, corpus=corpus, vocab_size=tokenizer.vocab_size, vocab_ids=vocab_ids,
                  cls_id=tokenizer.vocab["[CLS]"], sep_id=tokenizer.vocab["[SEP]"],
                  mask_id=tokenizer.vocab["[MASK]"], literal_specials=literal_specials,
                  off_dtype=np.uint32 if n_tokens < 1 << 32 else np.int64)
    # Compiled code is loaded before the fork (the workers inherit it): done already while the
    # workers tokenised, unless single-threaded or the offsets need int64.
    kernels.warm_up(corpus.tokens.dtype, _STATE["off_dtype"])
    blocks = layout_blocks(corpus, params.block_tokens)
    tasks = [(dupe, b, int(blocks[b]), int(blocks[b + 1]))
             for dupe in range(params.dupe_factor) for b in range(len(blocks) - 1)]

    stats: dict = {}
    with process_pool(threads) as pool:
        # Phase 2
        progress = Progress("layout", unit="instances")
        # Descriptors go straight into growing arrays (realloc grows large ones in place): no
        # list of parts and no concatenated copy next to it.
        off_dtype = _STATE["off_dtype"]
        fields = {"a_tok": off_dtype, "la": np.uint16, "b_tok": off_dtype, "lb": np.uint16, "flags": np.uint8}
        guess = (len(corpus.sent_off) - 1) * params.dupe_factor // 2 + 1024
        grow = {k: _Grow(dt, guess) for k, dt in fields.items()}
        per_dupe = [0] * params.dupe_factor
        short_docs = truncated = forced = 0
        for res in imap_ordered(pool, _layout_task, tasks):
            made = len(res["flags"])
            per_dupe[res["dupe"]] += made
            for k in fields:
                grow[k].extend(res.pop(k))
            short_docs += res["short_docs"]
            truncated += res["truncated"]
            forced += res["forced_random"]
            progress.update(made)
        desc = {k: g.finish() for k, g in grow.items()}
        del grow
        n_inst = int(desc["flags"].size)
        if n_inst == 0:
            raise InputError(input_path, "no instances could be made")
        # Phase 3: one global shuffle, then blocks in parallel, written in order. Each block
        # gathers its descriptors through the permutation (no shuffled copy of them all).
        perm = np.arange(n_inst, dtype=np.int32 if n_inst < 1 << 31 else np.int64)
        _rng(params.seed, 3).shuffle(perm)
        t_layout = time.monotonic()
        cpu.append(_cpu_seconds())  # pool workers count once they exit: layout CPU is in "write"
        rss["layout"] = round(peak_rss_mb(), 1)
        LOG.info("layout: %d instances (%.1f s, peak RSS %.0f MB)", n_inst, t_layout - t_tok, rss["layout"])

        def write_tasks():
            for b, s in enumerate(range(0, n_inst, OUTPUT_BLOCK)):
                idx = perm[s:s + OUTPUT_BLOCK]
                yield (b, desc["a_tok"][idx], desc["la"][idx], desc["b_tok"][idx], desc["lb"][idx],
                       desc["flags"][idx])

        totals: dict[str, int] = {}
        progress = Progress("written", unit="instances")
        with atomic_path(output_path) as tmp:
            with open(tmp, "wb") as raw_fh:
                fh = _Sha256Writer(raw_fh)  # the digest training's run key uses (no second read)
                gz = GzipPieceWriter(fh)
                for piece, counts in imap_ordered(pool, _write_task, write_tasks()):
                    gz.write_piece(piece)
                    for key, v in counts.items():
                        totals[key] = totals.get(key, 0) + v
                    progress.update(counts["instances"], nbytes=len(piece[0]))
                gz.close()
            output_bytes = os.path.getsize(tmp)
            if output_bytes != fh.size:
                raise RuntimeError(f"{tmp}: wrote {fh.size} bytes, the file has {output_bytes}")
            raw_bytes = gz.size
    t_end = time.monotonic()
    cpu.append(_cpu_seconds())
    total_s = t_end - t_start
    masked = totals["masked"]
    stats = {
        "input": str(input_path), "output": str(output_path), "vocab_file": str(vocab_file),
        "subword_tokenizer": subword, "mecab_dic": mecab_dic, "params": asdict(params),
        "threads": threads,
        "lines": corpus.lines, "documents": corpus.n_docs, "sentences": int(len(corpus.sent_off) - 1),
        "tokens": n_tokens, "unk_tokens": unk, "unk_rate": unk / max(n_tokens, 1),
        "instances": n_inst, "instances_per_dupe": per_dupe,
        "instance_tokens": totals["tokens"],
        "mean_tokens_per_instance": totals["tokens"] / n_inst,
        "masked_tokens": masked,
        "masked_fraction_of_candidates": masked / max(totals["candidates"], 1),
        "masked_fraction_of_target": masked / max(totals["num_to_predict"], 1),
        "mean_masked_per_instance": masked / n_inst,
        "replacement_fractions": {
            "mask": totals["masked_as_mask"] / max(masked, 1),
            "keep": totals["masked_kept"] / max(masked, 1),
            "random": totals["masked_random"] / max(masked, 1),
        },
        "nsp_random_next_fraction": totals["random_next"] / n_inst,
        # one-sentence chunks always take a random B; the others do with probability 1/2
        "nsp_forced_random_fraction": forced / n_inst,
        "nsp_random_next_fraction_unforced": (totals["random_next"] - forced) / max(n_inst - forced, 1),
        "short_seq_fraction": short_docs / max(corpus.n_docs * params.dupe_factor, 1),
        "short_seq_instance_fraction": totals["short"] / n_inst,
        "truncated_instance_fraction": truncated / n_inst,
        "input_bytes": input_bytes, "output_bytes": output_bytes, "uncompressed_output_bytes": raw_bytes,
        "output_sha256": fh.sha.hexdigest(),
        "seconds": {"tokenize": round(t_tok - t_start, 3), "layout": round(t_layout - t_tok, 3),
                    "write": round(t_end - t_layout, 3), "total": round(total_s, 3)},
        # CPU seconds of all processes (main + workers); with --threads > 1 the layout workers'
        # time is only counted when the pool exits, i.e. within "layout_and_write".
        "cpu_seconds": {"tokenize": round(cpu[1] - cpu[0], 3),
                        "layout_and_write": round(cpu[3] - cpu[1], 3), "total": round(cpu[3] - cpu[0], 3)},
        "mb_per_cpu_s": input_bytes / 1e6 / max(cpu[3] - cpu[0], 1e-9),
        "mb_per_s": input_bytes / 1e6 / max(total_s, 1e-9),
        "mb_per_s_per_thread": input_bytes / 1e6 / max(total_s, 1e-9) / threads,
        "instances_per_s": n_inst / max(total_s, 1e-9),
        "peak_rss_mb": round(peak_rss_mb(), 1),
        "peak_rss_mb_by_phase": rss,
        "peak_rss_children_mb": round(_children_peak_rss_mb(), 1),
    }
    if stats_path:
        write_json(stats_path, stats)
    LOG.info("built %s: %d instances from %d documents (%.2f MB/s, peak RSS %.0f MB)", output_path,
             n_inst, corpus.n_docs, stats["mb_per_s"], stats["peak_rss_mb"])
    _STATE.clear()
    return stats


def create_token_shard(input_path, output_path, vocab_file, subword: str, mecab_dic: str, seq_length: int,
                       threads: int = 1, stats_path=None, chunk_bytes: int = CHUNK_BYTES, spm_file=None,
                       tokenizer_file=None) -> dict:
    """The shard's token shard (:mod:`scripts.pretraining_data.token_shards`), tokenised by
    :func:`read_corpus` as the TFRecords are."""
    t0 = time.monotonic()
    tokenizer = data_tokenizer(vocab_file, subword, mecab_dic, spm_file, tokenizer_file)
    corpus = read_corpus(input_path, tokenizer, max(1, int(threads)), chunk_bytes)
    tokenizer.clear_cache()
    return token_shards.write_token_shard(corpus, tokenizer, seq_length=seq_length, output=output_path,
                                          stats_path=stats_path or token_shard_stats_path(output_path),
                                          input_path=input_path, subword=subword, mecab_dic=mecab_dic, started=t0,
                                          extra={"threads": int(threads), "peak_rss_mb": round(peak_rss_mb(), 1)})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", required=True, help="sentence-per-line text, blank line between documents")
    ap.add_argument("--output", required=True, help="GZIP TFRecord file to write")
    ap.add_argument("--vocab-file", required=True)
    ap.add_argument("--subword-tokenizer", choices=("wordpiece", "character", "sentencepiece"), default="wordpiece")
    ap.add_argument("--spm-file", help="sentencepiece with MeCab: the tokenizer's spiece.model")
    ap.add_argument("--tokenizer-json", help="sentencepiece without MeCab (--mecab-dic none): its tokenizer.json")
    ap.add_argument("--output-format", choices=("tfrecord", "token-shards"), default="tfrecord",
                    help="token-shards: packed MLM rows (scripts.pretraining_data.token_shards), no masking")
    ap.add_argument("--mecab-dic", default="unidic_lite")
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--max-predictions-per-seq", type=int, default=20)
    ap.add_argument("--masked-lm-prob", type=float, default=0.15)
    ap.add_argument("--short-seq-prob", type=float, default=0.1)
    ap.add_argument("--dupe-factor", type=int, default=10)
    ap.add_argument("--seed", type=int, default=12345)
    ap.add_argument("--gzip-level", type=int, default=1,
                    help="deflate level of the output (default 1, fastest; TensorFlow's GZIP default is 6)")
    ap.add_argument("--compressor", choices=("auto", "zlib", "isal"), default="auto",
                    help="deflate implementation (auto: isal when installed, else zlib)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--layout-block-tokens", type=int, default=BLOCK_TOKENS,
                    help="documents are laid out in blocks of about this many tokens, each with its own "
                         "random stream (the output depends on it, not on --threads)")
    ap.add_argument("--chunk-bytes", type=int, default=CHUNK_BYTES,
                    help="bytes of text per tokenisation task (no effect on the output)")
    ap.add_argument("--stats", help="write counters and timings as JSON here")
    args = ap.parse_args(argv)
    params = Params(max_seq_length=args.max_seq_length, max_predictions_per_seq=args.max_predictions_per_seq,
                    masked_lm_prob=args.masked_lm_prob, short_seq_prob=args.short_seq_prob,
                    dupe_factor=args.dupe_factor, seed=args.seed, gzip_level=args.gzip_level,
                    compressor=args.compressor, block_tokens=args.layout_block_tokens)
    try:
        params.check()
    except ValueError as e:
        ap.error(str(e))
    if args.chunk_bytes < 1:
        ap.error("--chunk-bytes must be positive")
    if args.output_format == "token-shards":
        create_token_shard(args.input, args.output, args.vocab_file, args.subword_tokenizer, args.mecab_dic,
                           args.max_seq_length, args.threads, args.stats, args.chunk_bytes, args.spm_file,
                           args.tokenizer_json)
        return 0
    create_pretraining_data(args.input, args.output, args.vocab_file, args.subword_tokenizer,
                            args.mecab_dic, params, args.threads, args.stats, args.chunk_bytes, args.spm_file,
                            args.tokenizer_json)
    return 0


if __name__ == "__main__":
    run_cli(main)
