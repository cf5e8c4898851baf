"""Recordings in, waveforms out: any FFmpeg-readable file decoded to mono float32 at one rate in
bounded memory, and cut to the model's window. Shared by prediction and training."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import soxr

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
