"""The model behind the server: loaded once, fed one upload at a time through the same code as
`inference.py` (decoding, speech detection, windows, batching, precision).

Every problem with an upload becomes an `UploadError` with an HTTP status and a message that
names the upload, never a path on the server.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path

import soundfile as sf
import torch

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.predictor import (
    Predictor,
    file_row,
    load_classifier,
    predict_files,
    segment_rows,
)
from speech_emotion_recognition.speech import SpeechConfig


class UploadError(Exception):
    """An upload the model cannot answer: `status` is the HTTP status (4xx) to reply with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Limits:
    max_seconds: float = 600.0
    max_megabytes: float = 50.0

    @property
    def max_bytes(self) -> int:
        return int(self.max_megabytes * 1024 * 1024)


def release_figures(ckpt: Path) -> dict | None:
    """Accuracy, UA and macro-F1 on the release's test speakers, from the evaluation report its
    model card is generated from (`reports/<name>/metrics.json`); None for other weights."""
    report = PROJECT_ROOT / "reports" / ckpt.stem / "metrics.json"
    if not report.is_file():
        return None
    metrics = json.loads(report.read_text())
    return {k: metrics[k] for k in ("accuracy", "ua", "macro_f1", "n_clips", "subset")}


class EmotionService:
    """One Predictor for every request; a lock serialises the forward passes, so concurrent
    requests queue instead of multiplying the model's memory and threads."""

    def __init__(
        self,
        ckpt: str | Path,
        speech: SpeechConfig,
        device: torch.device,
        precision: torch.dtype,
        batch_size: int,
        limits: Limits,
    ) -> None:
        ckpt = Path(ckpt)
        self.predictor = Predictor(load_classifier(ckpt), device, precision)
        self.speech = speech
        self.batch_size = batch_size
        self.limits = limits
        self.model = ckpt.stem
        self.sha256 = hashlib.sha256(ckpt.read_bytes()).hexdigest()
        self.release_figures = release_figures(ckpt)
        self._lock = threading.Lock()

    def check_size(self, n_bytes: int) -> None:
        if n_bytes == 0:
            raise UploadError(400, "empty upload: the file has no bytes")
        if n_bytes > self.limits.max_bytes:
            raise UploadError(
                413, f"upload too large: over the limit of {self.limits.max_megabytes:g} MB"
            )

    def _check_duration(self, path: Path, name: str) -> None:
        """From the header alone, so a long file is refused before it is decoded."""
        try:
            info = sf.info(str(path))
        except Exception as error:  # soundfile raises several types for non-audio
            message = str(error).replace(str(path), name)
            raise UploadError(415, f"{name} is not a readable audio file ({message})") from error
        if info.duration > self.limits.max_seconds:
            raise UploadError(
                413,
                f"{name} is {info.duration:.0f} s long, over the limit of "
                f"{self.limits.max_seconds:g} s",
            )

    def predict(self, path: Path, name: str) -> dict:
        """The row `inference.py` writes for this file, named `name`, plus its speech segments
        (`start`/`end` in seconds) and its duration."""
        self.check_size(path.stat().st_size)
        self._check_duration(path, name)
        with self._lock:
            [(item, probabilities)] = list(
                predict_files([str(path)], self.predictor, self.speech, self.batch_size, 0)
            )
        if probabilities is None:
            # readable header, unusable audio (no samples, NaN, no speech): 422; else 415
            status = 415 if item.error.startswith("unreadable") else 422
            raise UploadError(status, f"{name}: {item.error.replace(str(path), name)}")
        rate = self.predictor.sample_rate
        segments = [{**s, "path": name} for s in segment_rows(item, probabilities, rate)]
        return {
            **file_row(item, probabilities),
            "path": name,
            "duration": round(item.n_samples / rate, 3),
            "segments": segments,
        }
