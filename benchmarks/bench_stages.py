"""Per-stage benchmark of the data pipeline, each stage through its real CLI in a subprocess.

    .venv/bin/python benchmarks/bench_stages.py                       # 30 MB generated corpus (3-4 min
                                                                      # on 2 cores)
    .venv/bin/python benchmarks/bench_stages.py --size-mb 10          # smaller, faster
    .venv/bin/python benchmarks/bench_stages.py --corpus FILE         # your own corpus
    .venv/bin/python benchmarks/bench_stages.py --stages tokenizer    # one or more stages only
    .venv/bin/python benchmarks/bench_stages.py --longtail 1.0        # more distinct words (below)
    .venv/bin/python benchmarks/bench_stages.py --stages pretraining --corpus wiki_sentences.txt \
        --max-seq-length 512 --max-predictions 76 --dupe-factor 30    # the Wikipedia settings
    .venv/bin/python benchmarks/bench_stages.py --json-out results.json --work-dir /tmp/bench

Stages (commands as the Snakemake rules run them; every run in a fresh subprocess):

1. **wiki** -- ``python -m scripts.corpus.wiki`` on a CirrusSearch content dump built from the
   corpus documents (bulk action line + page JSON with ``text``, ``source_text``, ``heading``,
   ``category``, ... and the artefacts the cleaning removes; gzip level 6), ``--threads 1`` and
   ``2``: MB/s of (uncompressed) JSON, per core, per CPU-second; MB/s of page ``text``; peak RSS.
2. **shard** -- ``python -m scripts.corpus.shard --format cc100`` on an ``.xz`` of the corpus,
   8 shards, ``--threads 1`` and ``2``: MB/s of text, peak RSS (xz preset ``--xz-preset``, default
   3 to keep the set-up short; decompression speed hardly depends on the preset).
   **sample** -- ``python -m scripts.corpus.sample`` over those 8 shards (half the lines).
3. **tokenizer** -- ``python -m scripts.tokenizers.alphabet`` (the real UniDic alphabet), then
   ``python -m scripts.tokenizers.train_wordpiece`` (vocab 32768, limit_alphabet 7012) on a
   sentence-per-line sample of the corpus of ``--tokenizer-mb`` (36.6 MB: the reference
   recipe's trainer took 76 s on one core for that size; target <= 25 s on 2 cores). Runs
   ``--tokenizer-threads`` (default 2 2 1): wall, CPU, RSS and the vocab.txt sha256 of every run
   (must all be equal: across reruns and thread counts).
4. **pretraining** -- ``python -m scripts.pretraining_data.create`` (wordpiece with the vocab of
   stage 3, character with ``scripts.tokenizers.char_vocab`` 7027; seq 128, max_pred 19, dupe 5,
   masked 0.15, short 0.1 -- the CC-100 settings; ``--max-seq-length`` etc. change them) with
   ``--threads 1`` and ``2``: MB/s, MB/s/core, MB/CPU-s, instances/s, peak RSS, phase times;
   the MeCab-only ceiling (mecab-python3 ``-Owakati``, unidic-lite, one ``parse`` per line,
   nothing else) on the same corpus in the same run, before and after the runs (the machine's
   speed drifts; ratios use the mean); ratios to the ceiling and to the reference scripts
   (0.165 MB/s/core); peak RSS of wordpiece/1 thread at the two ``--rss-sizes`` and the slope
   in bytes of RSS per input byte (reference ~54).

Measurement: each command runs under ``subprocess.Popen`` and is reaped with ``os.wait4``, whose
rusage covers exactly that process tree (the process and the workers it waited for): user+sys
CPU seconds and ``ru_maxrss`` = peak RSS of the *largest single process* of the tree. For
multi-process runs the tree's total memory is reported as well: the peak of the summed PSS of
its processes (/proc/<pid>/smaps_rollup, sampled every 0.2 s; shared and copy-on-write pages
split between the processes that share them, so counted once), close to what a cgroup/SLURM
memory limit charges; the summed RSS (which counts shared pages once per process) is in the
JSON output. ``MB/s/core`` is MB/s divided by ``--threads``; ``MB/CPU-s`` is input MB per
CPU-second of the whole tree, the fair figure on a machine other jobs share. Every row shows the
1-min load average before>after the run (it includes the benchmark's own processes and lags)
and, after the slash, the cores used on average by *other* processes during the run (busy time
of all cores from /proc/stat minus this run's and this benchmark's CPU time): read a row with
more than ~0.1 there as disturbed.

Text: the repository's hand-written ``sample/source/*.txt`` and, when present, JGLUE text under
``/work/shared/jglue`` (``--jglue-dir``; JSQuAD Wikipedia paragraphs, JSTS/JNLI captions,
JCommonsenseQA questions), as documents, repeated in a new shuffled order per pass up to the
size asked for. The output says how much distinct text there is: with repetition, word types
repeat more than in a real corpus, which flatters word caches (MeCab is still run on every
line) and makes the tokenizer's word-count table smaller than a real sample's. ``--longtail P``
replaces the katakana runs of a fraction P of the generated lines by random katakana (new word
types, like the long tail of names in a real corpus: at P=1 a 36.6 MB sample has ~300k distinct
MeCab words instead of ~21k) to measure that effect.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import json
import lzma
import os
import platform
import random
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scripts.tools.make_sample import (Article, WikiBuilder, parse_articles,  # noqa: E402
                                 parse_web_docs)

# Reference recipe figures (cl-tohoku scripts), as given in docs/benchmarks.md.
REF = {
    "pd_mb_s_core": 0.165,           # create_pretraining_data, MB/s per core
    "pd_inst_s": 2100,               # instances/s
    "pd_rss_slope": 54,              # bytes of RSS per input byte
    "mecab_ceiling_mb_s": 3.9,       # MeCab-only, MB/s on one core
    "tok_seconds": 76.0,             # tokenizer training on 36.6 MB, one core
    "tok_target_seconds": 25.0,      # >= 3x faster
    "wiki_json_mb_s_core": 3.0,      # Wikipedia cleaning, MB/s of JSON on one core
}
DEFAULT_JGLUE = Path("/work/shared/jglue")
SAMPLE_SOURCE = ROOT / "sample" / "source"


# ---------------------------------------------------------------------------------------------
# Machine facts and measurement
# ---------------------------------------------------------------------------------------------


def load1() -> float:
    return os.getloadavg()[0]


def uptime_line() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        la = os.getloadavg()
        return f"load average: {la[0]:.2f}, {la[1]:.2f}, {la[2]:.2f}"


def machine_facts() -> dict:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem_gb = 0.0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = int(line.split()[1]) / 2**20
    except OSError:
        pass
    versions = {}
    for mod, name in (("MeCab", "mecab-python3"), ("tokenizers", "tokenizers"), ("numpy", "numpy"),
                      ("unidic_lite", "unidic-lite"), ("isal", "isal")):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # noqa: BLE001 - optional packages
            versions[name] = None
    return {
        "nproc": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": model,
        "mem_total_gb": round(mem_gb, 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "usr_bin_time": shutil.which("time") or (os.path.exists("/usr/bin/time") and "/usr/bin/time") or None,
        "uptime": uptime_line(),
    }


def _tree_pids(root: int) -> list[int]:
    """``root`` and its descendants (from /proc/*/stat)."""
    parent: dict[int, int] = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat", "rb") as fh:
                s = fh.read()
        except OSError:
            continue
        rest = s[s.rfind(b")") + 2:].split()
        parent[int(d)] = int(rest[1])
    out, frontier = [root], [root]
    children: dict[int, list[int]] = {}
    for pid, ppid in parent.items():
        children.setdefault(ppid, []).append(pid)
    while frontier:
        nxt = []
        for p in frontier:
            nxt.extend(children.get(p, ()))
        out.extend(nxt)
        frontier = nxt
    return out


def _pss_rss_kb(pid: int) -> tuple[int, int]:
    """(Pss, Rss) of one process in kB from /proc/<pid>/smaps_rollup (Rss from statm if absent)."""
    pss = rss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup", "rb") as fh:
            for line in fh:
                if line.startswith(b"Pss:"):
                    pss = int(line.split()[1])
                elif line.startswith(b"Rss:"):
                    rss = int(line.split()[1])
        return pss, rss
    except (OSError, ValueError, IndexError):
        pass
    try:
        with open(f"/proc/{pid}/statm", "rb") as fh:
            rss = int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, ValueError, IndexError):
        pass
    return rss, rss


class TreeRssSampler(threading.Thread):
    """Samples the memory of a process tree until stopped and keeps the maxima of the summed
    PSS (shared pages split between the processes sharing them, so fork workers' copy-on-write
    pages count once: close to what a cgroup/SLURM memory limit charges) and of the summed RSS."""

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_pss_kb = self.peak_rss_kb = self.peak_procs = 0
        self.root_cpu_s = 0.0  # CPU seconds of the root process alone, as last seen
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                with open(f"/proc/{self.pid}/stat", "rb") as fh:
                    f = fh.read().rsplit(b")", 1)[1].split()
                self.root_cpu_s = (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, ValueError, IndexError):
                pass
            pss = rss = n = 0
            for p in _tree_pids(self.pid):
                a, b = _pss_rss_kb(p)
                pss, rss, n = pss + a, rss + b, n + (b > 0)
            self.peak_pss_kb = max(self.peak_pss_kb, pss)
            if rss > self.peak_rss_kb:
                self.peak_rss_kb, self.peak_procs = rss, n
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()


_HZ = os.sysconf("SC_CLK_TCK")


def busy_cpu_seconds() -> float:
    """CPU seconds the whole machine has been busy (all cores; /proc/stat), or 0 if unknown."""
    try:
        with open("/proc/stat") as fh:
            f = [int(x) for x in fh.readline().split()[1:9]]
    except (OSError, ValueError):
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = f
    return (user + nice + system + irq + softirq + steal) / _HZ


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def measure(cmd: list[str], log_path: Path, what: str, verbose: bool = True) -> dict:
    """Run ``cmd`` (cwd: repo root) and return wall/CPU/RSS figures of its process tree."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("RAYON_RS_NUM_CPUS", None)
    env.pop("RAYON_NUM_THREADS", None)
    la0 = load1()
    if verbose:
        print(f"  running {what} (load {la0:.2f}) ...", end="", flush=True)
    busy0, self0 = busy_cpu_seconds(), _self_cpu()
    with open(log_path, "wb") as log:
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        sampler = TreeRssSampler(proc.pid)
        sampler.start()
        _, status, ru = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        sampler.stop()
    busy1, self1 = busy_cpu_seconds(), _self_cpu()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log_path.read_text(encoding="utf-8", errors="replace")[-4000:]
        raise SystemExit(f"\n{what} failed (exit {proc.returncode}): {' '.join(cmd)}\n{tail}")
    res = {
        "cmd": " ".join(cmd),
        "wall_s": wall,
        "user_s": ru.ru_utime,
        "sys_s": ru.ru_stime,
        "cpu_s": ru.ru_utime + ru.ru_stime,
        "peak_rss_mb": ru.ru_maxrss / 1024.0,           # largest single process of the tree
        # sampled sums over the tree (a short single process may end between two samples)
        "tree_pss_mb": max(sampler.peak_pss_kb / 1024.0, ru.ru_maxrss / 1024.0),
        "tree_rss_mb": max(sampler.peak_rss_kb / 1024.0, ru.ru_maxrss / 1024.0),
        "tree_procs": sampler.peak_procs,
        # CPU of the main process alone (last 0.2 s sample before it exited: a lower bound)
        "main_cpu_s": sampler.root_cpu_s,
        "load_before": la0,
        "load_after": load1(),
        # cores used on average by everything else on the machine during the run (busy CPU
        # time of all cores minus this run's tree and this benchmark process)
        "other_cores": max(0.0, (busy1 - busy0) - (ru.ru_utime + ru.ru_stime) - (self1 - self0)) / wall,
    }
    if verbose:
        print(f" {wall:.1f} s wall, {res['cpu_s']:.1f} CPU-s, peak RSS {res['peak_rss_mb']:.0f} MB "
              f"(load {res['load_after']:.2f}, other processes {res['other_cores']:.2f} cores)", flush=True)
    return res


def py(module: str, *args) -> list[str]:
    return [sys.executable, "-m", module, *[str(a) for a in args]]


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def table(title: str, headers: list[str], rows: list[list], notes: list[str] = ()) -> str:
    cells = [[str(h) for h in headers]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    out = [f"\n{title}", "  " + "  ".join(h.rjust(w) for h, w in zip(cells[0], widths)),
           "  " + "  ".join("-" * w for w in widths)]
    for r in cells[1:]:
        out.append("  " + "  ".join(c.rjust(w) for c, w in zip(r, widths)))
    out.extend(f"  {n}" for n in notes)
    text = "\n".join(out)
    print(text, flush=True)
    return text


def load_str(r: dict) -> str:
    """1-min load average before>after the run / cores used by other processes during it."""
    return f"{r['load_before']:.2f}>{r['load_after']:.2f}/{r['other_cores']:.2f}"


# ---------------------------------------------------------------------------------------------
# Text pool and generated inputs
# ---------------------------------------------------------------------------------------------


@dataclass
class Doc:
    kind: str
    title: str
    paragraphs: list[str]
    article: Article | None = None   # for the Wikipedia dump (sections, categories, flags)
    nbytes: int = field(init=False)

    def __post_init__(self):
        self.nbytes = sum(len(p.encode("utf-8")) + 1 for p in self.paragraphs) + 1


_MATH = re.compile(r"\$([^$]+)\$")
_SECTION_NAMES = ["概要", "歴史", "特徴", "構成", "活動", "評価", "影響", "その他"]


def _title_of(text: str) -> str:
    t = re.split(r"[、。！？!?「」（）()\s]", text, maxsplit=1)[0]
    return (t or text)[:16]


def _article(title: str, paragraphs: list[str], categories: list[str], rng: random.Random) -> Article:
    lead, rest = paragraphs[:1], paragraphs[1:]
    sections = []
    names = iter(rng.sample(_SECTION_NAMES, len(_SECTION_NAMES)))
    i = 0
    while i < len(rest):
        k = rng.randint(2, 4)
        sections.append((next(names, f"節{i}"), rest[i:i + k]))
        i += k
    return Article(title, categories, set(), lead, sections)


def load_pool(jglue_dir: Path | None, seed: int = 0) -> tuple[list[Doc], dict]:
    """Documents from sample/source (and JGLUE when present), each distinct text once."""
    rng = random.Random(seed)
    docs: list[Doc] = []
    for art in parse_articles(SAMPLE_SOURCE / "wiki_articles.txt"):
        paras = [_MATH.sub(r"\1", p) for p in art.lead + [p for _, ps in art.sections for p in ps]]
        docs.append(Doc("sample-wiki", art.title, paras, art))
    for d in parse_web_docs(SAMPLE_SOURCE / "web_docs.txt"):
        docs.append(Doc("sample-web", _title_of(d.paragraphs[0]), list(d.paragraphs)))
    used = []
    if jglue_dir is not None and (jglue_dir / "datasets").is_dir():
        ds = jglue_dir / "datasets"
        seen: set[str] = set()
        for f in sorted(ds.glob("jsquad-*/*.json")):
            for a in json.loads(f.read_text(encoding="utf-8"))["data"]:
                paras = []
                for p in a["paragraphs"]:
                    ctx = p["context"]
                    ctx = ctx.split(" [SEP] ", 1)[1] if " [SEP] " in ctx else ctx
                    if ctx not in seen:
                        seen.add(ctx)
                        paras.append(ctx)
                # long JSQuAD articles become several pages of 3-12 paragraphs
                i = 0
                while i < len(paras):
                    k = rng.randint(3, 12)
                    chunk = paras[i:i + k]
                    title = a["title"] if i == 0 else f"{a['title']}の{_SECTION_NAMES[(i // 3) % 8]}"
                    docs.append(Doc("jsquad", title, chunk, _article(title, chunk, [a["title"]], rng)))
                    i += k
            used.append(f.relative_to(ds).as_posix())
        for pattern, keys, kind, lo, hi in (("jsts-*/*.json", ("sentence1", "sentence2"), "captions", 3, 8),
                                            ("jnli-*/*.json", ("sentence1", "sentence2"), "captions", 3, 8),
                                            ("jcommonsenseqa-*/*.json", ("question",), "questions", 4, 12)):
            sents = []
            for f in sorted(ds.glob(pattern)):
                for line in f.read_text(encoding="utf-8").splitlines():
                    if not line.strip():
                        continue
                    obj = json.loads(line)
                    for k in keys:
                        s = obj.get(k)
                        if isinstance(s, str) and s and s not in seen:
                            seen.add(s)
                            sents.append(s)
                used.append(f.relative_to(ds).as_posix())
            i = 0
            while i < len(sents):
                k = rng.randint(lo, hi)
                docs.append(Doc(kind, _title_of(sents[i]), sents[i:i + k]))
                i += k
    for d in docs:
        if d.article is None:
            d.article = _article(d.title, d.paragraphs, [d.kind], rng)
    by_kind: dict[str, list[int]] = {}
    for d in docs:
        by_kind.setdefault(d.kind, [0, 0])
        by_kind[d.kind][0] += 1
        by_kind[d.kind][1] += d.nbytes
    info = {"documents": len(docs), "distinct_bytes": sum(d.nbytes for d in docs),
            "by_kind": {k: {"documents": v[0], "bytes": v[1]} for k, v in sorted(by_kind.items())},
            "jglue_files": used}
    return docs, info


def load_corpus_pool(path: Path) -> tuple[list[Doc], dict]:
    """Documents of a user corpus (line per paragraph/sentence, blank line between documents)."""
    from scripts.shared.common import iter_lines

    docs, cur, distinct = [], [], set()
    for _, line in iter_lines(path):
        line = line.strip()
        if line:
            cur.append(line)
            distinct.add(hashlib.blake2b(line.encode("utf-8"), digest_size=8).digest())
        elif cur:
            docs.append(Doc("corpus", _title_of(cur[0]), cur))
            cur = []
    if cur:
        docs.append(Doc("corpus", _title_of(cur[0]), cur))
    rng = random.Random(0)
    for d in docs:
        d.article = _article(d.title, d.paragraphs, ["corpus"], rng)
    return docs, {"documents": len(docs), "bytes": os.path.getsize(path),
                  "distinct_lines": len(distinct)}


def doc_stream(pool: list[Doc], seed: int, first_in_order: bool = False):
    """Endless stream of the pool's documents, in a new shuffled order every pass."""
    rng = random.Random(seed)
    order = list(range(len(pool)))
    p = 0
    while True:
        if p or not first_in_order:
            rng.shuffle(order)
        for i in order:
            yield p, pool[i]
        p += 1


_KATA_RUN = re.compile(r"[\u30a1-\u30fa]{2,}")
_KATA = [chr(c) for c in range(0x30a1, 0x30f4)]


class LongTail:
    """Replaces the katakana runs of a fraction of the lines by random katakana strings of the
    same length: new word types, like the long tail of names in a real corpus (without it, a
    repeated pool has only the word types of its distinct text)."""

    def __init__(self, fraction: float, seed: int):
        self.fraction, self.rng = fraction, random.Random(seed)

    def _novel(self, m) -> str:
        return "".join(self.rng.choices(_KATA, k=len(m.group())))

    def __call__(self, line: str) -> str:
        if self.fraction and self.rng.random() < self.fraction:
            return _KATA_RUN.sub(self._novel, line)
        return line


def write_corpus(path: Path, pool: list[Doc], target_bytes: int, seed: int,
                 first_in_order: bool = False, longtail: float = 0.0) -> dict:
    """Paragraph per line, blank line after every document, until ``target_bytes``."""
    n = docs = lines = passes = 0
    tail = LongTail(longtail, seed + 7)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for p, d in doc_stream(pool, seed, first_in_order):
            if n >= target_bytes:
                break
            fh.write("\n".join(map(tail, d.paragraphs)) + "\n\n")
            n += d.nbytes
            docs += 1
            lines += len(d.paragraphs)
            passes = p + 1
    return {"path": str(path), "bytes": os.path.getsize(path), "documents": docs, "lines": lines,
            "passes": passes}


_SENT_END = re.compile(r"(?<=[。！？!?])(?![」』）)。！？!?])")


def write_sentences(path: Path, pool: list[Doc], target_bytes: int, seed: int, longtail: float = 0.0) -> dict:
    """Sentence per line (split after 。！？, 10-200 characters, like the Wikipedia corpus),
    no blank lines: the shape of ``corpus_sampled.txt``. Cut at ``target_bytes`` exactly on a
    line boundary at or below it. ``longtail``: see :class:`LongTail`."""
    tail = LongTail(longtail, seed + 7)
    n = lines = passes = 0

    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        for p, d in doc_stream(pool, seed):
            passes = p + 1
            for para in d.paragraphs:
                for s in _SENT_END.split(para):
                    s = s.strip()
                    if not 10 <= len(s) <= 200:
                        continue
                    s = tail(s)
                    b = len(s.encode("utf-8")) + 1
                    if n + b > target_bytes:
                        return {"path": str(path), "bytes": n, "lines": lines, "passes": passes}
                    fh.write(s + "\n")
                    n += b
                    lines += 1


# -- Wikipedia CirrusSearch dump ----------------------------------------------------------------

_LINKABLE = re.compile(r"[\u30a1-\u30ff]{3,}|[\u4e00-\u9fff]{2,4}")


class DumpBuilder(WikiBuilder):
    """make_sample's page builder (artefacts: boilerplate, hatnotes, reference markers, templates,
    odd whitespace, invisible characters, half-/full-width forms, trailing 脚注/出典/... sections),
    plus the bulky fields of a real content dump (``source_text`` wikitext, ``auxiliary_text``,
    ``outgoing_link``, ``external_link``), so that JSON bytes per text byte are realistic."""

    def _wikitext(self, art: Article) -> tuple[str, list[str]]:
        rng = self.rng
        links: list[str] = []

        def linkify(p: str) -> str:
            def sub(m):
                if rng.random() < 0.25:
                    links.append(m.group())
                    return f"[[{m.group()}]]"
                return m.group()

            p = _LINKABLE.sub(sub, p)
            if rng.random() < 0.4:
                p += (f"<ref>{{{{Cite web|url=https://www.example.jp/{rng.randint(1000, 99999)}|"
                      f"title={art.title}|publisher=みなと新聞|"
                      f"accessdate=2022-{rng.randint(1, 12):02d}-01}}}}</ref>")
            return p

        parts = []
        if rng.random() < 0.5:
            parts.append(f"{{{{Infobox\n| 名称 = {art.title}\n| 画像 = {art.title}.jpg\n| 所在地 = 日本\n}}}}")
        lead = [linkify(p) for p in art.lead]
        if lead:
            lead[0] = f"'''{art.title}'''" + lead[0]
        parts.extend(lead)
        for h, ps in art.sections:
            parts.append(f"== {h} ==")
            parts.extend(linkify(p) for p in ps)
        parts.append("== 脚注 ==\n{{Reflist}}")
        parts.append("== 関連項目 ==\n" + "\n".join(f"* [[{t}]]" for t in rng.sample(self.titles, 3)))
        parts.extend(f"[[Category:{c}]]" for c in art.categories)
        return "\n\n".join(parts), links

    def page(self, art: Article) -> dict:
        page = self._page(art)
        source, links = self._wikitext(art)
        paras = art.lead + [p for _, ps in art.sections for p in ps]
        page.update(
            source_text=source,
            auxiliary_text=[p[:60] for p in paras[:2]] if self.rng.random() < 0.5 else [],
            outgoing_link=sorted(set(links))[:100],
            external_link=[f"https://www.example.jp/{self.rng.randint(1000, 99999)}"],
            defaultsort=False, coordinates=[], version_type="external",
            create_timestamp="2010-01-01T00:00:00Z",
        )
        return page


def _merged_article(docs: list[Doc]) -> Article:
    """One page from several documents: the first one's title, lead and categories; the others'
    paragraphs as further sections."""
    first = docs[0].article
    sections = list(first.sections)
    for d in docs[1:]:
        a = d.article
        sections.append((_title_of(a.lead[0]) if a.lead else d.title, a.lead))
        sections.extend(a.sections)
    return Article(first.title, list(first.categories), set(first.flags), list(first.lead), sections)


def write_cirrus_dump(path: Path, pool: list[Doc], target_text_bytes: int, seed: int) -> dict:
    """A gzip CirrusSearch bulk dump whose pages carry about ``target_text_bytes`` of paragraph
    text (the documents of the corpus stream, in the same order). Short documents are merged
    into pages of 2-20 KB of text (jawiki articles average several KB); pages flagged as
    disambiguation/list pages in sample/source stay alone (the cleaning drops them)."""
    builder = DumpBuilder([d.article for d in pool], seed=seed)
    rng = random.Random(seed)
    text_in = json_bytes = page_text_bytes = pages = 0
    page_id = 1000
    stream = doc_stream(pool, seed)
    with open(path, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0,
                                                compresslevel=6) as gz:
        while text_in < target_text_bytes:
            want = rng.randint(2000, 20000)
            group, size = [], 0
            while size < want:
                _, d = next(stream)
                group.append(d)
                size += d.nbytes
                if d.article.flags:
                    break
            if len(group) > 1 and group[-1].article.flags:
                group.pop()  # stays out of this page (and out of the dump: the stream moves on)
                size = sum(d.nbytes for d in group)
            page = builder.page(group[0].article if len(group) == 1 else _merged_article(group))
            page_id += rng.randint(1, 40)
            page["version"] = 60_000_000 + page_id * 7
            action = json.dumps({"index": {"_type": "_doc", "_id": str(page_id)}}, separators=(",", ":"))
            body = json.dumps(page, ensure_ascii=False, separators=(",", ":"))
            data = (action + "\n" + body + "\n").encode("utf-8")
            gz.write(data)
            json_bytes += len(data)
            page_text_bytes += len(page["text"].encode("utf-8"))
            text_in += size
            pages += 1
    return {"path": str(path), "bytes_gz": os.path.getsize(path), "json_bytes": json_bytes,
            "text_field_bytes": page_text_bytes, "pages": pages}


def write_xz(src: Path, dst: Path, preset: int) -> dict:
    t0 = time.perf_counter()
    with open(src, "rb") as fi, lzma.open(dst, "wb", format=lzma.FORMAT_XZ, check=lzma.CHECK_CRC64,
                                          preset=preset) as fo:
        shutil.copyfileobj(fi, fo, 1 << 20)
    return {"path": str(dst), "bytes": os.path.getsize(dst), "preset": preset,
            "seconds": time.perf_counter() - t0}


# ---------------------------------------------------------------------------------------------
# Stages
# ---------------------------------------------------------------------------------------------


def stage_wiki(ctx) -> dict:
    dump = ctx.inputs["wiki_dump"]
    rows, runs, digests = [], [], set()
    for t in ctx.args.threads:
        out = ctx.work / f"wiki_t{t}" / "corpus.txt.gz"
        stats_path = out.with_name("corpus.stats.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        r = measure(py("scripts.corpus.wiki", "--input", dump["path"], "--output", out, "--stats", stats_path,
                       "--min-sentence-length", 10, "--max-sentence-length", 200, "--split-sentences",
                       "--threads", t), ctx.log(f"wiki_t{t}"), f"corpus_wiki --threads {t}")
        st = json.loads(stats_path.read_text(encoding="utf-8"))
        mb = st["bytes_in_uncompressed"] / 1e6
        text_mb = dump["text_field_bytes"] / 1e6
        digests.add(sha256_file(out))
        r.update(threads=t, json_mb=mb, text_mb=text_mb, mb_s=mb / r["wall_s"], mb_s_core=mb / r["wall_s"] / t,
                 mb_cpu_s=mb / r["cpu_s"], text_mb_s_core=text_mb / r["wall_s"] / t,
                 pages=st["pages_read"], pages_written=st["pages_written"],
                 sentences=st["sentences_written"], out_mb=st["bytes_out_uncompressed"] / 1e6,
                 script_seconds=st["seconds"])
        runs.append(r)
        rows.append([t, f"{mb:.1f}", f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}", f"{r['main_cpu_s']:.1f}",
                     f"{r['mb_s']:.2f}",
                     f"{r['mb_s_core']:.2f}", f"{r['mb_cpu_s']:.2f}", f"{r['text_mb_s_core']:.2f}",
                     f"{r['peak_rss_mb']:.0f}", f"{r['tree_pss_mb']:.0f}", f"{st['sentences_written']:,}",
                     f"{r['mb_s_core'] / REF['wiki_json_mb_s_core']:.2f}x", load_str(r)])
    ctx.report.append(table(
        f"1. Wikipedia cleaning (scripts.corpus.wiki): {dump['pages']:,} pages, {dump['json_bytes'] / 1e6:.1f} MB "
        f"JSON ({dump['bytes_gz'] / 1e6:.1f} MB gz), page text {dump['text_field_bytes'] / dump['json_bytes']:.0%} "
        f"of the JSON",
        ["thr", "JSON MB", "wall s", "CPU s", "main CPU s", "MB/s", "MB/s/core", "MB/CPU-s", "text MB/s/core", "RSS MB",
         "tree PSS MB", "sentences", "vs ref", "load/other"], rows,
        [f"MB = uncompressed JSON bytes; main CPU s: the main process alone (reads, parses JSON, writes; "
         f"the rest is the cleaning workers); vs ref: MB/s/core against the reference ~{REF['wiki_json_mb_s_core']} "
         f"MB/s of JSON on one core; output identical across thread counts: {len(digests) == 1}"]))
    return {"dump": dump, "runs": runs, "identical_outputs": len(digests) == 1}


