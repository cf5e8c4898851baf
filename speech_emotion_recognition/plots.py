"""Matplotlib figures written next to a run's metrics."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


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
