"""Waveforms in, model-ready tensors out: decoding, cropping, augmentation and log-mel features."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np
import soxr
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


def input_files(source: Path) -> list[str]:
    """What a prediction command reads: the file itself, or every audio file below a folder."""
    return [str(source)] if source.is_file() else [str(p) for p in audio_files(source)]


class UnreadableAudio(AudioError):
    """Not audio, or audio no decoder here understands; `reason` says what the decoder said."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"unreadable audio ({reason})")
        self.reason = reason


class AudioTooLong(AudioError):
    """Decoded audio longer than the caller's limit (the server's `limits.max_seconds`)."""


# Rates a file may have: below 4 kHz nothing of speech above 2 kHz survives, and no audio
# format records above 768 kHz. Counts of channels past FFmpeg's 64 are refused by the decoder.
FILE_RATES = (4000, 768_000)


def load_audio(path: str, sample_rate: int, max_seconds: float | None = None) -> np.ndarray:
    """Decode any FFmpeg-readable file to mono float32 in [-1, 1] at `sample_rate`, in memory
    bounded by the output: each decoded frame is clipped to full scale, downmixed and resampled
    (soxr, any ratio in constant memory) before the next, so neither a file's channel count nor an
    odd rate (15,999 Hz) can make the work grow.

    The stream is decoded to its real end: a header's length (an MP3's Xing frame, a FLAC's
    STREAMINFO) is never trusted, so a file cannot hide audio behind a short header or claim an
    absurd one. With `max_seconds`, decoding stops as soon as the audio is longer. Raises
    AudioError (never anything else) so callers can report and skip one bad file.
    """
    if Path(path).is_file() and Path(path).stat().st_size == 0:
        raise UnreadableAudio("empty file: 0 bytes")
    try:
        with av.open(path) as container:
            parts = list(_mono_frames(container, sample_rate, max_seconds))
    except AudioError:
        raise
    except (av.FFmpegError, ValueError, OverflowError) as error:  # corrupt or non-audio input
        reason = getattr(error, "strerror", None) or type(error).__name__
        raise UnreadableAudio(reason) from error
    audio = np.concatenate(parts) if parts else np.zeros(0, np.float32)
    if audio.size == 0:
        raise AudioError("empty audio")
    return audio


def _mono_frames(
    container: av.container.InputContainer, sample_rate: int, max_seconds: float | None
) -> Iterator[np.ndarray]:
    """The first audio stream's frames as mono float32 chunks at `sample_rate`."""
    if not container.streams.audio or container.streams.audio[0].codec_context is None:
        raise UnreadableAudio("no audio stream this decoder can read")
    stream = container.streams.audio[0]
    rate = stream.codec_context.sample_rate or stream.rate or 0
    if not FILE_RATES[0] <= rate <= FILE_RATES[1]:
        raise UnreadableAudio(
            f"a sample rate of {rate} Hz: files from {FILE_RATES[0]} to {FILE_RATES[1]} Hz are read"
        )
    limit = None if max_seconds is None else int(max_seconds * rate)
    # Packed float: one plane whatever the channel count (PyAV's planar frames of more than 8
    # channels crash it); the sample rate and the channel layout stay as they are.
    to_float = av.AudioResampler(format="flt")
    resampler = None if rate == sample_rate else soxr.ResampleStream(
        rate, sample_rate, 1, dtype="float32", quality="HQ"
    )  # fmt: skip
    n_samples = 0
    for frame in itertools.chain(container.decode(stream), [None]):
        for converted in to_float.resample(frame):
            channels = len(converted.layout.channels)
            samples = converted.to_ndarray().reshape(-1, channels)
            if not np.isfinite(samples).all():
                raise AudioError("audio contains NaN or Inf")
            n_samples += len(samples)
            if limit is not None and n_samples > limit:
                raise AudioTooLong(f"longer than the limit of {max_seconds:g} s")
            mono = np.clip(samples, -1.0, 1.0).mean(axis=1, dtype=np.float32)
            yield mono if resampler is None else np.clip(resampler.resample_chunk(mono), -1, 1)
    if resampler is not None:
        yield np.clip(resampler.resample_chunk(np.zeros(0, np.float32), last=True), -1, 1)


def crop_or_pad(audio: np.ndarray, length: int, offset: int = 0) -> np.ndarray:
    """Cut `length` samples starting at `offset`, zero-padding clips that are shorter."""
    segment = audio[offset : offset + length]
    if len(segment) < length:
        segment = np.pad(segment, (0, length - len(segment)))
    return segment


def shift_windows(windows: np.ndarray, samples: int) -> np.ndarray:
    """Windows (n, length) moved `samples` later (earlier when negative), zero-filled where they
    open up, as training's time shift moves a clip in its window."""
    moved = np.zeros_like(windows)
    if samples >= 0:
        moved[:, samples:] = windows[:, : windows.shape[1] - samples]
    else:
        moved[:, :samples] = windows[:, -samples:]
    return moved


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
