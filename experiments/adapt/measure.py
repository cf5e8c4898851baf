"""What adapt=speaker gains and costs, from inference.py's per-file probabilities.

    python experiments/adapt/measure.py PREDICTIONS.csv DATA MODEL [... DATA MODEL] --out DIR

Each PREDICTIONS.csv is `inference.py output=` of MODEL on all of a corpus that it never
trained on, DATA that corpus's data option (urdu, nemo, cremad): its parser gives each file's
label and speaker. Only files whose label is one of the model's classes count. For k clips per
speaker (1, 5, 20, all) drawn at random without replacement (`--repeats` draws, seeds 0…),
accuracy before and after centring each speaker's log-probabilities over the drawn clips; then
the skewed case: per speaker 10 clips, 8 of one emotion (drawn among those the speaker has 8
of) and 2 of the others. Each twice: argmax over all the model's classes, and over the corpus's
own classes only. Mean ± sample sd over the draws, into DIR/adapt.{json,md}.
"""

from __future__ import annotations

import argparse
import csv
import json
import random
import statistics
from collections import defaultdict
from pathlib import Path

import hydra
import numpy as np
from hydra import compose, initialize_config_dir

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.predict.adapt import centred

KS = (1, 5, 20, None)  # None: all of a speaker's clips
SKEW_SIZE, SKEW_ONE = 10, 8


def corpus_files(data: str) -> dict[str, tuple[str, str]]:
    """path -> (label, speaker) from the data option's parser."""
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        cfg = compose("train", overrides=[f"data={data}"])
    clips = hydra.utils.instantiate(cfg.data.corpus)(cfg.data.root)
    return {str(Path(c.path).resolve()): (c.label, c.speaker) for c in clips}


def load(predictions: Path, data: str) -> tuple[dict[str, list[tuple[np.ndarray, int]]], list]:
    """Per speaker: (probabilities, true class index) of each predicted file of a known class."""
    truth = corpus_files(data)
    with open(predictions, newline="") as f:
        rows = [r for r in csv.DictReader(f) if not r["error"]]
    names = [c for c in rows[0] if c not in ("path", "label", "confidence", "error")]
    speakers: dict[str, list[tuple[np.ndarray, int]]] = defaultdict(list)
    for row in rows:
        label, speaker = truth[str(Path(row["path"]).resolve())]
        if label in names:
            probabilities = np.array([float(row[n]) for n in names])
            speakers[speaker].append((probabilities, names.index(label)))
    return dict(speakers), names


def restricted(speakers: dict) -> dict:
    """The same files with the model's probabilities over the corpus's own classes only
    (renormalised): how a corpus with fewer classes than the model is usually scored."""
    present = sorted({y for group in speakers.values() for _, y in group})
    index = {c: i for i, c in enumerate(present)}
    return {s: [(p[present] / p[present].sum(), index[y]) for p, y in group]
            for s, group in speakers.items()}  # fmt: skip


def accuracy(groups: list[list[tuple[np.ndarray, int]]], adapt: bool) -> float:
    right = total = 0
    for group in groups:
        probabilities = np.stack([p for p, _ in group])
        if adapt and len(group) > 1:
            probabilities = centred(probabilities)
        right += sum(int(p.argmax() == y) for p, (_, y) in zip(probabilities, group, strict=True))
        total += len(group)
    return right / total


def spread(values: list[float]) -> dict:
    return {"mean": statistics.fmean(values), "sd": statistics.stdev(values) if len(values) > 1
            else 0.0, "runs": len(values)}  # fmt: skip


def measure(speakers: dict, repeats: int) -> dict:
    results = {}
    for k in KS:
        before, after = [], []
        for seed in range(repeats if k else 1):
            rng = random.Random(seed)
            groups = [rng.sample(g, min(k, len(g))) if k else g for g in speakers.values()]
            before.append(accuracy(groups, False))
            after.append(accuracy(groups, True))
        gains = [a - b for a, b in zip(after, before, strict=True)]
        results[str(k or "all")] = {"before": spread(before), "after": spread(after),
                                    "gain": spread(gains)}  # fmt: skip
    before, after, used = [], [], set()
    for seed in range(repeats):
        rng = random.Random(seed)
        groups = []
        for speaker, group in sorted(speakers.items()):
            by_class = defaultdict(list)
            for item in group:
                by_class[item[1]].append(item)
            full = [c for c, items in sorted(by_class.items()) if len(items) >= SKEW_ONE]
            if not full:
                continue
            one = rng.choice(full)
            others = [item for item in group if item[1] != one]
            if len(others) < SKEW_SIZE - SKEW_ONE:
                continue
            groups.append(rng.sample(by_class[one], SKEW_ONE)
                          + rng.sample(others, SKEW_SIZE - SKEW_ONE))  # fmt: skip
            used.add(speaker)
        before.append(accuracy(groups, False))
        after.append(accuracy(groups, True))
    results["skewed"] = {"before": spread(before), "after": spread(after),
                         "gain": spread([a - b for a, b in zip(after, before, strict=True)]),
                         "speakers": len(used)}  # fmt: skip
    return results


def cell(s: dict) -> str:
    return f"{s['mean']:.3f} ± {s['sd']:.3f}" if s["runs"] > 1 else f"{s['mean']:.3f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("triples", nargs="+", help="PREDICTIONS.csv DATA MODEL, repeated")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "reports" / "adapt")
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    report = {}
    groups = args.triples
    for predictions, data, model in zip(groups[::3], groups[1::3], groups[2::3], strict=True):
        speakers, names = load(Path(predictions), data)
        shares = [max(np.bincount([y for _, y in g])) / len(g) for g in speakers.values()]
        one_emotion = sum(share >= 0.8 for share in shares)
        common = {"speakers": len(speakers), "clips": sum(map(len, speakers.values())),
                  "one_emotion_speakers": int(one_emotion), "model": model}  # fmt: skip
        report[f"{data}, all {len(names)} classes"] = {**common, **measure(speakers, args.repeats)}
        present = len({y for group in speakers.values() for _, y in group})
        report[f"{data}, its {present} classes"] = {
            **common,
            **measure(restricted(speakers), args.repeats),
        }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "adapt.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# adapt=speaker on corpora the default release never heard",
        "",
        f"`python experiments/adapt/measure.py`; accuracy of a model that never heard the "
        f"corpus, at default settings, mean ± sample sd over {args.repeats} random draws per row.",
        "",
        "Scored over all the model's classes (what `inference.py` answers) and over the corpus's "
        "own classes only (the model's probabilities of those, renormalised).",
        "",
        "| model | corpus, classes scored | clips per speaker | before | after | gain |",
        "|---|---|---|---:|---:|---:|",
    ]
    for data, r in report.items():
        for k in [*(str(k or "all") for k in KS), "skewed"]:
            what = (f"{SKEW_SIZE}, {SKEW_ONE} of one emotion ({r[k]['speakers']} speakers)"
                    if k == "skewed" else k)  # fmt: skip
            who = (f"{r['speakers']} speakers, {r['one_emotion_speakers']} of them ≥ 80 % one "
                   f"emotion, {r['clips']} clips")  # fmt: skip
            lines.append(f"| {r['model']} | {data} ({who}) | {what} | "
                         f"{cell(r[k]['before'])} | {cell(r[k]['after'])} | "
                         f"{cell(r[k]['gain'])} |")  # fmt: skip
    (args.out / "adapt.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
