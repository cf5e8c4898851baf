"""The generalisation levers' table (#42), from the runs' own files.

    python experiments/generalisation/table.py [LOG_DIR] [OUT_DIR]
    # defaults: logs/generalisation reports/generalisation

LOG_DIR/<arm>/<corpus>_seed<seed>/metrics.json is one run with <corpus> left out (run.sh). Each
run's metrics.json (and its babble evaluation's, as <run>.babble_val.json) is copied to
OUT_DIR/<arm>/; OUT_DIR/generalisation.{json,md} holds the table.
The score and keep rule are the protocol's (README.md beside this file), fixed before any run.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from speech_emotion_recognition.training.summary import corpus_figures as run_figures

LEFT_OUT = ("cremad", "ravdess", "nemo")
UNSEEN = "urdu"
CORPORA = (*LEFT_OUT, UNSEEN)
NAMES = {"cremad": "CREMA-D", "ravdess": "RAVDESS", "nemo": "nEMO", "urdu": "URDU"}
BASE = "base"
# Arms judged by a second figure besides a score not below base's: babble by its validation
# accuracy lost in babble at 0 dB (run.sh's evaluate.py into each run's babble_val/), antialias
# by its stability on URDU scored once (stability.py's OUT_DIR/stability.json).
ROBUSTNESS = {"babble"}
STABILITY = "antialias"


def corpus_figures(metrics: dict, corpus: str) -> dict:
    """The logged accuracy, and from the corpus's own confusion counts: UA over the classes it
    has, each class's recall, and the share of its clips predicted neutral against the share
    that is."""
    figures = run_figures(metrics, corpus)
    matrix = np.asarray(metrics["confusion"][f"test/{corpus}"], dtype=float)
    neutral = metrics["class_names"].index("neutral")
    return {
        "accuracy": metrics["test"][f"test/{corpus}/acc"],
        "ua": figures["test_ua"],
        "recall": figures["recall"],
        "predicted_neutral": float(matrix[:, neutral].sum() / matrix.sum()),
        "neutral_clips": float(matrix[neutral].sum() / matrix.sum()),
    }


def arm_runs(arm_dir: Path) -> dict[int, dict[str, list[dict]]]:
    """seed -> corpus -> the figures of that corpus in each of the seed's runs that tested it
    unseen: the left-out corpus of a run, URDU in every run, nEMO too where the arm is no_nemo."""
    seeds: dict[int, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(arm_dir.glob("*_seed*/metrics.json")):
        metrics = json.loads(path.read_text())
        for corpus in CORPORA:
            if f"test/{corpus}" in metrics["confusion"]:
                seeds[metrics["seed"]][corpus].append(corpus_figures(metrics, corpus))
    return seeds


def babble_losses(arm_dir: Path) -> dict[int, list[float]]:
    """seed -> each evaluated run's validation accuracy clean minus in babble at 0 dB."""
    seeds: dict[int, list[float]] = defaultdict(list)
    for path in sorted(arm_dir.glob("*_seed*/babble_val/metrics.json")):
        rows = json.loads(path.read_text())["noise"]
        clean = next(r["accuracy"] for r in rows if r["snr_db"] is None)
        babble = next(r["accuracy"] for r in rows if (r["noise"], r["snr_db"]) == ("babble", 0))
        seed = json.loads((path.parent.parent / "metrics.json").read_text())["seed"]
        seeds[seed].append(clean - babble)
    return seeds


def spread(values: list[float]) -> dict:
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return {"mean": statistics.fmean(values), "sd": sd, "runs": len(values)}


def summarise(seeds: dict[int, dict[str, list[dict]]], losses: dict[int, list[float]]) -> dict:
    """Per corpus its mean over seeds (each seed's runs averaged first), per class recall, the
    score over the seeds that have every corpus, and the babble loss over the seeds whose runs
    were all evaluated in babble."""
    per_seed = {
        seed: {c: statistics.fmean(f["accuracy"] for f in figures) for c, figures in runs.items()}
        for seed, runs in seeds.items()
    }
    arm: dict = {"corpora": {}}
    for corpus in CORPORA:
        figures = [f for runs in seeds.values() for f in runs.get(corpus, [])]
        if not figures:
            continue
        classes = figures[0]["recall"]
        arm["corpora"][corpus] = {
            "accuracy": spread([s[corpus] for s in per_seed.values() if corpus in s]),
            "ua": statistics.fmean(f["ua"] for f in figures),
            "recall": {c: statistics.fmean(f["recall"][c] for f in figures) for c in classes},
            "predicted_neutral": statistics.fmean(f["predicted_neutral"] for f in figures),
            "neutral_clips": figures[0]["neutral_clips"],
        }
    complete = [s for s in per_seed.values() if all(c in s for c in CORPORA)]
    arm["complete_seeds"] = len(complete)
    if complete:
        arm["score"] = spread([statistics.fmean(s[c] for c in CORPORA) for s in complete])
    runs = {seed: len(corpora.get(UNSEEN, [])) for seed, corpora in seeds.items()}
    evaluated = [statistics.fmean(v) for seed, v in losses.items() if len(v) == runs.get(seed)]
    if evaluated:
        arm["babble_loss"] = spread(evaluated)
    return arm


def pooled_sd(a: dict, b: dict) -> float:
    return math.sqrt((a["sd"] ** 2 + b["sd"] ** 2) / 2)


