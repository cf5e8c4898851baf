"""The generalisation ablation's table (#22), from the arms' own run records.

    python experiments/ablation/table.py [LOG_DIR] [OUT_DIR]
    # defaults: logs/ablation reports/ablation

LOG_DIR holds one multirun per arm (`make experiment NAME=ablation`:
LOG_DIR/<arm>/<run>/metrics.json). Each
arm is summarised into OUT_DIR/<arm>/ (summary.py: its runs' metrics and manifests), then one
table of every arm, mean ± sd over its seeds, goes to OUT_DIR/ablation.{json,md}.

The score that chooses levers was fixed before any arm ran: the mean of three accuracies, each
corpus weighing equally — CREMA-D and RAVDESS validation speakers (within-corpus) and URDU, a
corpus in another language that no arm trains on (unseen). A lever is kept when its mean score
beats the base arm's by at least the pooled seed sd of the two arms (undecided until both have
two runs). The English corpora's test speakers are never read here.

A lever meant for robustness rather than accuracy (ROBUSTNESS) is judged by a
second figure, fixed before its runs ended: `noise_loss`, the validation accuracy a run loses
at 10 dB SNR, averaged over white, pink, babble and recorded noise (`evaluate.py subset=val
noise.snr_db=[10]` into the run's `noise_val/`, as `make experiment NAME=ablation_noise` runs
it). It is
kept when its noise_loss is below base's by at least their pooled seed sd and its score is not
below base's by more than the score's pooled sd.
"""

from __future__ import annotations

import json
import math
import shutil
import statistics
import sys
from pathlib import Path

from speech_emotion_recognition.training.summary import summarize

FIGURES = {
    "val_cremad": "val/cremad/acc",
    "val_ravdess": "val/ravdess/acc",
    "unseen_urdu": "test/urdu/acc",
}
BASE = "base"
ROBUSTNESS = {"noise_on_clip", "noise_on_clip_matched"}
NOISE_SNR_DB = 10.0


def _runs(arm_dir: Path) -> list[tuple[dict, Path]]:
    return [(json.loads(p.read_text()), p.parent) for p in sorted(arm_dir.glob("*/metrics.json"))]


def noise_losses(evaluation: dict) -> dict[str, float]:
    """Accuracy lost at NOISE_SNR_DB per noise kind of an evaluate.py report."""
    rows = evaluation["noise"]
    clean = next(r["accuracy"] for r in rows if r["snr_db"] is None)
    return {r["noise"]: clean - r["accuracy"] for r in rows if r["snr_db"] == NOISE_SNR_DB}


def noise_loss(evaluation: dict) -> float:
    """Accuracy lost at NOISE_SNR_DB, the mean over the noise kinds of an evaluate.py report."""
    return statistics.fmean(noise_losses(evaluation).values())


