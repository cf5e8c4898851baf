"""Log-mel features on the model's device: waveforms in, standardised noise-trimmed images out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn


def band_normalised(db: torch.Tensor) -> torch.Tensor:
    """Each mel band's mean over the clip's voiced frames removed from those frames (cepstral
    mean normalisation on the log-mel): a voice's or a microphone's spectral tilt, constant over
    the clip, leaves the image; silent frames (all noise, 0) stay 0. One clip is enough."""
    voiced = (db > 0).any(dim=-2, keepdim=True)  # (B, 1, 1, frames)
    frames = voiced.sum(dim=-1, keepdim=True).clamp(min=1)
    band_mean = (db * voiced).sum(dim=-1, keepdim=True) / frames
    return torch.where(voiced, db - band_mean, db)


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
        band_norm: bool = False,
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
        self.band_norm = band_norm

    def trimmed_db(self, waveforms: torch.Tensor) -> torch.Tensor:
        """(B, samples) -> (B, 1, n_mels, frames) in dB above each clip's floor, noise at 0."""
        # (B, 1, T) keeps AmplitudeToDB's top_db clamp per clip rather than per batch.
        db = self.to_db(self.mel(waveforms.float().unsqueeze(1)))
        above_floor = db - db.amin(dim=(-2, -1), keepdim=True)
        trimmed = above_floor.masked_fill(above_floor < self.trim_db, 0.0)
        return band_normalised(trimmed) if self.band_norm else trimmed

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