def stage_shard(ctx) -> dict:
    xz = ctx.inputs["corpus_xz"]
    text_mb = ctx.inputs["corpus"]["bytes"] / 1e6
    rows, runs, digests = [], [], set()
    for t in ctx.args.threads:
        out_dir = ctx.work / f"shards_t{t}"
        out_dir.mkdir(parents=True, exist_ok=True)
        stats_path = out_dir / "shards.stats.json"
        r = measure(py("scripts.corpus.shard", "--input", xz["path"], "--format", "cc100", "--output-dir", out_dir,
                       "--num-shards", 8, "--seed", 0, "--no-split-sentences", "--min-sentence-length", 0,
                       "--max-sentence-length", 0, "--stats", stats_path, "--threads", t),
                    ctx.log(f"shard_t{t}"), f"corpus_shard --threads {t}")
        st = json.loads(stats_path.read_text(encoding="utf-8"))
        mb = st["bytes_in_uncompressed"] / 1e6
        h = hashlib.sha256()
        for i in range(1, 9):
            h.update(sha256_file(out_dir / f"corpus_{i:02d}.txt").encode())
        digests.add(h.hexdigest())
        r.update(threads=t, text_mb=mb, xz_mb=xz["bytes"] / 1e6, mb_s=mb / r["wall_s"],
                 mb_s_core=mb / r["wall_s"] / t, mb_cpu_s=mb / r["cpu_s"], documents=st["documents"],
                 lines=st["lines_written"], script_seconds=st["seconds"])
        runs.append(r)
        rows.append([t, f"{mb:.1f}", f"{xz['bytes'] / 1e6:.1f}", f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}",
                     f"{r['main_cpu_s']:.1f}",
                     f"{r['mb_s']:.2f}", f"{r['mb_s_core']:.2f}", f"{r['mb_cpu_s']:.2f}", f"{r['peak_rss_mb']:.0f}",
                     f"{r['tree_pss_mb']:.0f}", f"{st['documents']:,}", load_str(r)])
    ctx.report.append(table(
        f"2. Sharding (scripts.corpus.shard --format cc100, 8 shards) of a {text_mb:.1f} MB corpus as .xz "
        f"(preset {xz['preset']})",
        ["thr", "text MB", "xz MB", "wall s", "CPU s", "main CPU s", "MB/s", "MB/s/core", "MB/CPU-s", "RSS MB",
         "tree PSS MB",
         "documents", "load/other"], rows,
        [f"MB = uncompressed text; main CPU s: the main process alone (xz, reading, writing shards); "
         f"shards identical across thread counts: {len(digests) == 1}"]))
    res = {"xz": xz, "runs": runs, "identical_outputs": len(digests) == 1}

    # corpus_sample over the shards of the last run (half of the lines)
    last = runs[-1]
    shards = [ctx.work / f"shards_t{last['threads']}" / f"corpus_{i:02d}.txt" for i in range(1, 9)]
    want = last["lines"] // 2
    out = ctx.work / "corpus_sampled.txt"
    r = measure(py("scripts.corpus.sample", "--input", *shards, "--output", out, "--num-lines", want,
                   "--seed", 0), ctx.log("sample"), "corpus_sample")
    mb = sum(p.stat().st_size for p in shards) / 1e6
    r.update(input_mb=mb, lines=want, output_mb=out.stat().st_size / 1e6, mb_s=mb / r["wall_s"],
             mb_cpu_s=mb / r["cpu_s"])
    ctx.report.append(table(
        "2b. Tokenizer sample (scripts.corpus.sample) over the 8 shards",
        ["input MB", "lines kept", "output MB", "wall s", "CPU s", "MB/s", "MB/CPU-s", "RSS MB", "load/other"],
        [[f"{mb:.1f}", f"{want:,}", f"{r['output_mb']:.1f}", f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}",
          f"{r['mb_s']:.2f}", f"{r['mb_cpu_s']:.2f}", f"{r['peak_rss_mb']:.0f}", load_str(r)]],
        ["two passes over the input (count, then select); MB/s of input"]))
    res["sample"] = r
    return res


