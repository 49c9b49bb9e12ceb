"""Write the bundled JGLUE-format sample tasks (``sample/jglue/``) for the demo's evaluation.

Usage::

    python -m scripts.tools.make_jglue_sample --out-dir sample/jglue [--source-dir sample/source]

writes ``<out-dir>/datasets/<task>-v1.3/{train,valid}-v1.3.json`` for MARC-ja, JSTS, JNLI,
JCommonsenseQA (JSON lines) and JSQuAD (SQuAD-layout JSON), in JGLUE's file formats and field
names, with fixture-sized splits (a few dozen examples). JCoLA is deliberately absent, so the
demo also shows a skipped task.

Everything is original material written for this project, not JGLUE's data: the review phrases,
caption templates, commonsense questions and QA questions below, and (for JSQuAD) the first
paragraphs of the project's own sample articles in ``sample/source/wiki_articles.txt``.
Labels follow from how each example is built (a caption pair's similarity from the parts it
shares, an NLI hypothesis from the edit made to its premise). Deterministic: fixed seeds.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

VERSION = "1.3"

# --- MARC-ja: product reviews ---------------------------------------------------------------
PRODUCTS = ["この掃除機", "このイヤホン", "この本", "このリュック", "この電気ケトル", "このマグカップ", "この傘",
            "このキーボード", "この炊飯器", "このスニーカー", "このランプ", "この枕"]
POSITIVE = ["はとても使いやすく、毎日愛用しています。", "は値段以上の品質で大満足です。", "は軽くて丈夫なので、長く使えそうです。",
            "はデザインがおしゃれで、家族にも好評でした。", "は届くのが早く、梱包も丁寧でした。", "は期待通りの性能で、買ってよかったです。"]
NEGATIVE = ["はすぐに壊れてしまい、とても残念です。", "は説明と違う色が届き、がっかりしました。", "は重くて持ち運びに不便でした。",
            "は作りが雑で、一週間で返品しました。", "は音がうるさく、夜は使えません。", "は値段の割に品質が低く、おすすめできません。"]
POS_TAIL = ["", "友人にも勧めたいです。", "星五つです。"]
NEG_TAIL = ["", "二度と買いません。", "星一つです。"]

# --- JSTS / JNLI: caption-like sentences -----------------------------------------------------
SUBJECTS = ["男性", "女性", "子供", "犬", "猫", "二人の学生", "年配の男性", "若い女性"]
PLACES = ["公園で", "海辺で", "駅の前で", "台所で", "川のそばで", "広場で"]
ACTIONS = ["走っています。", "座っています。", "ボールで遊んでいます。", "写真を撮っています。", "休んでいます。",
           "何かを食べています。"]
# contradictory action pairs (one excludes the other), for JNLI
OPPOSITE = {"走っています。": "座っています。", "座っています。": "走っています。", "休んでいます。": "走っています。",
            "ボールで遊んでいます。": "眠っています。", "写真を撮っています。": "眠っています。", "何かを食べています。": "眠っています。"}
EXTRAS = ["友達と", "一人で", "楽しそうに", "朝早くから"]

# --- JCommonsenseQA ----------------------------------------------------------------------------
TOOLS = [("文字を書く", "鉛筆"), ("紙を切る", "はさみ"), ("水を飲む", "コップ"), ("長さを測る", "定規"), ("床を掃く", "ほうき"),
         ("暗い道を照らす", "懐中電灯"), ("手を洗う", "石けん"), ("卵を焼く", "フライパン"), ("写真を撮る", "カメラ"),
         ("服を縫う", "針"), ("文字を消す", "消しゴム"), ("戸を開ける", "鍵")]
PLACES_QA = [("本を借りる", "図書館"), ("電車に乗る", "駅"), ("診察を受ける", "病院"), ("泳ぐ", "プール"), ("手紙を出す", "郵便局"),
             ("映画を見る", "映画館"), ("飛行機に乗る", "空港"), ("髪を切る", "美容院"), ("授業を受ける", "学校"),
             ("お金を預ける", "銀行")]
ANIMALS = [("鼻が長く、体の大きな動物", "象"), ("首が長く、背の高い動物", "キリン"), ("白黒のしま模様の動物", "シマウマ"),
           ("おなかの袋で子を育てる動物", "カンガルー"), ("冬眠をする大きな動物", "クマ"), ("竹を食べる白黒の動物", "パンダ"),
           ("砂漠を歩くこぶのある動物", "ラクダ"), ("夜に飛び回り、逆さまにぶら下がって眠る動物", "コウモリ")]

# --- JSQuAD: questions on the first paragraph of sample articles --------------------------------
# (title, [(question, [answers; the first is the training answer])])
QA_TRAIN = [
    ("姫路城", [("姫路城はどこにあるか。", ["兵庫県姫路市"]), ("姫路城の別名は何か。", ["白鷺城"]),
             ("大天守と三つの小天守は何に指定されているか。", ["国宝"])]),
    ("光合成", [("光合成で放出される気体は何か。", ["酸素"]), ("光合成は光の何を利用するか。", ["エネルギー"]),
             ("光合成は二酸化炭素と何から有機物を合成するか。", ["水"])]),
    ("富士山", [("富士山はどの県にまたがるか。", ["静岡県と山梨県"]), ("富士山の標高は何メートルか。", ["3776メートル"]),
             ("富士山はどのような形をしているか。", ["円錐形"])]),
    ("寿司", [("寿司の飯は何で味付けされるか。", ["酢"]), ("現在、代表的な寿司は何か。", ["握り寿司"])]),
    ("江戸時代", [("江戸に幕府を開いたのは誰か。", ["徳川家康"]), ("江戸時代はおよそ何年間か。", ["約260年間"]),
              ("江戸時代は何時代とも呼ばれるか。", ["徳川時代"])]),
    ("相撲", [("相撲では何人の力士が組み合うか。", ["二人"]), ("相撲は古くから何を祈る祭りの中で行われてきたか。", ["豊作"])]),
    ("半導体", [("半導体の代表的な材料は何か。", ["ケイ素"]), ("半導体は導体と何の中間の性質を持つか。", ["絶縁体"])]),
    ("火山", [("地表に噴き出すものは何か。", ["マグマ"]), ("日本は世界でも有数の何か。", ["火山国"])]),
    ("ラーメン", [("中華麺の主な原料は何か。", ["小麦粉"]), ("ラーメンは現在何と呼ばれるほど親しまれているか。", ["国民食"])]),
]
QA_VALID = [
    ("俳句", [("俳句の基本となる音の数は何音か。", ["十七音", "五・七・五の十七音"]),
            ("季節を表す言葉を何というか。", ["季語", "季語"])]),
    ("琵琶湖", [("琵琶湖は何県にあるか。", ["滋賀県", "滋賀県"]), ("琵琶湖の名前は何に似ていることから付けられたか。", ["楽器の琵琶", "琵琶"])]),
    ("新幹線", [("東海道新幹線が開業したのは何年か。", ["1964年", "1964年"]),
             ("東海道新幹線は東京とどこを結ぶか。", ["新大阪", "新大阪"])]),
    ("織田信長", [("織田信長は何国の一大名から身を起こしたか。", ["尾張国", "尾張国"]),
              ("織田信長は何の事業を大きく前進させたか。", ["天下統一", "天下統一の事業"])]),
]


def _jsonl(path: Path, rows: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")


def _split(rows: list[dict], n_train: int) -> tuple[list[dict], list[dict]]:
    return rows[:n_train], rows[n_train:]


def marc_ja(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        pos = i % 2 == 0
        text = rng.choice(PRODUCTS) + rng.choice(POSITIVE if pos else NEGATIVE) + rng.choice(POS_TAIL if pos else NEG_TAIL)
        rows.append({"sentence": text, "label": "positive" if pos else "negative", "review_id": f"RSAMPLE{i:04d}"})
    rng.shuffle(rows)
    return rows


def _caption(s, p, a) -> str:
    return f"{s}が{p}{a}"


def jsts(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        s, p, a = rng.choice(SUBJECTS), rng.choice(PLACES), rng.choice(ACTIONS)
        kind = i % 4
        if kind == 0:    # same scene, reworded
            s2, p2, a2, base = s, p, a, 4.6
            first, second = _caption(s, p, a), f"{p}{s}が{a}"
        else:
            s2 = s if kind < 3 else rng.choice([x for x in SUBJECTS if x != s])
            p2 = rng.choice([x for x in PLACES if x != p])
            a2 = a if kind == 1 else rng.choice([x for x in ACTIONS if x != a])
            base = {1: 3.0, 2: 1.6, 3: 0.2}[kind]
            first, second = _caption(s, p, a), _caption(s2, p2, a2)
        label = round(min(5.0, base + rng.choice([0.0, 0.2, 0.4])), 1)
        rows.append({"sentence_pair_id": str(i), "yjcaptions_id": f"sample-{i}", "sentence1": first,
                     "sentence2": second, "label": label})
    return rows


def jnli(rng: random.Random, n: int) -> list[dict]:
    rows = []
    for i in range(n):
        s, p, a = rng.choice(SUBJECTS), rng.choice(PLACES), rng.choice(ACTIONS)
        premise = _caption(s, p, a)
        kind = i % 3
        if kind == 0:
            hyp, label = f"{s}が{a}", "entailment"
        elif kind == 1:
            hyp, label = _caption(s, p, OPPOSITE[a]), "contradiction"
        else:
            hyp, label = f"{s}が{p}{rng.choice(EXTRAS)}{a}", "neutral"
        rows.append({"sentence_pair_id": str(i), "yjcaptions_id": f"sample-{i}", "sentence1": premise,
                     "sentence2": hyp, "label": label})
    rng.shuffle(rows)
    return rows


def jcommonsenseqa(rng: random.Random) -> list[dict]:
    items = ([(f"{x}ときに使う道具はどれ？", y, [t for _, t in TOOLS]) for x, y in TOOLS]
             + [(f"{x}ために行く場所はどれ？", y, [t for _, t in PLACES_QA]) for x, y in PLACES_QA]
             + [(f"{x}はどれ？", y, [t for _, t in ANIMALS]) for x, y in ANIMALS]
             + [(f"{x}には何を使う？", y, [t for _, t in TOOLS]) for x, y in TOOLS]
             + [(f"{x}ときはどこへ行く？", y, [t for _, t in PLACES_QA]) for x, y in PLACES_QA])
    rows = []
    for i, (q, ans, pool) in enumerate(items):
        choices = [ans, *rng.sample([c for c in pool if c != ans], 4)]
        rng.shuffle(choices)
        rows.append({"q_id": i, "question": q, **{f"choice{k}": c for k, c in enumerate(choices)},
                     "label": choices.index(ans)})
    rng.shuffle(rows)
    return rows


def first_paragraphs(source: Path) -> dict[str, str]:
    out, title = {}, None
    for line in source.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        if line.startswith("= "):
            title = line[2:].strip()
        elif title and not line.startswith(("@", "==")) and title not in out:
            out[title] = line.strip()
    return out


def jsquad(paragraphs: dict[str, str], items, split: str) -> dict:
    data = []
    for a, (title, qas) in enumerate(items):
        context = f"{title} [SEP] {paragraphs[title]}"
        out_qas = []
        for q, (question, answers) in enumerate(qas):
            anss = []
            for text in answers:
                start = context.find(text, len(title) + 7)
                if start < 0:
                    raise ValueError(f"answer {text!r} not in the {title} paragraph")
                anss.append({"text": text, "answer_start": start})
            out_qas.append({"question": question, "id": f"sample{split}{a}p0q{q}", "answers": anss,
                            "is_impossible": False})
        data.append({"title": title, "paragraphs": [{"qas": out_qas, "context": context}]})
    return {"data": data}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out-dir", default="sample/jglue")
    ap.add_argument("--source-dir", default="sample/source")
    a = ap.parse_args(argv)
    root = Path(a.out_dir) / "datasets"
    v = VERSION
    splits = {
        "marc_ja": _split(marc_ja(random.Random(1), 72), 48),
        "jsts": _split(jsts(random.Random(2), 72), 48),
        "jnli": _split(jnli(random.Random(3), 72), 48),
        "jcommonsenseqa": _split(jcommonsenseqa(random.Random(4)), 40),
    }
    for task, (train, valid) in splits.items():
        _jsonl(root / f"{task}-v{v}" / f"train-v{v}.json", train)
        _jsonl(root / f"{task}-v{v}" / f"valid-v{v}.json", valid)
    paras = first_paragraphs(Path(a.source_dir) / "wiki_articles.txt")
    for split, items in (("train", QA_TRAIN), ("valid", QA_VALID)):
        path = root / f"jsquad-v{v}" / f"{split}-v{v}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(jsquad(paras, items, split), ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
