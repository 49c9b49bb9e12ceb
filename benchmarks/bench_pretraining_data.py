"""Benchmark of ``scripts.pretraining_data.create`` against a MeCab-only ceiling.

    python benchmarks/bench_pretraining_data.py                  # 10 MB generated corpus
    python benchmarks/bench_pretraining_data.py --text corpus/cc-100/corpus_01.txt --vocab V
    python benchmarks/bench_pretraining_data.py --sizes 5 20     # RSS slope (bytes/input byte)

What it measures, on one machine, each run in a fresh subprocess (clean peak RSS):

* **ceiling**: mecab-python3 ``-Owakati`` (unidic-lite), one ``parse`` per line of the corpus,
  nothing else: the speed no MeCab-based tokenisation can beat on one core.
* **ours**: ``python -m scripts.pretraining_data.create`` for ``wordpiece`` and ``character`` at
  the CC-100 settings (seq 128, 19 predictions, dupe 5) with ``--threads 1`` and ``2``.

Reported per run: input MB/s, MB/s per core (divided by ``--threads``), MB per CPU-second of all
the run's processes (the fair figure on a machine that other jobs share), instances/s, peak RSS
(the main process; workers separately), the ratios of MB/s/core and MB/CPU-s to the ceiling, and
MB/s/core against the reference scripts (0.165 MB/s per core). ``--sizes A B`` runs wordpiece /
1 thread at two corpus sizes and prints the RSS slope in bytes of RAM per input byte
(reference: ~54).

The generated corpus is Japanese-like text from hand-made word lists (nouns with a Zipf
distribution and a long tail of random katakana names and numbers, particles, verb and adjective
forms, punctuation), sentence per line, 2-30 sentences per document. Without ``--vocab`` a
WordPiece vocabulary (32768) is trained on it with ``tokenizers`` over MeCab words, and the
character vocabulary is its specials plus single characters.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REFERENCE_MB_S_PER_CORE = 0.165

# ---------------------------------------------------------------------------------------------
# Corpus generator
# ---------------------------------------------------------------------------------------------

NOUNS = (
    "日本 東京 大学 研究 政府 会社 経済 社会 時間 問題 世界 地域 情報 技術 開発 市場 企業 国際 教育 文化 "
    "歴史 自然 環境 生活 言語 音楽 映画 写真 料理 旅行 天気 季節 電車 駅前 空港 病院 学校 図書館 公園 "
    "家族 友人 子供 先生 学生 選手 作家 俳優 医者 社長 首相 議会 選挙 法律 制度 計画 結果 理由 方法 "
    "目的 影響 関係 状況 変化 発展 成長 価値 意味 内容 部分 全体 中心 以上 以下 最初 最後 今日 明日 "
    "昨年 来年 午前 午後 毎日 週末 番組 新聞 雑誌 記事 作品 小説 物語 事件 事故 災害 地震 台風 気温 "
    "人口 都市 農村 海外 国内 県内 北海道 大阪 京都 名古屋 福岡 沖縄 富士山 太平洋 川 山 海 空 森 "
    "道路 建物 住宅 部屋 窓 机 本 手紙 電話 携帯 画面 番号 金額 価格 費用 給料 仕事 会議 資料 報告 "
    "サービス システム データ コンピュータ インターネット ソフトウェア プログラム ネットワーク サイト "
    "メール ニュース スポーツ サッカー 野球 チーム ゲーム アニメ キャラクター デザイン イベント ホテル "
    "レストラン コーヒー ビール パン ケーキ テレビ ラジオ カメラ バス タクシー アメリカ ヨーロッパ "
    "アジア フランス ドイツ 中国 韓国 イギリス ロシア インド ブラジル オーストラリア"
).split()
PARTICLES = "は が を に で と の も へ から まで より".split()
VERBS = (
    "行った 来た 見た 食べた 書いた 読んだ 話した 使った 作った 始めた 終わった 考えた 知った 持った "
    "思った 言った 発表した 開始した 参加した 決定した 確認した 説明した 利用する 提供する 実施する "
    "検討する 増加した 減少した 変更された 設立された 開催された 建設された 発見された 行われた "
    "している されている となった であった である ありました います しました できる なる"
).split()
ADJECTIVES = "大きな 小さな 新しい 古い 高い 安い 多くの 重要な 有名な 美しい 難しい 簡単な 便利な 特別な".split()
CONNECTIVES = "しかし また そして さらに ただし なお 一方 その後 現在 当時".split()
KATAKANA = [chr(c) for c in range(0x30A2, 0x30F3)]
LATIN = "abcdefghijklmnopqrstuvwxyz"


class _Gen:
    """Sentences from the word lists; ``random.Random`` keeps generation fast and seeded."""

    def __init__(self, seed: int):
        import random

        self.r = random.Random(seed)
        weights = [1.0 / (k + 1) ** 1.1 for k in range(len(NOUNS))]
        self.noun_cum = list(np.cumsum(weights))

    def noun(self) -> str:
        r = self.r
        u = r.random()
        if u < 0.04:  # long tail: random katakana names
            return "".join(r.choices(KATAKANA, k=r.randint(2, 6)))
        if u < 0.07:
            return f"{r.randint(1, 2999)}年"
        if u < 0.09:
            return f"{r.randint(1, 99999):,}人"
        if u < 0.10:
            return "".join(r.choices(LATIN, k=r.randint(3, 8)))
        return r.choices(NOUNS, cum_weights=self.noun_cum)[0]

    def sentence(self) -> str:
        r = self.r
        clauses = []
        for _ in range(r.randint(1, 3)):
            phrase = ""
            for _ in range(r.randint(1, 3)):
                if r.random() < 0.3:
                    phrase += r.choice(ADJECTIVES)
                phrase += self.noun()
                if r.random() < 0.4:
                    phrase += "の" + self.noun()
                phrase += r.choice(PARTICLES)
            clauses.append(phrase + r.choice(VERBS))
        s = "、".join(clauses)
        if r.random() < 0.2:
            s = r.choice(CONNECTIVES) + "、" + s
        if r.random() < 0.1:
            s = "「" + s + "」と" + self.noun() + "は述べた"
        if r.random() < 0.05:
            s += "（" + self.noun() + "）"
        return s + "。"


def generate_corpus(path: Path, size_mb: float, seed: int = 0) -> Path:
    """Write about ``size_mb`` MB of documents (sentence per line, blank line between)."""
    gen = _Gen(seed)
    target = int(size_mb * 1e6)
    written = 0
    with open(path, "w", encoding="utf-8") as fh:
        while written < target:
            doc = "\n".join(gen.sentence() for _ in range(gen.r.randint(2, 30))) + "\n\n"
            fh.write(doc)
            written += len(doc.encode("utf-8"))
    return path


# ---------------------------------------------------------------------------------------------
# Vocabularies
# ---------------------------------------------------------------------------------------------


def build_vocabs(text: Path, out_dir: Path, vocab_size: int = 32768, sample_mb: float = 5.0):
    """A WordPiece vocab trained on MeCab words of (a sample of) ``text``, and a character vocab."""
    import unicodedata

    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    from scripts.shared.common import mecab_tagger

    tagger = mecab_tagger()
    limit = int(sample_mb * 1e6)

    def words():
        seen = 0
        with open(text, encoding="utf-8") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                seen += len(line.encode("utf-8"))
                if seen > limit:
                    return
                yield tagger.parse(unicodedata.normalize("NFKC", line))

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + [f"[unused{i}]" for i in range(10)]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials, limit_alphabet=7000,
                                        continuing_subword_prefix="##")
    tok.train_from_iterator(words(), trainer)
    vocab = tok.get_vocab()
    ordered = sorted(vocab, key=vocab.get)
    out_dir.mkdir(parents=True, exist_ok=True)
    wp = out_dir / "vocab_wordpiece.txt"
    wp.write_text("".join(t + "\n" for t in ordered), encoding="utf-8")
    ch = out_dir / "vocab_character.txt"
    chars = [t for t in ordered if t in specials or len(t) == 1]
    ch.write_text("".join(t + "\n" for t in chars), encoding="utf-8")
    return wp, ch


# ---------------------------------------------------------------------------------------------
# Runs
# ---------------------------------------------------------------------------------------------

CEILING_CODE = r"""
import sys, time, json, resource
sys.path.insert(0, sys.argv[2])
from scripts.shared.common import mecab_tagger
parse = mecab_tagger().parse
t0 = time.perf_counter(); nbytes = 0; lines = 0
with open(sys.argv[1], "rb") as fh:
    for raw in fh:
        nbytes += len(raw)
        lines += 1
        parse(raw.decode("utf-8").rstrip("\n"))