def ensure_alphabet(ctx) -> tuple[Path, dict | None]:
    path = ctx.work / "alphabet" / "unidic_lite.txt"
    if path.exists():
        return path, None
    path.parent.mkdir(parents=True, exist_ok=True)
    r = measure(py("scripts.tokenizers.alphabet", "--output", path), ctx.log("alphabet"), "make_alphabet")
    r["characters"] = sum(1 for _ in open(path, encoding="utf-8"))
    return path, r


def stage_tokenizer(ctx) -> dict:
    alphabet, ra = ensure_alphabet(ctx)
    sample = ctx.inputs["tok_sample"]
    mb = sample["bytes"] / 1e6
    rows, runs = [], []
    for i, t in enumerate(ctx.args.tokenizer_threads):
        out_dir = ctx.work / f"tok_run{i + 1}_t{t}"
        r = measure(py("scripts.tokenizers.train_wordpiece", "--input", sample["path"], "--output-dir", out_dir,
                       "--mecab-dic", "unidic_lite", "--vocab-size", 32768, "--limit-alphabet", 7012,
                       "--initial-alphabet-file", alphabet, "--num-unused-tokens", 10, "--wordpieces-prefix", "##",
                       "--threads", t), ctx.log(f"tok_run{i + 1}"), f"train_tokenizer run {i + 1} --threads {t}")
        st = json.loads((out_dir / "train.stats.json").read_text(encoding="utf-8"))
        sha = sha256_file(out_dir / "vocab.txt")
        r.update(threads=t, input_mb=mb, vocab_sha256=sha, vocab_size=st["vocab_size"],
                 words=st["words"], unique_words=st["unique_words"], segment_s=st["segment_seconds"],
                 train_s=st["train_seconds"], script_seconds=st["seconds"], mb_cpu_s=mb / r["cpu_s"],
                 vocab_path=str(out_dir / "vocab.txt"))
        runs.append(r)
        rows.append([i + 1, t, f"{mb:.1f}", f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}", f"{r['segment_s']:.1f}",
                     f"{r['train_s']:.1f}", f"{r['peak_rss_mb']:.0f}", f"{r['tree_pss_mb']:.0f}",
                     f"{r['unique_words']:,}", f"{r['vocab_size']:,}", sha[:16],
                     f"{REF['tok_seconds'] / r['wall_s']:.1f}x", load_str(r)])
    identical = len({r["vocab_sha256"] for r in runs}) == 1
    notes = [f"reference: {REF['tok_seconds']:.0f} s on one core for 36.6 MB (non-deterministic); "
             f"target <= {REF['tok_target_seconds']:.0f} s (>= 3x) on 2 cores",
             f"vocab.txt byte-identical over the {len(runs)} runs: {identical}"]
    if ra:
        notes.append(f"alphabet (scripts.tokenizers.alphabet): {ra['characters']:,} characters, {ra['wall_s']:.1f} s, "
                     f"peak RSS {ra['peak_rss_mb']:.0f} MB")
    ctx.report.append(table(
        f"3. Tokenizer training (scripts.tokenizers.train_wordpiece, vocab 32768, limit_alphabet 7012) on a "
        f"{mb:.1f} MB sentence-per-line sample ({sample['lines']:,} lines"
        + (f"; long tail: katakana randomised in {sample['longtail']:.0%} of them" if sample.get("longtail") else "")
        + ")",
        ["run", "thr", "MB", "wall s", "CPU s", "MeCab s", "trainer s", "RSS MB", "tree PSS MB", "distinct words",
         "vocab", "vocab sha256", "vs ref", "load/other"], rows, notes))
    return {"sample": sample, "alphabet": ra, "runs": runs, "identical_vocab": identical}


