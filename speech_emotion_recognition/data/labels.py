"""The run's label set: which emotions a model learns, in the order of its outputs."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence

from speech_emotion_recognition.data.clips import Clip

log = logging.getLogger(__name__)


def select_labels(
    clips: Sequence[Clip],
    names: Sequence[str],
    test_only: Sequence[str] = (),
    require_all: bool = True,
) -> list[Clip]:
    """The clips whose emotion is in `names`. With `require_all` (training) it stops when a
    name has no clip in any corpus that trains (those not in `test_only`), saying which corpus
    has which emotions; an evaluation may meet a corpus with fewer."""
    if len(set(names)) != len(names) or len(names) < 2:
        raise ValueError(f"labels.names={list(names)}: give two or more different emotions.")
    have: dict[str, set[str]] = defaultdict(set)
    for clip in clips:
        have[clip.corpus].add(clip.label)
    trained = set().union(*(v for k, v in have.items() if k not in test_only))
    missing = [name for name in names if name not in trained]
    if missing and require_all:
        listing = "; ".join(f"{name}: {', '.join(sorted(v))}" for name, v in sorted(have.items()))
        raise ValueError(
            f"No training corpus has {', '.join(missing)} (labels.names={list(names)}). "
            f"The corpora of this data option have {listing}. Choose a set they have: "
            "labels=four, or labels.names=[...]."
        )
    kept = [c for c in clips if c.label in names]
    left_out = Counter(c.label for c in clips if c.label not in names)
    if left_out:
        log.info(
            "Label set %s: left out %s",
            ", ".join(names),
            ", ".join(f"{n} {label}" for label, n in sorted(left_out.items())),
        )
    return kept