def _figures(metrics: dict, run_dir: Path) -> dict[str, float]:
    stages = {**metrics["val"], **metrics["test"]}
    values = {name: stages[key] for name, key in FIGURES.items()}
    values["score"] = statistics.fmean(values.values())
    noise = run_dir / "noise_val" / "metrics.json"
    if noise.is_file():
        losses = noise_losses(json.loads(noise.read_text()))
        values["noise_loss"] = statistics.fmean(losses.values())
        values |= {f"noise_loss_{k}": v for k, v in losses.items()}
    return values


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample sd (nan for one run) and run count."""
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
        for _, run_dir in runs:  # beside the run's metrics that summarize() keeps
            if (run_dir / "noise_val" / "metrics.json").is_file():
                kept = out_dir / arm_dir.name / "runs" / run_dir.name / "noise_val.json"
                shutil.copyfile(run_dir / "noise_val" / "metrics.json", kept)
        per_run = [_figures(m, run_dir) for m, run_dir in runs]
        figures = [k for k in per_run[0] if all(k in r for r in per_run)]
        arms[arm_dir.name] = {
            "seeds": [m["seed"] for m, _ in runs],
            "epochs": sorted({m["epochs"] for m, _ in runs}),
            "fit_minutes": round(statistics.fmean(m["fit_seconds"] for m, _ in runs) / 60, 1),
            **{k: spread([r[k] for r in per_run]) for k in figures},
        }
    if BASE in arms:
        for name, arm in arms.items():
            arm["gain"] = arm["score"]["mean"] - arms[BASE]["score"]["mean"]
            decided = name != BASE and min(arm["score"]["runs"], arms[BASE]["score"]["runs"]) >= 2
            if name in ROBUSTNESS and not ("noise_loss" in arm and "noise_loss" in arms[BASE]):
                decided = False
            arm["kept"] = _kept(name, arm, arms[BASE]) if decided else None  # None: undecided
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "ablation.json").write_text(json.dumps(arms, indent=2) + "\n")
    (out_dir / "ablation.md").write_text(markdown(arms))
    return arms


def pooled_sd(a: dict, b: dict) -> float:
    """The seed sd two arms share, the margin a lever must clear."""
    return math.sqrt((a["sd"] ** 2 + b["sd"] ** 2) / 2)


def _kept(name: str, arm: dict, base: dict) -> bool:
    score_sd = pooled_sd(arm["score"], base["score"])
    if name not in ROBUSTNESS:
        return arm["gain"] >= score_sd
    less_loss = base["noise_loss"]["mean"] - arm["noise_loss"]["mean"]
    return less_loss >= pooled_sd(arm["noise_loss"], base["noise_loss"]) and (
        arm["gain"] >= -score_sd
    )


def cell(figure: dict) -> str:
    """A spread as a table cell: mean ± sd, or the mean alone for a single run."""
    sd = "" if math.isnan(figure["sd"]) else f" ± {figure['sd']:.3f}"
    return f"{figure['mean']:.3f}{sd}"


def markdown(arms: dict) -> str:
    noise = any("noise_loss" in arm for arm in arms.values())
    lines = [
        "| arm | runs | val CREMA-D | val RAVDESS | URDU (unseen) | score | vs base |"
        + (f" val accuracy lost at {NOISE_SNR_DB:g} dB |" if noise else "")
        + " kept |",
        "|---|---:|---:|---:|---:|---:|---:|" + ("---:|" if noise else "") + "---|",
    ]
    for name, arm in arms.items():
        gain = f"{arm['gain']:+.3f}" if "gain" in arm else ""
        kept = "" if name == BASE else {None: "undecided (needs 2 runs)", True: "yes",
                                         False: "no"}[arm.get("kept")]  # fmt: skip
        cells = [cell(arm[k]) for k in [*FIGURES, "score"]] + [gain]
        if noise:
            cells.append(cell(arm["noise_loss"]) if "noise_loss" in arm else "–")
        runs = arm["score"]["runs"]
        lines.append(f"| {name} | {runs} | " + " | ".join(cells) + f" | {kept} |")
    kinds = sorted({k for arm in arms.values() for k in arm if k.startswith("noise_loss_")})
    if kinds:
        lines += [
            "",
            f"Validation accuracy lost at {NOISE_SNR_DB:g} dB SNR, per noise kind:",
            "",
            "| arm | " + " | ".join(k.removeprefix("noise_loss_") for k in kinds) + " |",
            "|---|" + "---:|" * len(kinds),
            *(
                f"| {name} | " + " | ".join(cell(arm[k]) if k in arm else "–" for k in kinds) + " |"
                for name, arm in arms.items()
            ),
        ]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) > 3:
        sys.exit("usage: python experiments/ablation/table.py [LOG_DIR] [OUT_DIR]")
    args = sys.argv[1:] + ["logs/ablation", "reports/ablation"][len(sys.argv) - 1 :]
    print(markdown(table(Path(args[0]), Path(args[1]))))