CEILING_CODE = r"""
import sys
sys.path.insert(0, sys.argv[2])
from scripts.shared.common import mecab_tagger
parse = mecab_tagger("unidic_lite").parse
with open(sys.argv[1], "rb") as fh:
    for raw in fh:
        parse(raw.decode("utf-8").rstrip("\n"))
"""


def ensure_vocabs(ctx) -> tuple[Path, Path]:
    tok = ctx.results.get("tokenizer")
    if tok:
        wp = Path(tok["runs"][0]["vocab_path"])
    else:  # train one on a smaller sample (not measured)
        alphabet, _ = ensure_alphabet(ctx)
        out_dir = ctx.work / "tok_for_pd"
        if not (out_dir / "vocab.txt").exists():
            sample = ctx.work / "tok_sample_small.txt"
            write_sentences(sample, ctx.pool, int(min(ctx.args.tokenizer_mb, 10) * 1e6), seed=3)
            measure(py("scripts.tokenizers.train_wordpiece", "--input", sample, "--output-dir", out_dir, "--vocab-size", 32768,
                       "--limit-alphabet", 7012, "--initial-alphabet-file", alphabet, "--threads", 2),
                    ctx.log("tok_for_pd"), "train_tokenizer (vocabulary for stage 4, not a measurement)")
        wp = out_dir / "vocab.txt"
    ch = ctx.work / "vocab_character.txt"
    subprocess.run(py("scripts.tokenizers.char_vocab", "--input", wp, "--output", ch, "--vocab-size", 7027),
                   cwd=ROOT, check=True, capture_output=True,
                   env=dict(os.environ, PYTHONPATH=str(ROOT)))
    return wp, ch


