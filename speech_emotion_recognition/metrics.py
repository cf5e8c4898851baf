"""Every figure an evaluation report quotes, from predicted probabilities and true labels."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np
import torch
from torchmetrics.functional.classification import (
    multiclass_accuracy,
    multiclass_calibration_error,
    multiclass_confusion_matrix,
    multiclass_f1_score,
    multiclass_precision,
    multiclass_recall,
)


def classification_report(
    probabilities: np.ndarray,
    labels: Sequence[int],
    speakers: Sequence[str],
    class_names: Sequence[str],
    ece_bins: int,
) -> dict:
    """Accuracy, UA (macro recall), macro-F1, per-class P/R/F1, per-speaker accuracy and ECE.

    Macro averages run over the classes that occur in `labels`, so a corpus without one emotion
    (nEMO has no disgust) is not penalised for it, even where a model predicts that emotion.
    """
    probs = torch.as_tensor(probabilities, dtype=torch.float32)
    target = torch.as_tensor(labels, dtype=torch.long)
    n = len(class_names)
    predictions = probs.argmax(dim=1)
    present = torch.zeros(n, dtype=torch.bool)
    present[target] = True
    per_class = {
        "precision": multiclass_precision(probs, target, n, average="none"),
        "recall": multiclass_recall(probs, target, n, average="none"),
        "f1": multiclass_f1_score(probs, target, n, average="none"),
    }
    support = torch.bincount(target, minlength=n)
    by_speaker: dict[str, list[bool]] = defaultdict(list)
    for speaker, ok in zip(speakers, (predictions == target).tolist(), strict=True):
        by_speaker[speaker].append(ok)
    return {
        "n_clips": len(target),
        "accuracy": float(multiclass_accuracy(probs, target, n, average="micro")),
        "ua": float(per_class["recall"][present].mean()),
        "macro_f1": float(per_class["f1"][present].mean()),
        "ece": float(multiclass_calibration_error(probs, target, n, n_bins=ece_bins, norm="l1")),
        "per_class": {
            name: {
                **{metric: float(values[i]) for metric, values in per_class.items()},
                "support": int(support[i]),
            }
            for i, name in enumerate(class_names)
        },
        "per_speaker": {s: float(np.mean(oks)) for s, oks in sorted(by_speaker.items())},
        "confusion_matrix": multiclass_confusion_matrix(predictions, target, n).tolist(),
    }


def reliability(
    probabilities: np.ndarray, labels: Sequence[int], bins: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per confidence bin: mean confidence, accuracy and clip count (for the reliability plot)."""
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == np.asarray(labels)
    index = np.minimum((confidence * bins).astype(int), bins - 1)
    count = np.bincount(index, minlength=bins)
    mean_confidence = np.bincount(index, confidence, bins) / np.maximum(count, 1)
    accuracy = np.bincount(index, correct.astype(float), bins) / np.maximum(count, 1)
    return mean_confidence, accuracy, count


def confusion_scores(matrix: np.ndarray) -> dict[str, float]:
    """Accuracy, UA and macro-F1 of a confusion matrix (true class on rows), macro averages over
    the classes that occur as truth: pooled figures over cross-validation folds."""
    matrix = np.asarray(matrix, dtype=float)
    true, predicted, hits = matrix.sum(axis=1), matrix.sum(axis=0), np.diag(matrix)
    present = true > 0
    recall = hits / np.maximum(true, 1)
    precision = hits / np.maximum(predicted, 1)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return {
        "accuracy": float(hits.sum() / max(matrix.sum(), 1)),
        "ua": float(recall[present].mean()),
        "macro_f1": float(f1[present].mean()),
    }
