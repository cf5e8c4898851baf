"""A learned second opinion on speech: where silero-vad hears a file only at its weak threshold
(shouted or clipped speech, but also dogs, drills and sirens), a small classifier trained on this
project's corpora against recorded and generated non-speech decides (predict/speech.py).

Features are statistics of a 64-band log-mel spectrogram over the file's louder frames: each
band's mean and spread, and the mean and spread of its frame-to-frame change (speech moves
between syllables; engines, sirens and hiss hold still or jump at random). The network is a
two-layer perceptron; its weights, the features' standardisation and the decision threshold
travel in one safetensors file (`models/speech-gate.safetensors`), loaded without Lightning.
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
N_FEATURES = 4 * N_MELS
META_KEY = "gate"


class GateFeatures:
    """Waveform (16 kHz mono float) -> the classifier's feature vector."""

    def __init__(self) -> None:
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=RATE, n_fft=512, win_length=400, hop_length=160, n_mels=N_MELS
        )

    @torch.inference_mode()
    def __call__(self, audio: np.ndarray) -> np.ndarray:
        waveform = torch.as_tensor(np.asarray(audio, dtype=np.float32))
        if waveform.numel() < 400:
            waveform = torch.nn.functional.pad(waveform, (0, 400 - waveform.numel()))
        db = 10 * torch.log10(self.mel(waveform) + 1e-10)  # (mels, frames)
        energy = db.max(dim=0).values
        active = db[:, energy >= energy.max() - ACTIVE_DB]
        active = active - active.max()  # level-free: the file's loudest point is 0 dB
        change = active.diff(dim=1) if active.shape[1] > 1 else torch.zeros_like(active)
        parts = (active.mean(1), active.std(1, correction=0), change.abs().mean(1),
                 change.std(1, correction=0))  # fmt: skip
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


def holds_speech(audio: np.ndarray, path: str | Path) -> bool:
    """The gate of `path` (relative to the repository, or absolute; loaded once per process)
    on one file's 16 kHz audio."""
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
        logit = gate(torch.as_tensor(features(audio))[None])
    return bool(torch.sigmoid(logit)[0] >= gate.threshold)