def run_pd(ctx, text: Path, vocab: Path, subword: str, threads: int, tag: str) -> dict:
    out = ctx.work / f"pd_{tag}.tfrecord.gz"
    stats_path = ctx.work / f"pd_{tag}.stats.json"
    a = ctx.args
    r = measure(py("scripts.pretraining_data.create", "--input", text, "--output", out, "--vocab-file", vocab,
                   "--subword-tokenizer", subword, "--mecab-dic", "unidic_lite", "--max-seq-length", a.max_seq_length,
                   "--max-predictions-per-seq", a.max_predictions, "--masked-lm-prob", 0.15, "--short-seq-prob", 0.1,
                   "--dupe-factor", a.dupe_factor, "--seed", 1, "--threads", threads, "--stats", stats_path),
                ctx.log(f"pd_{tag}"), f"create_pretraining_data {subword} --threads {threads} ({tag})")
    st = json.loads(stats_path.read_text(encoding="utf-8"))
    mb = st["input_bytes"] / 1e6
    r.update(subword=subword, threads=threads, input_mb=mb, input_bytes=st["input_bytes"],
             instances=st["instances"], tokens=st["tokens"], unk_rate=st["unk_rate"],
             output_mb=st["output_bytes"] / 1e6, mb_s=mb / r["wall_s"], mb_s_core=mb / r["wall_s"] / threads,
             mb_cpu_s=mb / r["cpu_s"], inst_s=st["instances"] / r["wall_s"],
             phases=st["seconds"], compressor=st["params"]["compressor"],
             script_peak_rss_mb=st["peak_rss_mb"], script_children_rss_mb=st["peak_rss_children_mb"])
    out.unlink(missing_ok=True)
    return r


