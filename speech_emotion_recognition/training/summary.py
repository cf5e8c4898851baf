"""One summary over the runs of a Hydra multirun: speaker k-fold folds or training seeds.

Written at the end of every `train.py -m …` sweep (the Hydra callback in conf/train.yaml)
and rerun by hand with `python speech_emotion_recognition/training/summary.py SWEEP_DIR [OUT_DIR]`,
which also copies each run's metrics.json and val/test manifests into OUT_DIR (for reports/).
"""

from __future__ import annotations

import json
import shutil
import statistics
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.data.clips import read_manifest, write_manifest
from speech_emotion_recognition.emotions import EMOTIONS
from speech_emotion_recognition.metrics import confusion_scores
from speech_emotion_recognition.plots import confusion_matrix_figure, save

FIGURES = {"accuracy": "acc", "ua": "ua", "macro_f1": "f1"}


def _run(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    overrides_file = run_dir / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.exists() else []
    # where a stopped run resumed from says nothing about it, and names a folder of this machine
    kept = [o for o in overrides or [] if not o.startswith("ckpt_path=")]
    return {"dir": run_dir, "metrics": metrics, "overrides": kept}


def _spread(values: list[float]) -> dict[str, float]:
    return {
        "mean": statistics.fmean(values),
        "sd": statistics.stdev(values) if len(values) > 1 else 0.0,
        "min": min(values),
        "max": max(values),
    }


def summarize(sweep_dir: str | Path, out_dir: str | Path | None = None) -> dict:
    """Per-run and mean ± sd (sample sd) of test and validation accuracy, UA and macro-F1, and
    the test confusion matrix pooled over runs, into summary.{json,md} and a figure."""
    sweep_dir = Path(sweep_dir)
    out = Path(out_dir) if out_dir else sweep_dir
    runs = sorted(
        (_run(p.parent) for p in sweep_dir.glob("*/metrics.json")),
        key=lambda r: int(r["dir"].name) if r["dir"].name.isdigit() else r["dir"].name,
    )
    if not runs:
        raise FileNotFoundError(f"No */metrics.json under {sweep_dir}: did the runs finish?")
    # The overrides the runs do not share name each run (split.fold=3, seed=2).
    shared = set.intersection(*(set(r["overrides"]) for r in runs))
    rows = []
    for r in runs:
        rows.append(
            {
                "run": r["dir"].name,
                "varies": " ".join(o for o in r["overrides"] if o not in shared),
                **{
                    f"{stage}_{name}": r["metrics"][stage][f"{stage}/{key}"]
                    for stage in ("test", "val")
                    for name, key in FIGURES.items()
                },
                "test_clips": int(np.sum(r["metrics"].get("confusion", {}).get("test", 0))),
            }
        )
    summary: dict[str, Any] = {
        "runs": len(rows),
        "common_overrides": sorted(shared),
        "per_run": rows,
        **{
            f"{stage}_{name}": _spread([row[f"{stage}_{name}"] for row in rows])
            for stage in ("test", "val")
            for name in FIGURES
        },
    }
    matrices = [r["metrics"]["confusion"]["test"] for r in runs if "confusion" in r["metrics"]]
    if len(matrices) == len(runs):
        pooled = np.sum(matrices, axis=0)
        summary["pooled_test"] = {"confusion_matrix": pooled.tolist(), **confusion_scores(pooled)}
        title = f"test, pooled over {len(runs)} runs ({int(pooled.sum())} clips)"
        names = runs[0]["metrics"].get("class_names", EMOTIONS)
        save(confusion_matrix_figure(pooled, names, title), out / "confusion_matrix_pooled.png")
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    (out / "summary.md").write_text(markdown(summary))
    if out != sweep_dir:
        for r in runs:
            target = out / "runs" / r["dir"].name
            target.mkdir(parents=True, exist_ok=True)
            shutil.copy2(r["dir"] / "metrics.json", target / "metrics.json")
            for name in ("test.csv", "val.csv"):
                if (r["dir"] / "splits" / name).exists():  # rewritten with repository paths
                    write_manifest(read_manifest(r["dir"] / "splits" / name), target / name)
    return summary


def markdown(summary: dict) -> str:
    """The summary as the table the README and model cards quote."""
    names = list(FIGURES)
    header = "| run | varies | " + " | ".join(f"test {n}" for n in names)
    header += " | " + " | ".join(f"val {n}" for n in names) + " |"
    lines = [
        f"# Summary of {summary['runs']} runs",
        "",
        f"Common overrides: `{' '.join(summary['common_overrides']) or '(none)'}`",
        "",
        header,
        "|---|---|" + "---:|" * (2 * len(names)),
    ]
    for row in summary["per_run"]:
        cells = [f"{row[f'{s}_{n}']:.3f}" for s in ("test", "val") for n in names]
        lines.append(f"| {row['run']} | `{row['varies']}` | " + " | ".join(cells) + " |")
    spread = [
        f"**{summary[f'{s}_{n}']['mean']:.3f} ± {summary[f'{s}_{n}']['sd']:.3f}**"
        for s in ("test", "val")
        for n in names
    ]
    lines.append("| mean ± sd | | " + " | ".join(spread) + " |")
    if "pooled_test" in summary:
        pooled = summary["pooled_test"]
        n = int(np.sum(pooled["confusion_matrix"]))
        lines += [
            "",
            f"Pooled over the runs' test clips ({n}; a clip counts once per run that tests it): "
            f"accuracy {pooled['accuracy']:.3f}, "
            f"UA {pooled['ua']:.3f}, macro-F1 {pooled['macro_f1']:.3f}.",
            "",
            "![pooled test confusion matrix](confusion_matrix_pooled.png)",
        ]
    return "\n".join(lines) + "\n"


def tested_corpora(metrics: dict) -> list[str]:
    """The corpora a run's record has test figures of (`test/<corpus>/acc`)."""
    keys = metrics.get("test", {})
    return sorted(k.split("/")[1] for k in keys if k.count("/") == 2 and k.endswith("/acc"))


def corpus_figures(metrics: dict, corpus: str) -> dict:
    """A run's accuracy, UA and macro-F1 on one corpus it tested, and each class's recall, from
    that corpus's confusion counts (macro over the classes it has, as evaluate.py's report;
    the logged figures and no recall where the record kept no counts of its own): a run that
    also tests a corpus it never trains on pools both in `test/acc`."""
    confusion = metrics.get("confusion", {})
    matrix = confusion.get(f"test/{corpus}")
    if matrix is None and tested_corpora(metrics) == [corpus]:
        matrix = confusion.get("test")  # older records: one test corpus, one matrix
    if matrix is None:
        test = metrics["test"]
        logged = {f"test_{name}": test[f"test/{corpus}/{key}"] for name, key in FIGURES.items()}
        return {**logged, "recall": None}
    matrix = np.asarray(matrix, dtype=float)
    truth, hits = matrix.sum(axis=1), np.diag(matrix)
    names = metrics.get("class_names", EMOTIONS)
    recall = {n: float(h / t) for n, h, t in zip(names, hits, truth, strict=True) if t > 0}
    return {**{f"test_{n}": v for n, v in confusion_scores(matrix).items()}, "recall": recall}


def left_out_runs(summaries: Iterable[Path]) -> dict[str, list[tuple[str, dict]]]:
    """The leave-one-corpus-out runs of these summary.json files, per corpus they tested unseen
    (the corpus left out, and any corpus every run tests and none trains on, like URDU): each
    run's training seed (conf/train.yaml's where no override set it) and its figures on that
    corpus (corpus_figures, from the summary's copy of its metrics.json; the summary row where
    none was kept), whether it was the corpus left out, and the precision it trained in (None
    without a record): fp32 and bf16-mixed runs are not the same experiment."""
    default_seed = str(OmegaConf.load(PROJECT_ROOT / "conf" / "train.yaml").seed)
    runs: dict[str, list[tuple[str, dict]]] = {}
    for path in summaries:
        summary = json.loads(Path(path).read_text())
        for row in summary["per_run"]:
            given = [*summary["common_overrides"], *row["varies"].split()]
            overrides = dict(o.split("=", 1) for o in given)
            seed = overrides.get("seed", default_seed)
            held_out = overrides["split.held_out"]
            record = Path(path).parent / "runs" / row["run"] / "metrics.json"
            metrics = json.loads(record.read_text()) if record.exists() else {}
            precision = metrics.get("machine", {}).get("precision")
            figures = {c: corpus_figures(metrics, c) for c in tested_corpora(metrics)}
            figures = figures or {held_out: {"recall": None}}
            for corpus, found in figures.items():
                unseen = {**row, **found, "precision": precision, "left_out": corpus == held_out}
                runs.setdefault(corpus, []).append((seed, unseen))
    return runs


class SummarizeMultirun(Callback):
    """Hydra callback: after a multirun, summarise its runs in the sweep folder."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        if any(sweep_dir.glob("*/metrics.json")):
            summarize(sweep_dir)


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit("usage: python speech_emotion_recognition/training/summary.py SWEEP_DIR [OUT_DIR]")
    summarize(*sys.argv[1:])
