"""Matplotlib figures written next to a run's metrics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from speech_emotion_recognition.emotions import colours  # noqa: E402


def confusion_matrix_figure(
    matrix: np.ndarray, class_names: Sequence[str], title: str, normalise: bool = False
) -> plt.Figure:
    """Counts (or row-normalised recall) with the true class on rows, as most papers show it."""
    values = matrix.astype(float)
    if normalise:
        values = values / np.maximum(values.sum(axis=1, keepdims=True), 1)
    figure, axis = plt.subplots(figsize=(6, 5), layout="constrained")
    image = axis.imshow(values, cmap="Blues")
    figure.colorbar(image, ax=axis)
    ticks = np.arange(len(class_names))
    axis.set_xticks(ticks, class_names, rotation=45, ha="right")
    axis.set_yticks(ticks, class_names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    axis.set_title(title)
    threshold = values.max() / 2 if values.size else 0
    for (row, col), value in np.ndenumerate(values):
        text = f"{value:.2f}" if normalise else f"{int(value)}"
        color = "white" if value > threshold else "black"
        axis.text(col, row, text, ha="center", va="center", color=color, fontsize=8)
    return figure


def save(figure: plt.Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path


def per_class_figure(per_class: dict[str, dict[str, float]]) -> plt.Figure:
    """Precision, recall and F1 side by side for each emotion."""
    names = list(per_class)
    metrics = ("precision", "recall", "f1")
    x = np.arange(len(names))
    width = 0.8 / len(metrics)
    figure, axis = plt.subplots(figsize=(7, 4), layout="constrained")
    for i, metric in enumerate(metrics):
        axis.bar(x + i * width, [per_class[n][metric] for n in names], width, label=metric)
    axis.set_xticks(x + width, names)
    axis.set_ylim(0, 1)
    axis.set_ylabel("score")
    axis.legend(ncols=3, loc="upper center")
    axis.set_title("Per-class scores")
    return figure


def reliability_figure(
    confidence: np.ndarray, accuracy: np.ndarray, count: np.ndarray, ece: float
) -> plt.Figure:
    """Accuracy against confidence per bin; the diagonal is perfect calibration."""
    bins = len(count)
    centres = (np.arange(bins) + 0.5) / bins
    used = count > 0
    figure, axis = plt.subplots(figsize=(5, 5), layout="constrained")
    axis.plot([0, 1], [0, 1], "--", color="grey", label="perfect calibration")
    axis.bar(
        centres[used],
        accuracy[used],
        width=1 / bins,
        edgecolor="black",
        alpha=0.7,
        label="accuracy",
    )
    axis.plot(confidence[used], accuracy[used], "o", color="black", label="mean confidence")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel("confidence")
    axis.set_ylabel("accuracy")
    axis.set_title(f"Reliability (ECE {ece:.3f})")
    axis.legend(loc="upper left")
    return figure


def noise_figure(rows: list[dict], chance: float) -> plt.Figure:
    """Accuracy and macro-F1 against SNR, one line per noise type; clean audio at the right."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4), layout="constrained", sharey=True)
    noise_types = sorted({r["noise"] for r in rows if r["noise"] != "clean"})
    clean = next(r for r in rows if r["noise"] == "clean")
    snrs = sorted({r["snr_db"] for r in rows if r["noise"] != "clean"})
    positions = {snr: i for i, snr in enumerate(snrs)}
    clean_x = len(snrs)
    for axis, metric in zip(axes, ("accuracy", "macro_f1"), strict=True):
        for noise_type in noise_types:
            points = sorted((r["snr_db"], r[metric]) for r in rows if r["noise"] == noise_type)
            axis.plot(
                [positions[s] for s, _ in points] + [clean_x],
                [v for _, v in points] + [clean[metric]],
                "o-",
                label=noise_type,
            )
        axis.axhline(chance, color="grey", linestyle=":", label="chance")
        axis.set_xticks([*positions.values(), clean_x], [f"{s:g}" for s in snrs] + ["clean"])
        axis.set_xlabel("SNR (dB)")
        axis.set_ylim(0, 1)
        axis.set_title(metric)
    axes[0].legend()
    return figure


def training_curves_figure(epochs: list[dict[str, float]]) -> plt.Figure:
    """Loss and validation scores per epoch, from the CSV logger's rows (one dict per epoch)."""
    figure, (loss_axis, score_axis) = plt.subplots(1, 2, figsize=(10, 4), layout="constrained")
    x = [e["epoch"] + 1 for e in epochs]
    for key, label in (("train/loss_epoch", "train"), ("val/loss", "validation")):
        loss_axis.plot(x, [e.get(key, np.nan) for e in epochs], label=label)
    loss_axis.set_xlabel("epoch")
    loss_axis.set_ylabel("focal loss")
    loss_axis.legend()
    for key, label in (("val/acc", "accuracy"), ("val/ua", "UA"), ("val/f1", "macro-F1")):
        score_axis.plot(x, [e.get(key, np.nan) for e in epochs], label=label)
    score_axis.set_xlabel("epoch")
    score_axis.set_ylabel("validation score")
    score_axis.set_ylim(0, 1)
    score_axis.legend()
    return figure


def timeline_figure(
    title: str, duration: float, segments: list[dict], class_names: Sequence[str]
) -> plt.Figure:
    """Emotion probabilities over time: at each instant the mean over the windows whose speech
    covers it, stacked; stretches without speech stay empty, speech is shaded."""
    times = np.arange(0.0, max(duration, 0.01), 0.02)
    stacked = np.zeros((len(class_names), len(times)))
    covered = np.zeros(len(times))
    for segment in segments:
        inside = (times >= segment["start"]) & (times < segment["end"])
        stacked[:, inside] += np.array([[segment[name]] for name in class_names])
        covered[inside] += 1
    stacked = np.where(covered > 0, stacked / np.maximum(covered, 1), np.nan)
    figure, axis = plt.subplots(figsize=(max(8, min(24, duration / 4)), 3.5), layout="constrained")
    for segment in segments:
        axis.axvspan(segment["start"], segment["end"], color="0.92", zorder=0)
    axis.stackplot(times, stacked, labels=class_names, colors=colours(class_names), alpha=0.9)
    axis.set_xlim(0, duration)
    axis.set_ylim(0, 1)
    axis.set_xlabel("time (s); shaded: speech")
    axis.set_ylabel("probability")
    axis.set_title(title)
    axis.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize="small")
    return figure
