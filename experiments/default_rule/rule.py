"""Which release is the default (#22), by the rule fixed before the English-mix one finished.

    python experiments/default_rule/rule.py SPLITS CANDIDATE [CANDIDATE ...] [--out DIR]
    e.g. python experiments/default_rule/rule.py reports/ser-small-multi/training/splits \\
             ser-small-ravdess ser-small-multi ser-small-multi-v2

A CANDIDATE is a release (`models/<name>.safetensors`) or NAME=WEIGHTS, a training run's
`model.safetensors` not yet released (a lever trained at the release's budget), each window
scored once; a suffix @SECONDS (`ser-mid-multi@0.032`) scores each window also moved that much
earlier and later (speech.shift_seconds), an inference setting as a candidate of its own. Every
candidate is scored by evaluate.py (speech detection on, no added noise) on the CREMA-D
and RAVDESS validation speakers of the split in SPLITS (the candidate's training run's
manifests: seed 42, RAVDESS validation actors 09 and 18) and on all of URDU, a corpus none of
them trained on. The score is the mean of the three accuracies, each corpus weighing equally;
the candidate with the highest score is the default. No test speaker is read. Writes
evaluate.py's reports to DIR/<candidate>/{val_noise,urdu}/ (kept when already there; val_noise
holds the clean figures too) and the table to DIR/rule.{json,md}; DIR is reports/default_rule
unless --out says.

Robustness, added before a release trained for noise finished (#22): each candidate is also
scored on the same validation speakers at 10 dB SNR of white, pink, babble and recorded noise;
`noise_loss` is the clean accuracy minus the mean of those four. A candidate whose score is
within SCORE_TOLERANCE of the highest (the largest seed sd of this score in the ablation) and
that loses at least NOISE_MARGIN less in noise is the default instead; the one losing least, if
several do.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from experiments.ablation.table import noise_loss
from speech_emotion_recognition import PROJECT_ROOT

OUT = PROJECT_ROOT / "reports" / "default_rule"
MODELS = PROJECT_ROOT / "models"
SCORE_TOLERANCE = 0.018
NOISE_MARGIN = 0.02
NOISE = ["noise.types=[white,pink,babble,recorded]", "noise.snr_db=[10]"]
EVALUATE = PROJECT_ROOT / "speech_emotion_recognition" / "evaluate.py"


def evaluate(weights: Path, folder: Path, overrides: list[str]) -> dict:
    """evaluate.py's metrics.json for `weights` on one set, run once into `folder`."""
    if not (folder / "metrics.json").exists():
        command = [sys.executable, str(EVALUATE), f"ckpt={weights}", "noise.types=[]", *overrides]
        subprocess.run([*command, f"hydra.run.dir={folder}"], check=True)
    return json.loads((folder / "metrics.json").read_text())


def score(weights: Path, shift: float, splits: Path, out: Path) -> dict[str, float]:
    # One pass over the validation speakers: clean (the score) and at 10 dB (noise_loss)
    windows = f"speech.shift_seconds={shift}"
    val = evaluate(weights, out / "val_noise", ["data=multi", "subset=val", windows,
                                                f"manifest_dir={splits}", *NOISE])  # fmt: skip
    urdu = evaluate(weights, out / "urdu", ["data=urdu", "subset=all", windows])
    figures = {
        "val_cremad": val["per_corpus"]["cremad"]["accuracy"],
        "val_ravdess": val["per_corpus"]["ravdess"]["accuracy"],
        "urdu": urdu["accuracy"],
    }
    return {**figures, "score": sum(figures.values()) / len(figures),
            "noise_loss": noise_loss(val)}  # fmt: skip


def candidate(argument: str) -> tuple[str, Path, float]:
    """(row name, weights, shift in seconds): NAME=WEIGHTS as given, or a release's name and its
    weights in models/; the shift after an @, else 0 (each window once)."""
    row, _, shift = argument.partition("@")
    name, _, weights = row.partition("=")
    path = Path(weights).resolve() if weights else MODELS / f"{name}.safetensors"
    return (f"{name}@{shift}" if shift else name), path, float(shift or 0)


def choose(rows: dict[str, dict]) -> str:
    """The highest score, unless a release within SCORE_TOLERANCE of it loses NOISE_MARGIN less."""
    best = max(rows, key=lambda release: rows[release]["score"])
    robust = [
        release
        for release, r in rows.items()
        if r["score"] >= rows[best]["score"] - SCORE_TOLERANCE
        and r["noise_loss"] <= rows[best]["noise_loss"] - NOISE_MARGIN
    ]
    return min(robust, key=lambda release: rows[release]["noise_loss"]) if robust else best


def main(splits: Path, candidates: list[tuple[str, Path, float]], out: Path = OUT) -> None:
    rows = {name: score(weights, shift, splits, out / name) for name, weights, shift in candidates}
    default = choose(rows)
    (out / "rule.json").write_text(json.dumps({"default": default, "scores": rows}, indent=2))
    lines = [
        "| release | val CREMA-D | val RAVDESS | URDU (all) | score | val accuracy lost at 10 dB "
        "| default |",
        "|---|---:|---:|---:|---:|---:|---|",
        *(
            f"| `{release}` | {r['val_cremad']:.3f} | {r['val_ravdess']:.3f} | {r['urdu']:.3f} "
            f"| {r['score']:.3f} | {r['noise_loss']:.3f} | {'yes' if release == default else ''} |"
            for release, r in rows.items()
        ),
    ]
    (out / "rule.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("splits", type=Path)
    parser.add_argument("candidates", nargs="+", type=candidate)
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    main(args.splits.resolve(), args.candidates, args.out.resolve())
