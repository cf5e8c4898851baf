"""The model behind the server: loaded once, fed one upload at a time through the same code as
`inference.py` (decoding, speech detection, windows, batching, precision).

Every problem with an upload becomes an `UploadError` with an HTTP status and a message that
names the upload, never a path on the server. Limits are checked on what the file holds, not on
what its headers claim: the size on the bytes received, the duration on the decoded audio.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.audio import AudioError, AudioTooLong, UnreadableAudio, load_audio
from speech_emotion_recognition.predict.adapt import SpeakerMemory
from speech_emotion_recognition.predict.predictor import (
    Predictor,
    cut_windows,
    file_row,
    load_classifier,
    segment_rows,
)
from speech_emotion_recognition.predict.speech import SpeechConfig


class UploadError(Exception):
    """An upload the model cannot answer: `status` is the HTTP status (4xx) to reply with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class Cancelled(Exception):
    """The client left before its answer was ready; the work for it was stopped."""


@dataclass(frozen=True)
class Limits:
    """conf/serve.yaml `limits:`: per upload, and the disk all uploads share (guard.py)."""

    max_seconds: float = 600.0
    max_megabytes: float = 50.0
    disk_megabytes: float = 1024.0
    max_speakers: int = 1000

    @property
    def max_bytes(self) -> int:
        return int(self.max_megabytes * 1024 * 1024)


def release_figures(ckpt: Path) -> dict | None:
    """What the release's reports say of it: the evaluation on its test speakers
    (`reports/<name>/metrics.json`) and, where it was run, the speaker k-fold summary of its
    recipe (`reports/<name>/cv/kfold/summary.json`); None for other weights."""
    report = PROJECT_ROOT / "reports" / ckpt.stem / "metrics.json"
    if not report.is_file():
        return None
    metrics = json.loads(report.read_text())
    figures = {k: metrics[k] for k in ("accuracy", "ua", "macro_f1", "n_clips", "subset")}
    kfold = report.parent / "cv" / "kfold" / "summary.json"
    if kfold.is_file():
        summary = json.loads(kfold.read_text())
        figures["kfold"] = {
            "runs": summary["runs"],
            **{k: summary[f"test_{k}"] for k in ("accuracy", "ua", "macro_f1")},
        }
    return figures


class EmotionService:
    """One Predictor for every request, running the engine `inference.py` would (engine_file);
    a lock serialises the work, so concurrent requests queue instead of multiplying the model's
    memory and threads. A request whose client has left (`cancelled` set) stops waiting and
    stops working at the next window batch."""

    def __init__(
        self,
        ckpt: str | Path,
        speech: SpeechConfig,
        device: torch.device,
        precision: torch.dtype,
        batch_size: int,
        limits: Limits,
        onnx_path: str | None = None,
    ) -> None:
        ckpt = Path(ckpt)
        self.predictor = Predictor(
            load_classifier(ckpt), device, precision, onnx_path, speech.shift_seconds
        )
        self.speech = speech
        self.batch_size = batch_size
        self.limits = limits
        self.model = ckpt.stem
        self.sha256 = hashlib.sha256(ckpt.read_bytes()).hexdigest()
        self.release_figures = release_figures(ckpt)
        self.speakers = SpeakerMemory(limits.max_speakers)
        self._lock = threading.Lock()

    def adapt(self, answer: dict, speaker: str) -> dict:
        """`/predict`'s answer adapted to `speaker` (adapt.py's running centre, kept in a
        bounded memory): the file-level fields adapted, the model's own as unadapted_*."""
        names = self.predictor.class_names
        probabilities, adapted = self.speakers(speaker, np.array([answer[n] for n in names]))
        best = int(probabilities.argmax())
        return {
            **answer,
            "label": names[best],
            "confidence": float(probabilities[best]),
            **{n: float(p) for n, p in zip(names, probabilities, strict=True)},
            "speaker": speaker,
            "adapted": adapted,
            "unadapted_label": answer["label"],
            **{f"unadapted_{n}": answer[n] for n in names},
        }

    def check_size(self, n_bytes: int) -> None:
        if n_bytes == 0:
            raise UploadError(400, "empty upload: the file has no bytes")
        if n_bytes > self.limits.max_bytes:
            raise UploadError(
                413, f"upload too large: over the limit of {self.limits.max_megabytes:g} MB"
            )

    def _decode(self, path: Path, name: str) -> np.ndarray:
        try:
            return load_audio(str(path), self.predictor.sample_rate, self.limits.max_seconds)
        except AudioTooLong as error:
            raise UploadError(413, f"{name} is {error}") from None
        except UnreadableAudio as error:
            message = f"{name} is not a readable audio file ({error.reason})"
            raise UploadError(415, message) from None
        except AudioError as error:  # readable, but no usable samples (empty, NaN)
            raise UploadError(422, f"{name}: {error}") from None

    def window_probabilities(self, windows: list[np.ndarray]) -> np.ndarray:
        """Windows of live streams (live.py), under the same lock as uploads."""
        with self._lock:
            return self.predictor.probabilities(windows, self.batch_size)

    def predict(self, path: Path, name: str, cancelled: threading.Event | None = None) -> dict:
        """The row `inference.py` writes for this file, named `name`, plus its speech segments
        (`start`/`end` in seconds) and its duration. Raises Cancelled once `cancelled` is set."""
        cancelled = cancelled or threading.Event()

        def check() -> None:
            if cancelled.is_set():
                raise Cancelled

        self.check_size(path.stat().st_size)
        while not self._lock.acquire(timeout=0.05):
            check()
        try:
            check()
            audio = self._decode(path, name)
            check()
            item = cut_windows(name, audio, self.predictor.sample_rate, self.speech)
            if item.error:
                raise UploadError(422, f"{name}: {item.error}")
            batches = []
            for start in range(0, len(item.audio), self.batch_size):
                check()
                batch = item.audio[start : start + self.batch_size]
                batches.append(self.predictor.probabilities(batch, self.batch_size))
        finally:
            self._lock.release()
        probabilities = np.concatenate(batches)
        rate, names = self.predictor.sample_rate, self.predictor.class_names
        return {
            **file_row(item, probabilities, names),
            "duration": round(item.n_samples / rate, 3),
            "segments": segment_rows(item, probabilities, rate, names),
        }
