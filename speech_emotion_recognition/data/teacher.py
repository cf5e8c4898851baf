"""A teacher's logits for the training clips (experiments/recheck30/teacher_logits.py writes
them), the soft
labels a student is distilled from (data.teacher_logits, model.distill_alpha)."""

from __future__ import annotations

import csv
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speech_emotion_recognition.data.clips import Clip

log = logging.getLogger(__name__)


def clip_keys(paths: Sequence[str | Path], data_dir: str | Path) -> list[str]:
    """Each clip's path below `data_dir` without its suffix: the same for a .wav here and the
    .ogg it travelled to the GPU machine as. Symbolic links are followed, `data_dir`'s own and
    those of the corpus folders in it (`data/CREMA-D -> /disk/CREMA-D`)."""
    data_dir = Path(data_dir)
    roots = {data_dir.absolute(): Path(), data_dir.resolve(): Path()}
    if data_dir.is_dir():
        roots |= {child.resolve(): Path(child.name) for child in data_dir.iterdir()}
    return [_key(Path(path), roots, data_dir) for path in paths]


def _key(path: Path, roots: dict[Path, Path], data_dir: Path) -> str:
    for clip in (path.absolute(), path.resolve()):
        for root, inside in roots.items():
            if clip.is_relative_to(root):
                return str((inside / clip.relative_to(root)).with_suffix(""))
    raise ValueError(f"{path} is not below {data_dir}: set data.teacher_root to its data folder")


def teacher_rows(
    path: str | Path, data_dir: str | Path, clips: Sequence[Clip], class_names: Sequence[str]
) -> np.ndarray:
    """(len(clips), n_classes) float32 logits in `class_names` order; NaN rows for clips the
    teacher never saw (they train on their own label alone, and are counted in the log)."""
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        missing = set(class_names) - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{path} has no logits for {', '.join(sorted(missing))}")
        logits = {row["key"]: [float(row[name]) for name in class_names] for row in reader}
    rows = np.full((len(clips), len(class_names)), np.nan, dtype=np.float32)
    for i, key in enumerate(clip_keys([c.path for c in clips], data_dir)):
        if key in logits:
            rows[i] = logits[key]
    unseen = int(np.isnan(rows[:, 0]).sum())
    if unseen:
        log.warning("%d of %d training clips have no logits in %s", unseen, len(clips), path)
    return rows
