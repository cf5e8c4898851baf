"""Per-clip augmentations built from audiomentations by name, so configs can override or drop
one step; the batch-wide ones on the model's device are in batch_augment.py."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # audiomentations (and librosa behind it) is for training only: slow to import
    import audiomentations


def compose(
    transforms: Mapping[str, audiomentations.core.transforms_interface.BaseTransform | None],
    p: float = 1.0,
) -> audiomentations.Compose:
    """Build a Compose from a named mapping so configs can override or drop (`=null`) one step."""
    import audiomentations

    return audiomentations.Compose([t for t in transforms.values() if t is not None], p=p)


def one_of(
    transforms: Mapping[str, audiomentations.core.transforms_interface.BaseTransform | None],
    p: float = 1.0,
    over: str = "window",
) -> audiomentations.OneOf | OverClip:
    """Like `compose`, for picking one of several named transforms (e.g. noise colours);
    `over="clip"` applies the pick only where the window holds the clip (`OverClip`)."""
    import audiomentations

    if over not in ("clip", "window"):
        raise ValueError(f"over must be 'clip' or 'window', not {over!r}")
    picked = audiomentations.OneOf([t for t in transforms.values() if t is not None], p=p)
    return OverClip(picked) if over == "clip" else picked


class OverClip:
    """A waveform transform applied from a window's first to its last sample above -100 dBFS
    (below one 16-bit step), the rest left as it was.

    Noise added this way leaves a short clip's zero padding silent, as `inference.py` presents
    a short recording, and its SNR is measured over the clip: the audiomentations counterpart of
    batch_augment's `noise_over="clip"`. The floor, not exact zero, keeps a filter's decaying
    tail in the padding from counting as audio.
    """

    FLOOR = 1e-5

    def __init__(self, transform: Callable[[np.ndarray, int], np.ndarray]) -> None:
        self.transform = transform

    def __call__(self, samples: np.ndarray, sample_rate: int) -> np.ndarray:
        audio = np.flatnonzero(np.abs(samples) > self.FLOOR)
        if len(audio) == 0:
            return samples
        first, last = audio[0], audio[-1] + 1
        out = samples.copy()
        out[first:last] = self.transform(samples[first:last], sample_rate)
        return out