def stage_pretraining(ctx) -> dict:
    corpus = Path(ctx.inputs["corpus"]["path"])
    wp, ch = ensure_vocabs(ctx)
    mb = corpus.stat().st_size / 1e6

    def ceiling(tag, procs=1):
        """MeCab alone: ``procs`` processes at once, each parsing the whole corpus (the fair
        reference for a ``--threads procs`` run: cores that share caches, memory bandwidth or
        a physical core run slower together than alone)."""
        cmd = [sys.executable, "-c", CEILING_CODE, str(corpus), str(ROOT)]
        if procs > 1:
            cmd = ["bash", "-c", " & ".join([" ".join(map(shlex.quote, cmd))] * procs) + "; wait"]
        c = measure(cmd, ctx.log(f"ceiling_{tag}_p{procs}"), f"MeCab-only ceiling ({tag}, {procs} process(es))")
        c.update(procs=procs, input_mb=mb, mb_s=mb / c["wall_s"], mb_cpu_s=mb * procs / c["cpu_s"])
        return c

    def mean_of(a, b):
        m = dict(b)
        for k in ("wall_s", "cpu_s", "mb_s", "mb_cpu_s", "peak_rss_mb"):
            m[k] = (a[k] + b[k]) / 2
        m["load_before"] = a["load_before"]
        m["other_cores"] = (a["other_cores"] + b["other_cores"]) / 2
        return m

    # The ceiling is measured before and after the runs (the machine's speed drifts), alone and
    # with as many processes at once as each thread count; the ratios use the mean of the two.
    procs_list = sorted(set(ctx.args.threads) | {1})
    ceil_before = {p: ceiling("before", p) for p in procs_list}
    runs = []
    for subword, vocab in (("wordpiece", wp), ("character", ch)):
        if subword not in ctx.args.subwords:
            continue
        for t in ctx.args.threads:
            runs.append(run_pd(ctx, corpus, vocab, subword, t, f"{subword}_t{t}"))
    ceil_after = {p: ceiling("after", p) for p in procs_list}
    ceils = {p: mean_of(ceil_before[p], ceil_after[p]) for p in procs_list}
    ceil = ceils[1]
    rows = []
    for r in runs:
        c = ceils[r["threads"]]
        r["vs_ceiling"] = r["mb_s_core"] / c["mb_s"]
        r["vs_ceiling_1proc"] = r["mb_s_core"] / ceil["mb_s"]
        rows.append([r["subword"], r["threads"], f"{r['input_mb']:.1f}", f"{r['wall_s']:.1f}", f"{r['cpu_s']:.1f}",
                     f"{r['mb_s']:.2f}", f"{r['mb_s_core']:.2f}", f"{r['mb_cpu_s']:.2f}", f"{r['inst_s']:,.0f}",
                     f"{r['instances']:,}", f"{r['peak_rss_mb']:.0f}", f"{r['tree_pss_mb']:.0f}",
                     f"{r['vs_ceiling']:.0%}", f"{r['vs_ceiling_1proc']:.0%}",
                     f"{r['mb_cpu_s'] / c['mb_cpu_s']:.0%}",
                     f"{r['mb_s_core'] / REF['pd_mb_s_core']:.1f}x",
                     "/".join(f"{r['phases'][k]:.1f}" for k in ("tokenize", "layout", "write")), load_str(r)])
    for p in procs_list:
        for c, name in ((ceil_before[p], "MeCab before"), (ceil_after[p], "MeCab after"), (ceils[p], "MeCab mean")):
            rows.append([name, f"{p} proc", f"{mb:.1f}", f"{c['wall_s']:.1f}", f"{c['cpu_s']:.1f}", "",
                         f"{c['mb_s']:.2f}", f"{c['mb_cpu_s']:.2f}", "", "", f"{c['peak_rss_mb']:.0f}", "",
                         f"{c['mb_s'] / ceils[p]['mb_s']:.0%}", f"{c['mb_s'] / ceil['mb_s']:.0%}", "",
                         f"{c['mb_s'] / REF['pd_mb_s_core']:.1f}x", "", load_str(c)])
    a = ctx.args
    settings = f"seq {a.max_seq_length}, max_pred {a.max_predictions}, dupe {a.dupe_factor}"
    ctx.report.append(table(
        f"4. Pretraining data (scripts.pretraining_data.create; {settings}, masked 0.15) on the "
        f"{mb:.1f} MB corpus",
        ["tokenizer", "thr", "MB", "wall s", "CPU s", "MB/s", "MB/s/core", "MB/CPU-s", "inst/s", "instances",
         "RSS MB", "tree PSS MB", "vs ceil", "vs 1-proc ceil", "CPU vs ceil", "vs ref", "tok/layout/write s",
         "load/other"], rows,
        [f"MeCab: the ceiling, measured before and after the runs, with 1 process and with as many processes "
         f"at once as the run's threads (MB/s/core: each process parses the whole corpus); vs ceil: MB/s/core / "
         f"mean MeCab-only MB/s per process at the run's thread count; vs 1-proc ceil: against one process "
         f"alone; CPU vs ceil: MB/CPU-s / MeCab-only MB/CPU-s; vs ref: MB/s/core "
         f"/ {REF['pd_mb_s_core']} (reference: ~{REF['pd_inst_s']:,} instances/s, MeCab ceiling ~"
         f"{REF['mecab_ceiling_mb_s']} MB/s/core)",
         f"compressor: {runs[0]['compressor']}; RSS = peak of the largest process, tree PSS = peak of the "
         f"summed PSS of the process tree (main + workers)"]))

    # RSS at two sizes (wordpiece, 1 thread)
    slope_rows, points = [], []
    for size in ctx.args.rss_sizes:
        rt = ctx.args.rss_threads
        reuse = [r for r in runs if r["subword"] == "wordpiece" and r["threads"] == rt
                 and abs(r["input_mb"] - size) / size < 0.02]
        if reuse:
            r = reuse[0]
        else:
            text = ctx.inputs[f"rss_{size:g}"]
            r = run_pd(ctx, Path(text["path"]), wp, "wordpiece", rt, f"rss_{size:g}mb_t{rt}")
        points.append(r)
        slope_rows.append([f"{r['input_mb']:.1f}", f"{r['wall_s']:.1f}", f"{r['mb_s']:.2f}", f"{r['instances']:,}",
                           f"{r['peak_rss_mb']:.0f}", f"{r['tree_pss_mb']:.0f}",
                           f"{r['peak_rss_mb'] * 2**20 / r['input_bytes']:.1f}",
                           load_str(r)])
    p0, p1 = points[0], points[-1]
    slope = (p1["peak_rss_mb"] - p0["peak_rss_mb"]) * 2**20 / max(p1["input_bytes"] - p0["input_bytes"], 1)
    base_mb = p0["peak_rss_mb"] - slope * p0["input_bytes"] / 2**20
    pss_slope = (p1["tree_pss_mb"] - p0["tree_pss_mb"]) * 2**20 / max(p1["input_bytes"] - p0["input_bytes"], 1)
    ref_slope = (1540 - 1010) * 1e6 / ((12.8 - 3.2) * 1e6)
    ctx.report.append(table(
        f"4b. Peak RSS against input size (create_pretraining_data wordpiece, --threads {ctx.args.rss_threads}, "
        f"{settings})",
        ["input MB", "wall s", "MB/s", "instances", "RSS MB", "tree PSS MB", "RSS B per input B", "load/other"],
        slope_rows,
        [f"slope: {slope:.1f} bytes of RSS per input byte (intercept {base_mb:.0f} MB); reference ~"
         f"{REF['pd_rss_slope']} (1.01 GB at 3.2 MB, 1.54 GB at 12.8 MB: {ref_slope:.0f} marginal)",
         f"extrapolated peak RSS at these settings: {(base_mb + slope * 0.6e9 / 2**20) / 1024:.2f} GiB for a "
         f"0.6 GB shard, "
         f"{(base_mb + slope * 1.2e9 / 2**20) / 1024:.2f} GiB for 1.2 GB",
         f"tree PSS (all processes): slope {pss_slope:.2f} bytes per input byte"]))
    return {"ceiling": ceil, "ceilings": {str(p): c for p, c in ceils.items()},
            "ceiling_before": ceil_before, "ceiling_after": ceil_after, "runs": runs,
            "rss_points": points, "rss_slope_bytes_per_byte": slope, "pss_slope_bytes_per_byte": pss_slope,
            "rss_intercept_mb": base_mb, "vocab_wordpiece": str(wp), "vocab_character": str(ch)}


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


