"""The six emotion classes, in the label order that every parser, checkpoint and table uses, and
the one colour each class has in every picture the project draws (timelines, the page, Live)."""

from __future__ import annotations

from collections.abc import Sequence
from itertools import cycle

EMOTIONS = ("angry", "disgust", "fear", "happy", "neutral", "sad")

# matplotlib's tab10 colours, one per class of every label set in conf/labels/
COLOURS = {
    "angry": "#d62728",
    "disgust": "#8c564b",
    "fear": "#9467bd",
    "happy": "#ff7f0e",
    "neutral": "#7f7f7f",
    "sad": "#1f77b4",
    "calm": "#2ca02c",
    "surprised": "#e377c2",
    "boredom": "#bcbd22",
}
SPARE = ("#17becf", "#aec7e8", "#ffbb78", "#98df8a", "#c5b0d5", "#c49c94")  # for own labels


def colours(names: Sequence[str]) -> list[str]:
    """Each class's colour: its own, or the spare ones in turn for labels of one's own data."""
    spare = cycle(SPARE)
    return [COLOURS.get(name) or next(spare) for name in names]
