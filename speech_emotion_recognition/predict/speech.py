"""Where the speech is: silero-vad regions, and the model's windows cut from them.

Emotion features are standardised per clip, so a recording's level says nothing about whether
it holds speech; a voice-activity detector does. Each file is peak-normalised before the
detector (it misses speech below about -70 dBFS otherwise); only digital silence is refused by
level. Windows are cut from the speech regions, so no window without speech reaches the model.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, replace

import numpy as np
import torch

from speech_emotion_recognition.audio import AudioError, crop_or_pad
from speech_emotion_recognition.predict.gate import holds_speech

NO_SPEECH = "no speech detected"
DETECTOR_RATE = 16000  # silero-vad runs at 16 kHz (or 8 kHz)


@dataclass(frozen=True)
class SpeechConfig:
    """conf/speech/default.yaml: detector thresholds, durations in seconds, windowing."""

    vad: bool
    threshold: float
    weak_threshold: float | None
    min_speech_seconds: float
    min_silence_seconds: float
    pad_seconds: float
    merge_gap_seconds: float
    peak_dbfs: float
    digital_silence_dbfs: float
    window_seconds: float
    hop_seconds: float
    shift_seconds: float
    gate: str | None = None
    gate_reviews: str = "weak"  # "weak": the second look's files only; "all": every file heard


@dataclass
class Span:
    """A window of the model's length and the speech it holds, both in samples of the file."""

    start: int
    speech_start: int
    speech_end: int

    @property
    def speech_samples(self) -> int:
        return self.speech_end - self.speech_start


FRAME = 512  # silero-vad scores 32 ms frames at 16 kHz
_detector = None


def detector():
    """silero-vad's ONNX model with a state of its own (the session, loaded once per process
    from inside the wheel, is shared): one per file or stream, since the detector is stateful."""
    global _detector
    if _detector is None:
        from silero_vad import load_silero_vad

        _detector = load_silero_vad(onnx=True)
    fresh = copy.copy(_detector)
    fresh.reset_states()
    return fresh


def normalise(audio: np.ndarray, config: SpeechConfig) -> np.ndarray:
    """Scale to `peak_dbfs`; digital silence (peak under `digital_silence_dbfs`) has no speech."""
    peak = float(np.abs(audio).max()) if len(audio) else 0.0
    if peak <= 10 ** (config.digital_silence_dbfs / 20):
        raise AudioError(NO_SPEECH)
    return (audio * (10 ** (config.peak_dbfs / 20) / peak)).astype(np.float32)


@torch.inference_mode()
def frame_probabilities(audio: np.ndarray, model) -> list[float]:
    """The detector's speech probability of each 32 ms frame, the last one padded with zeros;
    the model's state carries on from its previous call (a stream feeds it piece by piece)."""
    frames = torch.from_numpy(np.pad(audio, (0, -len(audio) % FRAME))).reshape(-1, FRAME)
    return [model(frame, DETECTOR_RATE).item() for frame in frames]


def merge(found: list[dict], gap: int) -> list[tuple[int, int]]:
    """(start, end) pairs of silero's segments, pauses of at most `gap` samples merged."""
    regions: list[tuple[int, int]] = []
    for region in found:
        if regions and region["start"] - regions[-1][1] <= gap:
            regions[-1] = (regions[-1][0], region["end"])
        else:
            regions.append((region["start"], region["end"]))
    return regions


def end_threshold(threshold: float) -> float:
    """silero-vad's lower threshold (its default): a segment ends where speech falls below it."""
    return max(threshold - 0.15, 0.01)


