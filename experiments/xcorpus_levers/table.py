"""The left-out levers' table (#22, `make experiment NAME=xcorpus_levers`), from the runs' own
summaries.

    python experiments/xcorpus_levers/table.py [LOG_DIR] [OUT_DIR] [RECIPE_CV]
    # defaults: logs/xcorpus_levers reports/xcorpus_levers reports/ser-mid-multi/cv

LOG_DIR holds one leave-one-corpus-out multirun per lever, or per lever and seed
(`<lever>/` or `<lever>_seed<N>/`); each is summarised into OUT_DIR/<sweep>/ (summary.py).
RECIPE_CV holds the recipe's own leave-one-corpus-out summaries (`xcorpus*/summary.json`,
`make xcorpus`). Per lever and corpus left out: the precision the runs trained in (bf16-mixed
or fp32 by the CPU, as each run recorded it), each run's accuracy on every clip of that corpus,
mean ± sd over the seeds, the gain over the recipe on the same corpus and the pooled seed sd of
the two, into OUT_DIR/levers.{json,md}.

The rule, written into the Makefile before five of the six runs had ended: a lever is kept
when on every corpus it ran on its gain is at least the pooled seed sd (undecided until it and
the recipe have two runs on each).
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path

from experiments.ablation.table import cell, pooled_sd, spread
from speech_emotion_recognition.training.summary import left_out_runs, summarize

RECIPE = "recipe"


def table(log_dir: Path, out_dir: Path, recipe_cv: Path) -> dict:
    """Summaries per sweep and the levers' table; returns what levers.json holds."""
    summaries = {RECIPE: sorted(recipe_cv.glob("xcorpus*/summary.json"))}
    for sweep in sorted(p for p in log_dir.iterdir() if any(p.glob("*/metrics.json"))):
        summarize(sweep, out_dir / sweep.name)
        lever = re.sub(r"_seed\d+$", "", sweep.name)
        summaries.setdefault(lever, []).append(out_dir / sweep.name / "summary.json")
    levers = {}
    for name, paths in summaries.items():
        corpora = {}
        for corpus, runs in sorted(left_out_runs(paths).items()):
            corpora[corpus] = {
                "seeds": [seed for seed, _ in runs],
                "per_run": [row["test_accuracy"] for _, row in runs],
                "accuracy": spread([row["test_accuracy"] for _, row in runs]),
                "ua": spread([row["test_ua"] for _, row in runs]),
                "precision": sorted({row["precision"] or "–" for _, row in runs}),
            }
        levers[name] = {"corpora": corpora}
    recipe = levers[RECIPE]["corpora"]
    for name, lever in levers.items():
        if name == RECIPE:
            continue
        decided = True
        for corpus, figures in lever["corpora"].items():
            base = recipe.get(corpus)
            if base is None:
                decided = False
                continue
            figures["gain"] = figures["accuracy"]["mean"] - base["accuracy"]["mean"]
            figures["margin"] = pooled_sd(figures["accuracy"], base["accuracy"])
            decided &= min(figures["accuracy"]["runs"], base["accuracy"]["runs"]) >= 2
        gains = [f["gain"] >= f["margin"] for f in lever["corpora"].values() if "gain" in f]
        lever["kept"] = all(gains) if decided else None  # None: undecided
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "levers.json").write_text(json.dumps(levers, indent=2) + "\n")
    (out_dir / "levers.md").write_text(markdown(levers))
    return levers


def markdown(levers: dict) -> str:
    """Recipe rows first, then each lever's, on the corpora the levers ran on."""
    shown = {c for name, lever in levers.items() if name != RECIPE for c in lever["corpora"]}
    lines = [
        "| lever | corpus left out | runs (seeds) | trained in | accuracy per run | mean ± sd | UA "
        "| vs the recipe | pooled seed sd | kept |",
        "|---|---|---:|---|---|---:|---:|---:|---:|---|",
    ]
    for name, lever in levers.items():
        kept = (
            {True: "yes", False: "no", None: "undecided"}[lever["kept"]] if name != RECIPE else ""
        )
        for corpus, f in lever["corpora"].items():
            if corpus not in shown:
                continue
            gain = f"{f['gain']:+.3f}" if "gain" in f else "–"
            margin = f"{f['margin']:.3f}" if not math.isnan(f.get("margin", math.nan)) else "–"
            per_run = ", ".join(f"{a:.3f}" for a in f["per_run"])
            lines.append(
                f"| {name} | {corpus} | {len(f['seeds'])} ({', '.join(f['seeds'])}) "
                f"| {', '.join(f['precision'])} | {per_run} "
                f"| **{cell(f['accuracy'])}** | {f['ua']['mean']:.3f} | {gain} | {margin} "
                f"| {kept} |"
            )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    defaults = ["logs/xcorpus_levers", "reports/xcorpus_levers", "reports/ser-mid-multi/cv"]
    if len(sys.argv) > 4:
        sys.exit(
            "usage: python experiments/xcorpus_levers/table.py [LOG_DIR] [OUT_DIR] [RECIPE_CV]"
        )
    table(*(Path(a) for a in [*sys.argv[1:], *defaults[len(sys.argv) - 1 :]]))
