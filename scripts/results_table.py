"""The README's "Results at a glance" table, generated from the reports, never typed:

    python scripts/results_table.py            # rewrite the table in README.md
    python scripts/results_table.py --check    # exit 1 if README.md's table is not this one

One row per shipped release (a model card in models/, the default first): its size, its files/s
at default settings (reports/speed/speed.json, `scripts/benchmark.py models=[] releases=all`),
its recipe's accuracy on speakers it never heard (reports/<release>/cv/kfold*/summary.json) and
on corpora it never heard (reports/<release>/cv/xcorpus*/summary.json), mean ± sample sd.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

from omegaconf import OmegaConf

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.predict.predictor import load_classifier
from speech_emotion_recognition.training.summary import left_out_runs

BEGIN, END = "<!-- results table: scripts/results_table.py -->", "<!-- end of results table -->"
CORPORA = {
    "cremad": "CREMA-D",
    "ravdess": "RAVDESS",
    "tess": "TESS",
    "urdu": "URDU",
    "nemo": "nEMO",
}


def default_release(root: Path) -> str:
    """The release `inference.py` loads unless told otherwise."""
    config = OmegaConf.load(root / "conf" / "inference.yaml")
    return Path(OmegaConf.to_container(config)["ckpt"]).stem  # unresolved: only the name


def parameters(weights: Path) -> int:
    """The network's parameters (buffers such as the mel filterbank left out)."""
    return sum(p.numel() for p in load_classifier(weights).parameters())


def unseen_speakers(reports: Path) -> str:
    """Speaker k-fold of the release's recipe: the corpus, mean ± sd over the folds."""
    cells = []
    for path in sorted(reports.glob("cv/kfold/summary.json")):
        summary = json.loads(path.read_text())
        data = dict(o.split("=", 1) for o in summary["common_overrides"]).get("data", "ravdess")
        accuracy = summary["test_accuracy"]
        cells.append(f"{CORPORA.get(data, data)} {accuracy['mean']:.3f} ± {accuracy['sd']:.3f} "
                     f"({summary['runs']} folds)")  # fmt: skip
    return "; ".join(cells) or "–"


def unseen_corpora(reports: Path) -> str:
    """Each corpus the release's recipe left out (or tested in every leave-out run and never
    trained on): mean ± sd over its runs."""
    runs = left_out_runs(sorted(reports.glob("cv/xcorpus*/summary.json")))
    cells = []
    for corpus, items in sorted(runs.items()):
        accuracy = [r["test_accuracy"] for _, r in items]
        sd = f" ± {statistics.stdev(accuracy):.3f}" if len(accuracy) > 1 else ""
        cells.append(f"{CORPORA.get(corpus, corpus)} {statistics.fmean(accuracy):.3f}{sd}")
    seeds = {seed for items in runs.values() for seed, _ in items}
    return ", ".join(cells) + f" ({len(seeds)} seeds)" if cells else "–"


def table(root: Path = PROJECT_ROOT) -> str:
    default = default_release(root)
    names = sorted((p.stem for p in (root / "models").glob("*.md")),  # a release has a card
                   key=lambda n: (n != default, n))  # fmt: skip
    speed = json.loads((root / "reports" / "speed" / "speed.json").read_text())
    lines = [
        "| release | parameters | weights | files/s | speakers it never heard | "
        "corpora it never heard (left out) |",
        "|---|---:|---:|---:|---|---|",
    ]
    for name in names:
        weights = root / "models" / f"{name}.safetensors"
        reports = root / "reports" / name
        files = speed["releases"].get(name, {}).get("files_per_s")
        lines.append(
            f"| [`{name}`](models/{name}.md){' (default)' if name == default else ''} "
            f"| {parameters(weights) / 1e6:.2f} M | {weights.stat().st_size / 1e6:.1f} MB "
            f"| {f'{files:.1f}' if files else '–'} | {unseen_speakers(reports)} "
            f"| {unseen_corpora(reports)} |"
        )
    note = (
        "Accuracy over six emotions (chance 0.17) of each release's recipe retrained on other "
        "speakers (speaker 5-fold: every speaker tested once) and without one corpus (tested on "
        "all of it), mean ± sample sd; each model card links the summaries and their settings. "
        f"files/s: `inference.py` at its default settings on "
        f"{speed['clips']}, model loading included, {speed['machine']} "
        f"([reports/speed](reports/speed/speed.md))."
    )
    return "\n".join([BEGIN, *lines, "", note, END])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if README.md differs")
    readme = PROJECT_ROOT / "README.md"
    text = readme.read_text()
    if BEGIN not in text or END not in text:
        print(f"README.md has no {BEGIN} … {END} block", file=sys.stderr)
        return 1
    head, rest = text.split(BEGIN, 1)
    new = head + table() + rest.split(END, 1)[1]
    if parser.parse_args().check:
        if new != text:
            print("README.md's results table is not the generated one: run "
                  "`python scripts/results_table.py`", file=sys.stderr)  # fmt: skip
            return 1
        return 0
    readme.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