dt = time.perf_counter() - t0
print(json.dumps({"seconds": dt, "bytes": nbytes, "lines": lines,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run_ceiling(text: Path) -> dict:
    cpu0 = _children_cpu()
    out = subprocess.run([sys.executable, "-c", CEILING_CODE, str(text), str(ROOT)], check=True,
                         capture_output=True, text=True).stdout
    res = json.loads(out)
    res["mb_s"] = res["bytes"] / 1e6 / res["seconds"]
    res["cpu_s"] = _children_cpu() - cpu0
    return res


def run_ours(text: Path, vocab: Path, subword: str, threads: int, work: Path, args) -> dict:
    out = work / f"out_{subword}_{threads}.tfrecord.gz"
    stats = work / f"out_{subword}_{threads}.stats.json"
    cmd = [sys.executable, "-m", "scripts.pretraining_data.create", "--input", str(text), "--output", str(out),
           "--vocab-file", str(vocab), "--subword-tokenizer", subword, "--mecab-dic", "unidic_lite",
           "--max-seq-length", str(args.max_seq_length), "--max-predictions-per-seq", str(args.max_predictions),
           "--masked-lm-prob", "0.15", "--short-seq-prob", "0.1", "--dupe-factor", str(args.dupe_factor),
           "--seed", "1", "--threads", str(threads), "--stats", str(stats)]
    if args.gzip_level is not None:
        cmd += ["--gzip-level", str(args.gzip_level)]
    if args.compressor is not None:
        cmd += ["--compressor", args.compressor]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if proc.returncode != 0:
        raise SystemExit(f"create_pretraining_data failed:\n{proc.stderr[-4000:]}")
    st = json.loads(stats.read_text(encoding="utf-8"))
    st["wall_s"] = wall
    st["cpu_s"] = cpu  # all processes of the run (main + pool workers)
    st["cmd"] = " ".join(cmd)
    out.unlink()
    return st


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--text", type=Path, help="corpus to use (default: generate one)")
    ap.add_argument("--size-mb", type=float, default=10.0, help="size of the generated corpus")
    ap.add_argument("--vocab", type=Path, help="WordPiece vocab (default: train one on the corpus)")
    ap.add_argument("--char-vocab", type=Path, help="character vocab (default: derived)")
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--tokenizers", nargs="+", default=["wordpiece", "character"])
    ap.add_argument("--max-seq-length", type=int, default=128)
    ap.add_argument("--max-predictions", type=int, default=19)
    ap.add_argument("--dupe-factor", type=int, default=5)
    ap.add_argument("--gzip-level", type=int, default=None, help="passed on (default: the script's)")
    ap.add_argument("--compressor", default=None, help="passed on: auto, zlib or isal (default: the script's)")
    ap.add_argument("--sizes", type=float, nargs=2, metavar=("A_MB", "B_MB"),
                    help="measure peak RSS at two generated sizes (wordpiece, 1 thread) and the slope")
    ap.add_argument("--work-dir", type=Path, help="keep corpora/vocabs here (default: a temp dir)")
    args = ap.parse_args(argv)

    tmp = tempfile.TemporaryDirectory(prefix="bench_pd_")
    work = args.work_dir or Path(tmp.name)
    work.mkdir(parents=True, exist_ok=True)
    cores = os.cpu_count()
    print(f"machine: {cores} cores; python {sys.version.split()[0]}; numpy {np.__version__}")

    if args.sizes:
        texts = []
        for mb in args.sizes:
            p = work / f"corpus_{mb:g}mb.txt"
            if not p.exists():
                generate_corpus(p, mb, seed=1)
            texts.append(p)
        vocab = args.vocab or build_vocabs(texts[0], work / "vocab")[0]
        rows = []
        for p in texts:
            st = run_ours(p, vocab, "wordpiece", 1, work, args)
            rows.append((st["input_bytes"], st["peak_rss_mb"], st["mb_per_s"]))
            print(f"{p.name}: {st['input_bytes'] / 1e6:.1f} MB in, {st['instances']:,} instances, "
                  f"{st['mb_per_s']:.2f} MB/s, peak RSS {st['peak_rss_mb']:.0f} MB")
        (b0, r0, _), (b1, r1, _) = rows
        slope = (r1 - r0) * 2**20 / max(b1 - b0, 1)
        print(f"RSS slope: {slope:.2f} bytes of RSS per input byte (reference ~54); "
              f"RSS at 1.2 GB by extrapolation: {r0 + slope * (1.2e9 - b0) / 2**20:.0f} MB")
        return 0

    if args.text:
        text = args.text
    else:
        text = work / f"corpus_{args.size_mb:g}mb.txt"
        t0 = time.perf_counter()
        generate_corpus(text, args.size_mb, seed=0)
        print(f"generated {text.stat().st_size / 1e6:.1f} MB corpus in {time.perf_counter() - t0:.1f} s")
    if args.vocab:
        wp_vocab = args.vocab
        ch_vocab = args.char_vocab or args.vocab
    else:
        t0 = time.perf_counter()
        wp_vocab, ch_vocab = build_vocabs(text, work / "vocab")
        print(f"trained vocabularies in {time.perf_counter() - t0:.1f} s")
    if args.char_vocab:
        ch_vocab = args.char_vocab

    ceiling = run_ceiling(text)
    mb = ceiling["bytes"] / 1e6
    print(f"ceiling (MeCab -Owakati, one parse per line, 1 core): {ceiling['mb_s']:.2f} MB/s wall, "
          f"{mb / ceiling['cpu_s']:.2f} MB per CPU-s ({ceiling['lines']:,} lines, {mb:.1f} MB)")
    print(f"load average before the runs: {os.getloadavg()[0]:.2f} (other processes share these {cores} cores)")
    print()
    header = (f"{'tokenizer':<10} {'thr':>3} {'MB/s':>6} {'MB/s/core':>9} {'MB/CPU-s':>8} {'inst/s':>8} "
              f"{'instances':>10} {'RSS MB':>7} {'wrk MB':>7} {'vs ceil':>7} {'CPU/ceil':>8} {'vs ref':>7} "
              f"{'gzip':>5}  phases tok/layout/write s")
    print(header)
    results = []
    for subword in args.tokenizers:
        vocab = wp_vocab if subword == "wordpiece" else ch_vocab
        for threads in args.threads:
            st = run_ours(text, vocab, subword, threads, work, args)
            per_core = st["mb_per_s"] / threads
            sec = st["seconds"]
            print(f"{subword:<10} {threads:>3} {st['mb_per_s']:>6.2f} {per_core:>9.2f} "
                  f"{st['input_bytes'] / 1e6 / st['cpu_s']:>8.2f} {st['instances_per_s']:>8,.0f} "
                  f"{st['instances']:>10,} {st['peak_rss_mb']:>7.0f} {st['peak_rss_children_mb']:>7.0f} "
                  f"{per_core / ceiling['mb_s']:>7.0%} "
                  f"{st['input_bytes'] / st['cpu_s'] / (ceiling['bytes'] / ceiling['cpu_s']):>8.0%} "
                  f"{per_core / REFERENCE_MB_S_PER_CORE:>6.1f}x "
                  f"{st['params']['compressor']:>5}  {sec['tokenize']:.1f}/{sec['layout']:.1f}/{sec['write']:.1f}")
            results.append(st)
    print()
    print("MB/s/core = MB/s / --threads (wall clock); MB/CPU-s = input MB per CPU second of all the run's")
    print("processes (robust to other load on the machine); vs ceil / CPU/ceil: the same against the ceiling;")
    print(f"vs ref: MB/s/core against the reference scripts' {REFERENCE_MB_S_PER_CORE} MB/s per core.")
    print("command:", results[0]["cmd"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
