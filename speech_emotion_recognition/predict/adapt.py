"""Adapting to the speaker when predicting (`adapt=speaker`): each speaker's mean
log-probability over their files is subtracted before the argmax. No label is used; it needs
several recordings of each person, and it assumes they hold a mix of emotions.

The model's errors on voices unlike its corpora are partly a per-speaker offset (one voice
sounds "sad" to it whatever its owner feels); centring removes that offset. With one file per
speaker there is nothing to centre; with files that are nearly all one emotion, centring takes
that emotion away from them, so such speakers get a note in `adapt_note`.
"""

from __future__ import annotations

import csv
from collections import Counter, OrderedDict, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np

ONE_LABEL_SHARE = 0.8  # a speaker whose files are this much one label before adapting is noted
EPSILON = 1e-12
# A live stream adapts from its 21st window on (about 50 s of speech at a 2.5 s hop): measured
# on files (reports/adapt/adapt.md), centring over 5 clips of a speaker changed nothing reliably
# and over 20 began to help.
WARMUP_WINDOWS = 20


def _logs(probabilities: np.ndarray) -> np.ndarray:
    return np.log(np.clip(probabilities, EPSILON, 1.0))


def _softmax(logs: np.ndarray) -> np.ndarray:
    exp = np.exp(logs - logs.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def centred(probabilities: np.ndarray) -> np.ndarray:
    """(files, classes) probabilities of one speaker -> the same with that speaker's mean
    log-probability removed, renormalised (softmax of the centred log-probabilities)."""
    logs = _logs(probabilities)
    return _softmax(logs - logs.mean(axis=0, keepdims=True))


class RunningCentre:
    """A live stream as one speaker: each window's log-probabilities centred on their mean over
    the stream's windows so far, once `warmup` windows have been heard (before that the model's
    own answer, since a mean over a few windows is mostly noise)."""

    def __init__(self, warmup: int = WARMUP_WINDOWS) -> None:
        self.warmup = warmup
        self.total: np.ndarray | None = None
        self.count = 0

    def __call__(self, probabilities: np.ndarray) -> tuple[np.ndarray, list[bool]]:
        """Windows (n, classes) in stream order -> their answers and whether each is adapted."""
        answers, adapted = [], []
        for row in probabilities:
            logs = _logs(row)
            self.total = logs if self.total is None else self.total + logs
            self.count += 1
            if self.count <= self.warmup:
                answers.append(row)
                adapted.append(False)
                continue
            answers.append(_softmax(logs - self.total / self.count))
            adapted.append(True)
        return np.array(answers).reshape(probabilities.shape), adapted


class SpeakerMemory:
    """A server's running centres, one per speaker a request names, at most `max_speakers`:
    the speaker heard least recently is forgotten first, so no client can grow the memory."""

    def __init__(self, max_speakers: int, warmup: int = WARMUP_WINDOWS) -> None:
        self.max_speakers, self.warmup = max_speakers, warmup
        self._centres: OrderedDict[str, RunningCentre] = OrderedDict()

    def __len__(self) -> int:
        return len(self._centres)

    def __contains__(self, speaker: str) -> bool:
        return speaker in self._centres

    def __call__(self, speaker: str, probabilities: np.ndarray) -> tuple[np.ndarray, bool]:
        """One file's probabilities -> its answer for this speaker, and whether it is adapted."""
        centre = self._centres.pop(speaker, None) or RunningCentre(self.warmup)
        self._centres[speaker] = centre
        while len(self._centres) > self.max_speakers:
            self._centres.popitem(last=False)
        answers, adapted = centre(probabilities[None, :])
        return answers[0], adapted[0]


def speakers_by_folder(paths: Sequence[str]) -> dict[str, str]:
    """A file's speaker is the folder it is in."""
    return {path: str(Path(path).parent) for path in paths}


def speakers_from_csv(table: Path, paths: Sequence[str], root: Path) -> dict[str, str]:
    """`path,speaker` rows; a path is as given or relative to `root` (the input folder).
    Files the table does not name have no speaker and stay unadapted."""
    with open(table, newline="") as f:
        reader = csv.DictReader(f)
        missing = {"path", "speaker"} - set(reader.fieldnames or [])
        if missing:
            raise ValueError(f"{table} needs the columns path,speaker (lacks {', '.join(missing)})")
        named = {}
        for row in reader:
            path = Path(row["path"])
            named[str((path if path.is_absolute() else root / path).resolve())] = row["speaker"]
    return {p: named[str(Path(p).resolve())] for p in paths if str(Path(p).resolve()) in named}


def speakers_for(speakers: str, paths: Sequence[str], source: Path) -> dict[str, str]:
    """`speakers=`: `folder` (each file's folder) or a `path,speaker` CSV, its paths as given
    or relative to the input folder `source`."""
    if speakers == "folder":
        return speakers_by_folder(paths)
    return speakers_from_csv(Path(speakers), paths, source if source.is_dir() else source.parent)


def adapt_rows(rows: list[dict], speakers: dict[str, str], names: Sequence[str]) -> list[dict]:
    """inference.py's rows with `label`, `confidence` and the class columns adapted per
    speaker, the model's own kept as `unadapted_label` and `unadapted_<class>`, and `speaker`
    and `adapt_note` added. Rows without probabilities (an error) or a speaker pass unchanged."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, row in enumerate(rows):
        if not row["error"] and row["path"] in speakers:
            groups[speakers[row["path"]]].append(i)
    out = [
        {**row, "speaker": speakers.get(row["path"], ""), "adapt_note": "",
         "unadapted_label": row["label"], **{f"unadapted_{n}": row[n] for n in names}}
        for row in rows
    ]  # fmt: skip
    for members in groups.values():
        if len(members) < 2:
            out[members[0]]["adapt_note"] = "one file of this speaker: not adapted"
            continue
        before = np.array([[rows[i][n] for n in names] for i in members], dtype=np.float64)
        after = centred(before)
        label, count = Counter(rows[i]["label"] for i in members).most_common(1)[0]
        note = ""
        if count / len(members) >= ONE_LABEL_SHARE:
            note = (f"{count} of {len(members)} files of this speaker were {label} before "
                    "adapting: centring assumes a mix of emotions")  # fmt: skip
        for i, probabilities in zip(members, after, strict=True):
            best = int(probabilities.argmax())
            out[i].update({
                "label": names[best], "confidence": float(probabilities[best]),
                **{n: float(p) for n, p in zip(names, probabilities, strict=True)},
                "adapt_note": note,
            })  # fmt: skip
    return out


def as_numbers(rows: list[dict], names: Sequence[str]) -> list[dict]:
    """Rows read back from a CSV: the probabilities of predicted files as floats again."""
    return [row if row["error"] else {**row, **{n: float(row[n]) for n in names}} for row in rows]


def adapted_columns(names: Sequence[str]) -> tuple[str, ...]:
    """inference.py's columns with adaptation: the adapted result first, then what it was."""
    return ("path", "speaker", "label", "confidence", *names, "unadapted_label",
            *(f"unadapted_{n}" for n in names), "adapt_note", "error")  # fmt: skip
