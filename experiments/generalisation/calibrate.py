"""Lever 6 of the generalisation screening: class-prior calibration chosen on validation
speakers, applied to the corpora left out (README.md beside this file).

    python experiments/generalisation/calibrate.py [LOG_DIR] [ARM]
    # defaults: logs/generalisation base  ->  LOG_DIR/calibrated/<run>/metrics.json

For every finished run of ARM: its released weights predict its validation clips (speakers of
the training corpora) and its test clips (the corpus left out and URDU); per-class logit
offsets are fitted on validation alone (calibration.prior_bias) and added to the test logits.
Each run's metrics.json holds what the table reads (per-corpus accuracy and confusion counts)
and the offsets, so `table.py` lists `calibrated` as one more arm.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.calibration import prior_bias
from speech_emotion_recognition.data.cache import AudioCache
from speech_emotion_recognition.data.clips import read_manifest
from speech_emotion_recognition.data.datamodule import EmotionDataset
from speech_emotion_recognition.predict.predictor import load_classifier

MAX_SECONDS = 5.0
MIN_RMS = 1.0e-4


@torch.inference_mode()
def predict(classifier, clips, cache: AudioCache, corpora: list[str]) -> tuple:
    """(logits, labels, corpus indices) of the clips, each from its first 5 s as in testing."""
    rate = classifier.features.mel.sample_rate
    dataset = EmotionDataset(clips, cache, int(rate * MAX_SECONDS), False, None, corpora,
                             classifier.class_names)  # fmt: skip
    parts = [(classifier(w), y, c) for w, y, c, _ in DataLoader(dataset, batch_size=64)]
    return tuple(torch.cat(column) for column in zip(*parts, strict=True))


def calibrate_run(run: Path, out: Path, cache_dir: Path) -> dict:
    classifier = load_classifier(run / "model.safetensors")
    cache = AudioCache(cache_dir, classifier.features.mel.sample_rate, MIN_RMS)
    val = read_manifest(run / "splits" / "val.csv")
    test = read_manifest(run / "splits" / "test.csv")
    corpora = sorted({c.corpus for c in val + test})
    val_logits, val_labels, _ = predict(classifier, val, cache, corpora)
    bias = prior_bias(val_logits, val_labels)
    logits, labels, corpus = predict(classifier, test, cache, corpora)
    n = len(classifier.class_names)
    metrics: dict = {"seed": json.loads((run / "metrics.json").read_text())["seed"],
                     "class_names": list(classifier.class_names), "bias": bias.tolist(),
                     "val": {"val/acc": float((val_logits.argmax(-1) == val_labels).float().mean()),
                             "val/acc_calibrated": float(
                                 ((val_logits + bias).argmax(-1) == val_labels).float().mean())},
                     "test": {}, "confusion": {}}  # fmt: skip
    predictions = (logits + bias).argmax(-1)
    for index, name in enumerate(corpora):
        mine = corpus == index
        if not mine.any():
            continue
        hits = predictions[mine] == labels[mine]
        metrics["test"][f"test/{name}/acc"] = float(hits.float().mean())
        pairs = labels[mine] * n + predictions[mine]
        counts = torch.bincount(pairs, minlength=n * n).view(n, n)
        metrics["confusion"][f"test/{name}"] = counts.tolist()
    out.mkdir(parents=True, exist_ok=True)
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def main(log_dir: Path, arm: str, cache_dir: Path = PROJECT_ROOT / "data" / "cache") -> None:
    for metrics in sorted((log_dir / arm).glob("*_seed*/metrics.json")):
        run = metrics.parent
        out = log_dir / "calibrated" / run.name
        if not (out / "metrics.json").is_file():
            figures = calibrate_run(run, out, cache_dir)["test"]
            print(run.name, {k: round(v, 3) for k, v in figures.items()})


if __name__ == "__main__":
    if len(sys.argv) > 3:
        sys.exit("usage: python experiments/generalisation/calibrate.py [LOG_DIR] [ARM]")
    args = sys.argv[1:] + ["logs/generalisation", "base"][len(sys.argv) - 1 :]
    main(Path(args[0]), args[1])
