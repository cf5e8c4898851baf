"""The generalisation ablation's table (#22), from the arms' own run records.

    python scripts/ablation.py [LOG_DIR] [OUT_DIR]     # defaults: logs/ablation reports/ablation

LOG_DIR holds one multirun per arm (`make ablation`: LOG_DIR/<arm>/<run>/metrics.json). Each
arm is summarised into OUT_DIR/<arm>/ (summary.py: its runs' metrics and manifests), then one
table of every arm, mean ± sd over its seeds, goes to OUT_DIR/ablation.{json,md}.

The score that chooses levers was fixed before any arm ran: the mean of three accuracies, each
corpus weighing equally — CREMA-D and RAVDESS validation speakers (within-corpus) and URDU, a
corpus in another language that no arm trains on (unseen). A lever is kept when its mean score
beats the base arm's by at least the pooled seed sd of the two arms (undecided until both have
two runs). The English corpora's test speakers are never read here.
"""

from __future__ import annotations

import json
import math
import statistics
import sys
from pathlib import Path

from speech_emotion_recognition.summary import summarize

FIGURES = {
    "val_cremad": "val/cremad/acc",
    "val_ravdess": "val/ravdess/acc",
    "unseen_urdu": "test/urdu/acc",
}
BASE = "base"


def _runs(arm_dir: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted(arm_dir.glob("*/metrics.json"))]


def _figures(metrics: dict) -> dict[str, float]:
    stages = {**metrics["val"], **metrics["test"]}
    values = {name: stages[key] for name, key in FIGURES.items()}
    values["score"] = statistics.fmean(values.values())
    return values


def _spread(values: list[float]) -> dict[str, float]:
    sd = statistics.stdev(values) if len(values) > 1 else math.nan
    return {"mean": statistics.fmean(values), "sd": sd, "runs": len(values)}


def table(log_dir: Path, out_dir: Path) -> dict:
    """Summaries per arm and the ablation table; returns what ablation.json holds."""
    arms: dict[str, dict] = {}
    for arm_dir in sorted(p for p in log_dir.iterdir() if p.is_dir()):
        runs = _runs(arm_dir)
        if not runs:
            continue
        summarize(arm_dir, out_dir / arm_dir.name)
        per_run = [_figures(m) for m in runs]
        arms[arm_dir.name] = {
            "seeds": [m["seed"] for m in runs],
            "epochs": sorted({m["epochs"] for m in runs}),
            "fit_minutes": round(statistics.fmean(m["fit_seconds"] for m in runs) / 60, 1),
            **{k: _spread([r[k] for r in per_run]) for k in [*FIGURES, "score"]},
        }
    if BASE in arms:
        base = arms[BASE]["score"]
        for arm in arms.values():
            pooled = math.sqrt((arm["score"]["sd"] ** 2 + base["sd"] ** 2) / 2)
            arm["gain"] = arm["score"]["mean"] - base["mean"]
            decided = arm is not arms[BASE] and min(arm["score"]["runs"], base["runs"]) >= 2
            arm["kept"] = (arm["gain"] >= pooled) if decided else None  # None: undecided
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ablation.json").write_text(json.dumps(arms, indent=2) + "\n")
    (out_dir / "ablation.md").write_text(markdown(arms))
    return arms


def _cell(spread: dict) -> str:
    sd = "" if math.isnan(spread["sd"]) else f" ± {spread['sd']:.3f}"
    return f"{spread['mean']:.3f}{sd}"


def markdown(arms: dict) -> str:
    lines = [
        "| arm | runs | val CREMA-D | val RAVDESS | URDU (unseen) | score | vs base | kept |",
        "|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    for name, arm in arms.items():
        gain = f"{arm['gain']:+.3f}" if "gain" in arm else ""
        kept = "" if name == BASE else {None: "undecided (needs 2 runs)", True: "yes",
                                         False: "no"}[arm.get("kept")]  # fmt: skip
        cells = [_cell(arm[k]) for k in [*FIGURES, "score"]]
        runs = arm["score"]["runs"]
        lines.append(f"| {name} | {runs} | " + " | ".join(cells) + f" | {gain} | {kept} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 3:
        sys.exit("usage: python scripts/ablation.py [LOG_DIR] [OUT_DIR]")
    args = sys.argv[1:] + ["logs/ablation", "reports/ablation"][len(sys.argv) - 1 :]
    print(markdown(table(Path(args[0]), Path(args[1]))))