class Ctx:
    def __init__(self, args, work: Path):
        self.args, self.work = args, work
        self.inputs: dict = {}
        self.results: dict = {}
        self.report: list[str] = []
        self.pool: list[Doc] = []
        (work / "logs").mkdir(parents=True, exist_ok=True)

    def log(self, name: str) -> Path:
        return self.work / "logs" / f"{name}.log"


STAGES = ("wiki", "shard", "tokenizer", "pretraining")


def prepare_inputs(ctx) -> None:
    a, work = ctx.args, ctx.work
    t0 = time.perf_counter()
    if a.corpus:
        ctx.pool, info = load_corpus_pool(a.corpus)
        corpus = {"path": str(a.corpus), "bytes": os.path.getsize(a.corpus), "documents": info["documents"]}
        distinct = (f"given corpus {a.corpus}: {info['documents']:,} documents, "
                    f"{info['distinct_lines']:,} distinct non-empty lines")
        first_in_order = True
    else:
        jglue = None if a.no_jglue else a.jglue_dir
        ctx.pool, info = load_pool(jglue, seed=a.seed)
        path = work / f"corpus_{a.size_mb:g}mb.txt"
        corpus = write_corpus(path, ctx.pool, int(a.size_mb * 1e6), seed=a.seed, longtail=a.longtail)
        kinds = ", ".join(f"{k} {v['bytes'] / 1e6:.2f} MB/{v['documents']:,} docs" for k, v in info["by_kind"].items())
        distinct = (f"distinct text {info['distinct_bytes'] / 1e6:.2f} MB in {info['documents']:,} documents "
                    f"({kinds}); the {corpus['bytes'] / 1e6:.1f} MB corpus repeats it "
                    f"{corpus['bytes'] / info['distinct_bytes']:.1f}x ({corpus['passes']} shuffled passes)"
                    + ("" if info["jglue_files"] else "; JGLUE not found/used")
                    + (f"; long tail: katakana randomised in {a.longtail:.0%} of the lines of the corpus and "
                       f"the tokenizer sample" if a.longtail else ""))
        first_in_order = False
    ctx.inputs["pool"] = info
    ctx.inputs["corpus"] = corpus
    ctx.inputs["distinct"] = distinct
    print(f"corpus: {distinct}", flush=True)
    if "wiki" in a.stages:
        dump = write_cirrus_dump(work / "cirrussearch-content.json.gz", ctx.pool,
                                 int(a.wiki_text_mb * 1e6 if a.wiki_text_mb else corpus["bytes"]), seed=a.seed + 1)
        ctx.inputs["wiki_dump"] = dump
        print(f"wiki dump: {dump['pages']:,} pages, {dump['json_bytes'] / 1e6:.1f} MB JSON, "
              f"{dump['bytes_gz'] / 1e6:.1f} MB gz", flush=True)
    if "shard" in a.stages:
        ctx.inputs["corpus_xz"] = write_xz(Path(corpus["path"]), work / "ja.txt.xz", a.xz_preset)
    if "tokenizer" in a.stages:
        ctx.inputs["tok_sample"] = write_sentences(work / "tok_sample.txt", ctx.pool, int(a.tokenizer_mb * 1e6),
                                                   seed=a.seed + 2, longtail=a.longtail)
        ctx.inputs["tok_sample"]["longtail"] = a.longtail
    if "pretraining" in a.stages:
        for size in a.rss_sizes:
            if abs(size * 1e6 - corpus["bytes"]) / (size * 1e6) < 0.02:
                ctx.inputs[f"rss_{size:g}"] = corpus
                continue
            ctx.inputs[f"rss_{size:g}"] = write_corpus(work / f"corpus_rss_{size:g}mb.txt", ctx.pool,
                                                       int(size * 1e6), seed=a.seed + 3,
                                                       first_in_order=first_in_order, longtail=a.longtail)
    ctx.inputs["prepare_seconds"] = time.perf_counter() - t0
    print(f"inputs prepared in {ctx.inputs['prepare_seconds']:.1f} s", flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--corpus", type=Path, help="use this corpus (line per paragraph/sentence, blank line "
                    "between documents) instead of generating one")
    ap.add_argument("--size-mb", type=float, default=30.0, help="size of the generated corpus (default 30)")
    ap.add_argument("--jglue-dir", type=Path, default=DEFAULT_JGLUE, help="JGLUE checkout (optional)")
    ap.add_argument("--no-jglue", action="store_true", help="use only sample/source text")
    ap.add_argument("--stages", nargs="+", choices=STAGES, default=list(STAGES))
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts for stages 1, 2, 4")
    ap.add_argument("--wiki-text-mb", type=float, default=0.0,
                    help="paragraph text carried by the Wikipedia dump (default: the corpus size)")
    ap.add_argument("--xz-preset", type=int, default=3, help="xz preset of the sharding input (default 3)")
    ap.add_argument("--tokenizer-mb", type=float, default=36.6, help="tokenizer-training input size")
    ap.add_argument("--tokenizer-threads", type=int, nargs="+", default=[2, 2, 1],
                    help="one tokenizer run per value (default 2 2 1: two reruns and a thread change)")
    ap.add_argument("--longtail", type=float, default=0.0, metavar="P",
                    help="fraction of generated lines (corpus for stages 2 and 4, tokenizer sample) whose "
                         "katakana runs become random katakana: more distinct words, like a real corpus "
                         "(default 0: the text as written)")
    ap.add_argument("--rss-threads", type=int, default=1,
                    help="--threads of the RSS-slope runs (default 1; with more, tree PSS counts the workers)")
    ap.add_argument("--rss-sizes", type=float, nargs=2, default=[10.0, 40.0], metavar=("A_MB", "B_MB"),
                    help="input sizes for the RSS slope of create_pretraining_data")
    ap.add_argument("--subwords", nargs="+", choices=("wordpiece", "character"), default=["wordpiece", "character"],
                    help="stage 4 tokenizers")
    ap.add_argument("--max-seq-length", type=int, default=128, help="stage 4 (default 128, CC-100)")
    ap.add_argument("--max-predictions", type=int, default=19, help="stage 4 (default 19)")
    ap.add_argument("--dupe-factor", type=int, default=5, help="stage 4 (default 5)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work-dir", type=Path, help="keep inputs/outputs/logs here (default: a temp dir)")
    ap.add_argument("--json-out", type=Path, help="write all figures as JSON here")
    args = ap.parse_args(argv)

    tmp = None
    if args.work_dir:
        work = args.work_dir.resolve()
        work.mkdir(parents=True, exist_ok=True)
    else:
        tmp = tempfile.TemporaryDirectory(prefix="bench_stages_")
        work = Path(tmp.name)
    ctx = Ctx(args, work)
    t_start = time.perf_counter()
    facts = machine_facts()
    print(f"machine: nproc {facts['nproc']} (affinity {facts['affinity']}), {facts['cpu_model']}, "
          f"{facts['mem_total_gb']} GiB RAM; python {facts['python']}; "
          + ", ".join(f"{k} {v}" for k, v in facts["versions"].items() if v)
          + f"; /usr/bin/time: {'yes' if facts['usr_bin_time'] else 'no'} (rusage via os.wait4 is used)")
    print(f"uptime: {facts['uptime']}")
    print(f"work dir: {work}", flush=True)
    prepare_inputs(ctx)

    for stage, fn in (("wiki", stage_wiki), ("shard", stage_shard), ("tokenizer", stage_tokenizer),
                      ("pretraining", stage_pretraining)):
        if stage in args.stages:
            print(f"\n== stage {stage} ==", flush=True)
            ctx.results[stage] = fn(ctx)

    total = time.perf_counter() - t_start
    end_uptime = uptime_line()
    print("\n" + "=" * 100)
    print(f"machine: nproc {facts['nproc']}, {facts['cpu_model']}, {facts['mem_total_gb']} GiB; "
          f"start: {facts['uptime']}")
    print(f"end:   {end_uptime}")
    print(f"corpus: {ctx.inputs['distinct']}")
    print("\n".join(ctx.report))
    print(f"\ntotal {total:.0f} s (inputs {ctx.inputs['prepare_seconds']:.0f} s); logs in {work / 'logs'}")
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"machine": facts, "end_uptime": end_uptime, "inputs": ctx.inputs,
                                             "results": ctx.results, "total_seconds": total,
                                             "argv": sys.argv}, indent=2, default=str, ensure_ascii=False),
                                 encoding="utf-8")
        print(f"figures written to {args.json_out}")
    if tmp is not None:
        tmp.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