def segments(
    probabilities: list[float], n_samples: int, config: SpeechConfig, threshold: float | None = None
) -> list[dict]:
    """silero-vad's own rules (thresholds, minimum speech and silence, padding) on frame
    probabilities; `n_samples` is the length of the audio they score."""
    from silero_vad import get_speech_timestamps_from_probs

    threshold = config.threshold if threshold is None else threshold
    return get_speech_timestamps_from_probs(
        probabilities,
        sampling_rate=DETECTOR_RATE,
        threshold=threshold,
        neg_threshold=end_threshold(threshold),
        min_speech_duration_ms=int(1000 * config.min_speech_seconds),
        min_silence_duration_ms=int(1000 * config.min_silence_seconds),
        speech_pad_ms=int(1000 * config.pad_seconds),
        audio_length_samples=n_samples,
    )


def speech_regions(audio: np.ndarray, sample_rate: int, config: SpeechConfig) -> list[tuple]:
    """(start, end) sample pairs of speech, pauses under `merge_gap_seconds` merged."""
    if not config.vad:
        return [(0, len(audio))]
    if sample_rate != DETECTOR_RATE:
        raise ValueError(f"silero-vad needs {DETECTOR_RATE} Hz audio, got {sample_rate}")
    probabilities = frame_probabilities(audio, detector())
    found = segments(probabilities, len(audio), config)
    second_look = not found and config.weak_threshold is not None
    if second_look:
        # Shouted, clipped or whispered speech can stay under `threshold` in every frame
        # (58 of the 11,441 clips of the training corpora): a file without a region is scored
        # again at `weak_threshold` with the same rules; a stream never is (it has no end).
        found = segments(probabilities, len(audio), config, config.weak_threshold)
    # ...and so can a dog, a drill or a siren: there a learned gate decides (gate.py), on the
    # second look only or on every file silero hears (`gate_reviews`)
    reviewed = second_look or config.gate_reviews == "all"
    if found and config.gate and reviewed and not holds_speech(audio, probabilities, config.gate):
        found = []
    return merge(found, int(config.merge_gap_seconds * sample_rate))


def how_heard(audio: np.ndarray, config: SpeechConfig) -> str:
    """How silero hears a file (16 kHz), before any gate: "yes" at its threshold, "weak" only
    at the weak threshold, else "no" (the audits and the gate's measurement count these)."""
    try:
        audio = normalise(audio, config)
    except AudioError:
        return "no"
    if speech_regions(audio, DETECTOR_RATE, replace(config, weak_threshold=None)):
        return "yes"
    return "weak" if speech_regions(audio, DETECTOR_RATE, replace(config, gate=None)) else "no"


def spans(regions: list[tuple[int, int]], n_samples: int, window: int, hop: int) -> list[Span]:
    """Model windows over the speech: one centred on each short region (the file's start when the
    file is shorter than a window, padded at the end as in training), overlapping windows every
    `hop` over a longer one."""
    result = []
    for begin, end in regions:
        if end - begin <= window:
            centre = (begin + end) // 2
            start = min(max(0, centre - window // 2), max(0, n_samples - window))
            result.append(Span(start, begin, end))
            continue
        starts = list(range(begin, end - window + 1, hop))
        if starts[-1] + window < end:
            starts.append(end - window)
        result.extend(Span(s, s, s + window) for s in starts)
    return result


def speech_windows(
    audio: np.ndarray, sample_rate: int, config: SpeechConfig
) -> tuple[np.ndarray, list[Span]]:
    """(windows, spans) of the speech in a decoded file; AudioError when it has none."""
    level = normalise(audio, config)
    regions = speech_regions(level, sample_rate, config)
    if not regions:
        raise AudioError(NO_SPEECH)
    window = int(config.window_seconds * sample_rate)
    hop = int(config.hop_seconds * sample_rate)
    cut = spans(regions, len(audio), window, hop)
    windows = np.stack([crop_or_pad(level, window, span.start) for span in cut])
    return windows.astype(np.float32), cut


def weighted_mean(probabilities: np.ndarray, cut: list[Span]) -> np.ndarray:
    """A file's probabilities: its windows' probabilities weighted by the speech each holds."""
    weights = np.array([max(span.speech_samples, 1) for span in cut], dtype=np.float64)
    return (probabilities * weights[:, None]).sum(axis=0) / weights.sum()
