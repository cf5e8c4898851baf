"""A labelled clip and the split manifests (CSV) that list them; no Lightning here, so
evaluation, summaries and reports read manifests without the training stack."""

from __future__ import annotations

import csv
import os
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.emotions import EMOTIONS

SPLITS = ("train", "val", "test")


@dataclass(frozen=True)
class Clip:
    """One labelled recording; `label` is an emotion name, `sex` (M/F, empty when unknown)
    balances speaker splits.

    `split` is empty unless the corpus itself fixes it (a manifest CSV with a split column).
    """

    path: str
    label: str
    speaker: str
    corpus: str
    sex: str = ""
    split: str = ""


def repo_relative(path: str) -> str:
    """Paths inside the repository relative to it, so manifests, their DVC hashes and reports
    do not depend on where the repository is checked out."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(PROJECT_ROOT)) if PROJECT_ROOT in resolved.parents else path


def write_manifest(clips: Iterable[Clip], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[field.name for field in fields(Clip)])
        writer.writeheader()
        writer.writerows({**asdict(c), "path": repo_relative(c.path)} for c in clips)
    os.replace(tmp, path)


def read_manifest(path: Path) -> list[Clip]:
    """The clips of a manifest; labels written as numbers (manifests of older runs) are
    indices into the six emotions."""
    with open(path, newline="") as f:
        return [
            Clip(**{**row, "path": str(PROJECT_ROOT / row["path"]), "label": _name(row["label"])})
            for row in csv.DictReader(f)
        ]


def _name(label: str) -> str:
    return EMOTIONS[int(label)] if label.isdigit() else label
