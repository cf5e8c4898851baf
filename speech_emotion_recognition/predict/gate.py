"""A learned second opinion on speech: where silero-vad hears a file only at its weak threshold
(shouted or clipped speech, but also dogs, drills and sirens), a small classifier trained on this
project's corpora against recorded and generated non-speech decides (predict/speech.py).

Features: statistics of a 64-band log-mel spectrogram over the file's louder frames (each
band's mean and spread, and the mean and spread of its frame-to-frame change: speech moves
between syllables; engines, sirens and hiss hold still or jump at random); the share of each
quarter of the bands' level modulation that lies at 2-8 Hz, the syllable rate; and the pattern
of silero's own frame probabilities, which the detector has computed anyway (their mean and
peak, the share of frames above 0.1 and 0.5, onsets per second, the longest run above 0.5).
The network is a two-layer perceptron; its weights, the features' standardisation and the
decision threshold travel in one safetensors file (`models/speech-gate.safetensors`), loaded
without Lightning.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
import torchaudio
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from speech_emotion_recognition import PROJECT_ROOT

RATE = 16000
N_MELS = 64
ACTIVE_DB = 40.0  # frames within this of the file's loudest count as its sound
FRAMES_PER_SECOND = RATE / 160
SYLLABLE_HZ = (2.0, 8.0)  # the modulation band of syllables, of 0.5-16 Hz
N_FEATURES = 4 * N_MELS + 4 + 6
META_KEY = "gate"


def syllable_shares(db: torch.Tensor) -> torch.Tensor:
    """(mels, frames) dB -> for each quarter of the bands, the share of its level's modulation
    power (0.5-16 Hz) that lies at the syllable rate."""
    envelope = db.reshape(4, N_MELS // 4, -1).mean(dim=1)
    envelope = envelope - envelope.mean(dim=1, keepdim=True)
    n = max(envelope.shape[1], 256)
    power = torch.fft.rfft(envelope, n=n).abs() ** 2
    hz = torch.fft.rfftfreq(n, d=1 / FRAMES_PER_SECOND)
    syllable = (hz >= SYLLABLE_HZ[0]) & (hz <= SYLLABLE_HZ[1])
    every = (hz >= 0.5) & (hz <= 16.0)
    return power[:, syllable].sum(dim=1) / power[:, every].sum(dim=1).clamp(min=1e-10)


def detector_pattern(probabilities: list[float], seconds: float) -> torch.Tensor:
    """silero's frame probabilities -> mean, peak, share above 0.1 and 0.5, onsets per second
    and the longest run above 0.5 in seconds."""
    p = torch.tensor(probabilities or [0.0])
    above = p >= 0.5
    onsets = int(above[0]) + int((above[1:] & ~above[:-1]).sum())
    longest, run = 0, 0
    for hit in above.tolist():
        run = run + 1 if hit else 0
        longest = max(longest, run)
    frame = seconds / len(p)
    return torch.tensor([p.mean(), p.max(), (p >= 0.1).float().mean(), above.float().mean(),
                         onsets / max(seconds, 1e-3), longest * frame])  # fmt: skip


class GateFeatures:
    """Waveform (16 kHz mono float) and silero's frame probabilities of it -> the classifier's
    feature vector."""

    def __init__(self) -> None:
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=RATE, n_fft=512, win_length=400, hop_length=160, n_mels=N_MELS
        )

    @torch.inference_mode()
    def __call__(self, audio: np.ndarray, probabilities: list[float]) -> np.ndarray:
        waveform = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        seconds = waveform.numel() / RATE
        if waveform.numel() < 400:
            waveform = torch.nn.functional.pad(waveform, (0, 400 - waveform.numel()))
        db = 10 * torch.log10(self.mel(waveform) + 1e-10)  # (mels, frames)
        energy = db.max(dim=0).values
        active = db[:, energy >= energy.max() - ACTIVE_DB]
        active = active - active.max()  # level-free: the file's loudest point is 0 dB
        change = active.diff(dim=1) if active.shape[1] > 1 else torch.zeros_like(active)
        parts = (active.mean(1), active.std(1, correction=0), change.abs().mean(1),
                 change.std(1, correction=0), syllable_shares(db),
                 detector_pattern(probabilities, seconds))  # fmt: skip
        return torch.cat(parts).numpy()


class SpeechGate(nn.Module):
    """Standardised features -> the logit of "this file holds speech"."""

    def __init__(self, hidden: int = 64) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(N_FEATURES))
        self.register_buffer("std", torch.ones(N_FEATURES))
        self.net = nn.Sequential(
            nn.Linear(N_FEATURES, hidden), nn.ReLU(), nn.Dropout(0.2), nn.Linear(hidden, 1)
        )
        self.threshold = 0.5

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.net((features - self.mean) / self.std).squeeze(-1)

    def save(self, path: str | Path, about: dict) -> None:
        state = {k: v.contiguous() for k, v in self.state_dict().items()}
        save_file(state, str(path), {META_KEY: json.dumps({**about, "threshold": self.threshold})})

    @classmethod
    def load(cls, path: str | Path) -> SpeechGate:
        with safe_open(str(path), "pt") as f:
            about = json.loads(f.metadata()[META_KEY])
        gate = cls()
        gate.load_state_dict(load_file(str(path)))
        gate.threshold = float(about["threshold"])
        return gate.eval()


_loaded: dict[str, tuple[SpeechGate, GateFeatures]] = {}


def holds_speech(audio: np.ndarray, probabilities: list[float], path: str | Path) -> bool:
    """The gate of `path` (relative to the repository, or absolute; loaded once per process)
    on one file's 16 kHz audio and silero's frame probabilities of it."""
    key = str(Path(PROJECT_ROOT, path))
    if key not in _loaded:
        if not Path(key).is_file():
            raise FileNotFoundError(
                f"speech.gate={key} not found: the gate ships with the releases in models/ "
                "(speech.gate=null turns it off)"
            )
        _loaded[key] = (SpeechGate.load(key), GateFeatures())
    gate, features = _loaded[key]
    with torch.inference_mode():
        logit = gate(torch.as_tensor(features(audio, probabilities))[None])
    return bool(torch.sigmoid(logit)[0] >= gate.threshold)