def decide(arms: dict, stable_enough: bool | None = None) -> None:
    """The keep rule: the score beats base's by at least the pooled seed sd of the two. An arm
    for robustness instead loses less in babble than base by at least their pooled seed sd, and
    antialias is as stable once as base is in three passes (`stable_enough`), each at a score
    not below base's by more than the score's. Undecided (None) until both have two complete
    seeds, of babble evaluations too where they count, and antialias until its stability is."""
    base = arms.get(BASE)
    for name, arm in arms.items():
        if name == BASE or base is None or "score" not in arm or "score" not in base:
            continue
        arm["gain"] = arm["score"]["mean"] - base["score"]["mean"]
        seeds = [arm["complete_seeds"], base["complete_seeds"]]
        if name in ROBUSTNESS:
            seeds += [a.get("babble_loss", {}).get("runs", 0) for a in (arm, base)]
        if min(seeds) < 2:
            arm["kept"] = None
            continue
        arm["margin"] = pooled_sd(arm["score"], base["score"])
        if name == STABILITY:
            level = arm["gain"] >= -arm["margin"]
            arm["kept"] = None if stable_enough is None else stable_enough and level
            continue
        if name not in ROBUSTNESS:
            arm["kept"] = arm["gain"] >= arm["margin"]
            continue
        less = base["babble_loss"]["mean"] - arm["babble_loss"]["mean"]
        margin = pooled_sd(arm["babble_loss"], base["babble_loss"])
        arm["kept"] = less >= margin and arm["gain"] >= -arm["margin"]


def cell(figure: dict | None) -> str:
    if figure is None:
        return "–"
    sd = "" if math.isnan(figure["sd"]) else f" ± {figure['sd']:.3f}"
    return f"{figure['mean']:.3f}{sd}"


def markdown(arms: dict) -> str:
    lines = [
        "Generated by `python experiments/generalisation/table.py` from the runs' own files; "
        "protocol, score and keep rule in "
        "[experiments/generalisation](../../experiments/generalisation/README.md). "
        "Accuracy on each corpus while no training or model selection saw it, mean ± sd over "
        "training seeds (each seed's runs averaged first). Lost in babble: validation accuracy "
        "clean minus in babble at 0 dB (the runs' validation speakers), where measured.",
        "",
        "| arm | seeds complete | " + " | ".join(NAMES[c] for c in CORPORA)
        + " | score | vs base | lost in babble 0 dB | kept |",
        "|---|---:|" + "---:|" * len(CORPORA) + "---:|---:|---:|---|",
    ]  # fmt: skip
    for name, arm in arms.items():
        cells = [cell(arm["corpora"].get(c, {}).get("accuracy")) for c in CORPORA]
        gain = f"{arm['gain']:+.3f}" if "gain" in arm else ""
        verdicts = {None: "undecided (runs or a second figure missing)", True: "yes", False: "no"}
        kept = "" if name == BASE else verdicts[arm.get("kept")]
        lines.append(
            f"| {name} | {arm['complete_seeds']} | " + " | ".join(cells)
            + f" | {cell(arm.get('score'))} | {gain} | {cell(arm.get('babble_loss'))} | {kept} |"
        )  # fmt: skip
    lines += [
        "",
        "Recall per class on each unseen corpus (mean over the arm's runs), UA over the classes "
        "the corpus has, and the share of its clips predicted neutral against the share that is:",
        "",
        "| arm | corpus | UA | recall per class | predicted neutral | neutral clips |",
        "|---|---|---:|---|---:|---:|",
    ]
    for name, arm in arms.items():
        for corpus, figures in arm["corpora"].items():
            recall = ", ".join(f"{c} {r:.2f}" for c, r in figures["recall"].items())
            lines.append(
                f"| {name} | {NAMES[corpus]} | {figures['ua']:.3f} | {recall} | "
                f"{figures['predicted_neutral']:.2f} | {figures['neutral_clips']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def table(log_dir: Path, out_dir: Path) -> dict:
    arms = {}
    order = sorted((p for p in log_dir.iterdir() if p.is_dir()), key=lambda p: p.name != BASE)
    for arm_dir in order:
        seeds = arm_runs(arm_dir)
        if not seeds:
            continue
        arms[arm_dir.name] = summarise(seeds, babble_losses(arm_dir))
        (out_dir / arm_dir.name).mkdir(parents=True, exist_ok=True)
        for path in arm_dir.glob("*_seed*/metrics.json"):
            shutil.copyfile(path, out_dir / arm_dir.name / f"{path.parent.name}.json")
        for path in arm_dir.glob("*_seed*/babble_val/metrics.json"):
            run = path.parent.parent.name
            shutil.copyfile(path, out_dir / arm_dir.name / f"{run}.babble_val.json")
    stability = out_dir / "stability.json"
    decide(arms, json.loads(stability.read_text())["stable_enough"] if stability.exists() else None)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "generalisation.json").write_text(json.dumps(arms, indent=2) + "\n")
    (out_dir / "generalisation.md").write_text(markdown(arms))
    return arms


if __name__ == "__main__":
    if len(sys.argv) > 3:
        sys.exit("usage: python experiments/generalisation/table.py [LOG_DIR] [OUT_DIR]")
    args = sys.argv[1:] + ["logs/generalisation", "reports/generalisation"][len(sys.argv) - 1 :]
    print(markdown(table(Path(args[0]), Path(args[1]))))
