"""Waveforms in, model-ready tensors out: decoding, cropping, augmentation and log-mel features."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import soundfile as sf
import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

if TYPE_CHECKING:  # audiomentations (and librosa behind it) is for training only: slow to import
    import audiomentations

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".mp3")


class AudioError(ValueError):
    """A file that cannot serve as speech: unreadable, empty, non-finite or silent."""


def audio_files(root: str | Path) -> list[Path]:
    """Every decodable-looking file below `root`, sorted so runs see the same order."""
    return sorted(p for p in Path(root).rglob("*") if p.suffix.lower() in AUDIO_EXTENSIONS)


def load_audio(path: str, sample_rate: int) -> np.ndarray:
    """Decode any soundfile-readable file to mono float32 at `sample_rate`.

    Raises AudioError (never anything else) so callers can report and skip one bad file.
    """
    try:
        audio, file_rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as error:  # soundfile raises several types for corrupt or non-audio files
        raise AudioError(f"unreadable audio ({error})") from error
    if audio.size == 0:
        raise AudioError("empty audio")
    if not np.isfinite(audio).all():
        raise AudioError("audio contains NaN or Inf")
    mono = torch.from_numpy(audio.mean(axis=1))
    if file_rate != sample_rate:
        mono = torchaudio.functional.resample(mono, file_rate, sample_rate)
    return mono.numpy()


def crop_or_pad(audio: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """Cut `length` samples starting at `offset`, zero-padding clips that are shorter."""
    segment = audio[offset : offset + length]
    if len(segment) < length:
        segment = np.pad(segment, (0, length - len(segment)))
    return segment


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
) -> audiomentations.OneOf:
    """Like `compose`, for picking one of several named transforms (e.g. noise colours)."""
    import audiomentations

    return audiomentations.OneOf([t for t in transforms.values() if t is not None], p=p)


class LogMelFeatures(nn.Module):
    """Batch waveforms -> standardised, noise-trimmed log-mel images, on the model's device.

    Output: (batch, 1, n_mels, n_frames). The dB values are taken relative to each clip's floor
    (max - top_db), so "less than `trim_db` above the floor" is noise and is set to 0.
    """

    def __init__(
        self,
        sample_rate: int,
        n_fft: int,
        win_length: int,
        hop_length: int,
        f_min: float,
        f_max: float,
        n_mels: int,
        top_db: float,
        trim_db: float,
        n_frames: int,
        eps: float,
    ) -> None:
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate,
            n_fft=n_fft,
            win_length=win_length,
            hop_length=hop_length,
            f_min=f_min,
            f_max=f_max,
            n_mels=n_mels,
        )
        self.to_db = torchaudio.transforms.AmplitudeToDB(stype="power", top_db=top_db)
        self.trim_db = trim_db
        self.n_frames = n_frames
        self.eps = eps

    def trimmed_db(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> (B, 1, n_mels, frames) in dB above each clip's floor, noise at 0."""
        # (B, 1, T) keeps AmplitudeToDB's top_db clamp per clip rather than per batch.
        db = self.to_db(self.mel(waveforms.float().unsqueeze(1)))
        above_floor = db - db.amin(dim=(-2, -1), keepdim=True)
        return above_floor.masked_fill(above_floor < self.trim_db, 0.0)

    # Features stay fp32 under mixed precision: in bf16 the dB values are off by about 2 %.
    @torch.autocast("cuda", enabled=False)
    @torch.autocast("cpu", enabled=False)
    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        trimmed = self.trimmed_db(waveforms)
        resized = F.interpolate(
            trimmed, size=(trimmed.shape[-2], self.n_frames), mode="bilinear", align_corners=False
        )
        mean = resized.mean(dim=(-2, -1), keepdim=True)
        std = resized.std(dim=(-2, -1), keepdim=True)
        return (resized - mean) / (std + self.eps)
