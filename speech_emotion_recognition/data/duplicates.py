"""The same audio twice in a corpus: found from the decoded samples, never trusted.

Corpora ship defects: CREMA-D holds three byte-identical pairs filed under different emotions.
A clip whose samples equal another's is one recording; with conflicting labels nobody knows
which is right, so none of its copies is kept, and with one label only the first copy is kept
(two copies could otherwise sit on both sides of a split). One warning lists what went.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from collections.abc import Callable, Sequence

import numpy as np

from speech_emotion_recognition.data.clips import Clip

log = logging.getLogger(__name__)


def repeats(clips: Sequence[Clip], samples: Callable[[str], np.ndarray]) -> list[list[Clip]]:
    """Groups of two or more clips whose decoded samples are equal; `samples(path)` gives a
    clip's decoded audio (the cache's)."""
    groups: dict[str, list[Clip]] = defaultdict(list)
    for clip in clips:
        audio = np.ascontiguousarray(samples(clip.path), dtype=np.float32)
        groups[hashlib.sha1(audio.tobytes()).hexdigest()].append(clip)
    return [copies for copies in groups.values() if len(copies) > 1]


def drop_duplicates(clips: Sequence[Clip], samples: Callable[[str], np.ndarray]) -> list[Clip]:
    """`clips` less every copy with a conflicting label and every repeat of a same-label copy."""
    dropped: set[str] = set()
    lines = []
    for copies in repeats(clips, samples):
        names = ", ".join(c.path for c in copies)
        if len({c.label for c in copies}) > 1:
            dropped.update(c.path for c in copies)
            lines.append(f"  conflicting labels, none kept: {names}")
        else:
            dropped.update(c.path for c in copies[1:])
            lines.append(f"  same audio, first kept: {names}")
    if lines:
        log.warning(
            "Dropped %d of %d clips whose audio repeats another's:\n%s",
            len(dropped), len(clips), "\n".join(lines),
        )  # fmt: skip
    return [c for c in clips if c.path not in dropped]
