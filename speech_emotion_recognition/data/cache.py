"""The decoded-audio cache: each file decoded and resampled once per machine."""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from speech_emotion_recognition.audio import AudioError, load_audio
from speech_emotion_recognition.data.clips import Clip

log = logging.getLogger(__name__)


def _save_npy(path: Path, audio: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object, so numpy does not append ".npy" to the name
        np.save(f, audio.astype(np.float32), allow_pickle=False)


class AudioCache:
    """Decodes and resamples each file once per machine; later epochs and runs read .npy files.

    A file that fails is remembered as `<key>.bad` holding the reason, so it is reported once
    per run and never retried mid-epoch.
    """

    def __init__(self, directory: str | Path, sample_rate: int, min_rms: float) -> None:
        self.directory = Path(directory)
        self.sample_rate = sample_rate
        self.min_rms = min_rms
        self.memory: dict[str, np.ndarray] = {}

    def _key(self, path: str) -> Path:
        stat = os.stat(path)
        token = f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.sample_rate}"
        digest = hashlib.sha1(token.encode()).hexdigest()
        return self.directory / digest[:2] / digest

    def _write(self, target: Path, write: Callable[[Path], None]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        write(tmp)
        os.replace(tmp, target)

    def ensure(self, path: str) -> str | None:
        """Decode `path` into the cache if needed; returns the reason it is unusable, or None."""
        key = self._key(path)
        good, bad = key.with_suffix(".npy"), key.with_suffix(".bad")
        if good.exists():
            return None
        if bad.exists():
            return bad.read_text()
        try:
            audio = load_audio(path, self.sample_rate)
            rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
            if rms < self.min_rms:
                raise AudioError(f"near-silent (RMS {rms:.2e} < {self.min_rms:.0e})")
        except AudioError as error:
            reason = str(error)
            self._write(bad, lambda p: p.write_text(reason))
            return reason
        self._write(good, lambda p: _save_npy(p, audio))
        return None

    def load(self, path: str) -> np.ndarray:
        if path in self.memory:
            return self.memory[path]
        return np.load(self._key(path).with_suffix(".npy"), mmap_mode="r")

    def keep_in_memory(self, paths: Iterable[str]) -> None:
        """Read these clips into RAM once: DataLoader workers then share them without file I/O."""
        for path in paths:
            self.memory[path] = np.array(self.load(path))

    def filter(self, clips: Sequence[Clip], workers: int) -> list[Clip]:
        """Keep the clips that decode; one warning counts and lists the ones skipped."""
        with ThreadPoolExecutor(max(1, workers)) as pool:
            reasons = list(pool.map(self.ensure, (c.path for c in clips)))
        skipped = [(c.path, r) for c, r in zip(clips, reasons, strict=True) if r is not None]
        if skipped:
            listing = "\n".join(f"  {p}: {r}" for p, r in skipped)
            log.warning("Skipped %d of %d files:\n%s", len(skipped), len(clips), listing)
        return [c for c, r in zip(clips, reasons, strict=True) if r is None]
