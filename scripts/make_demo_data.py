#!/usr/bin/env python3
"""Write the demo claim/headline pairs in assets/demo/ (train, dev, test TSVs).

Each row pairs a claim with a headline that agrees with it, disputes it, or is
about something else (labels: agreed / disagreed / unrelated), in English and
Chinese, in the style of fake-news pair classification. Seeded: reruns give
the same files.
"""
import csv
import os
import random

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "assets", "demo")

EN_CLAIMS = [
    ("the city will ban cars downtown next year", "city"),
    ("drinking coffee every day prevents colds", "coffee"),
    ("the old bridge is closing for repairs in May", "bridge"),
    ("a famous singer has died in a car crash", "singer"),
    ("the museum will be free on Sundays", "museum"),
    ("scientists found water on the moon", "moon"),
    ("the local team won the national cup", "team"),
    ("the new phone battery can explode", "phone"),
    ("schools will close early for the summer", "schools"),
    ("the river flooded the northern villages", "river"),
    ("eating carrots improves night vision", "carrots"),
    ("the mayor resigned after the scandal", "mayor"),
]
EN_AGREE = ["Report confirms {c}", "Officials say {c}", "It is true: {c}", "News: {c}, sources confirm"]
EN_DISAGREE = ["Fact check: it is false that {c}", "Officials deny that {c}", "Rumor debunked: no, {c} is not true",
               "Experts say the claim that {c} is fake"]
ZH_CLAIMS = [
    ("市中心明年将禁止汽车通行", "汽车"),
    ("每天喝咖啡可以预防感冒", "咖啡"),
    ("老桥五月起封闭维修", "老桥"),
    ("著名歌手在车祸中去世", "歌手"),
    ("博物馆周日免费开放", "博物馆"),
    ("科学家在月球上发现了水", "月球"),
    ("本地球队赢得全国冠军", "球队"),
    ("新手机电池可能爆炸", "手机"),
    ("河水淹没了北部村庄", "村庄"),
    ("市长因丑闻辞职", "市长"),
]
ZH_AGREE = ["官方证实：{c}", "消息确认{c}", "最新报道：{c}", "记者核实{c}"]
ZH_DISAGREE = ["辟谣：{c}是假消息", "官方否认{c}", "谣言！{c}不是真的", "专家称{c}的说法不实"]


def rows_for(claims, agree, disagree, rng):
    rows = []
    for i, (claim, _) in enumerate(claims):
        for t in agree:
            rows.append((claim, t.format(c=claim), "agreed"))
        for t in disagree:
            rows.append((claim, t.format(c=claim), "disagreed"))
        others = [c for j, (c, _) in enumerate(claims) if j != i]
        for other in rng.sample(others, 4):
            template = rng.choice(agree + disagree)
            rows.append((claim, template.format(c=other), "unrelated"))
    return rows


def main():
    rng = random.Random(20261124)
    rows = rows_for(EN_CLAIMS, EN_AGREE, EN_DISAGREE, rng) + rows_for(ZH_CLAIMS, ZH_AGREE, ZH_DISAGREE, rng)
    rng.shuffle(rows)
    n = len(rows)
    splits = {"train": rows[: int(n * 0.7)], "dev": rows[int(n * 0.7): int(n * 0.85)], "test": rows[int(n * 0.85):]}
    os.makedirs(OUT, exist_ok=True)
    for name, part in splits.items():
        with open(os.path.join(OUT, f"claims-{name}.tsv"), "w", encoding="utf-8", newline="") as f:
            w = csv.writer(f, delimiter="\t", lineterminator="\n")
            w.writerow(["id", "text_a", "text_b"] + ([] if name == "test" else ["label"]))
            for k, (a, b, label) in enumerate(part):
                w.writerow([f"{name}-{k + 1}", a, b] + ([] if name == "test" else [label]))
        print(name, len(part))


if __name__ == "__main__":
    main()
