"""Log-mel features on the model's device: waveforms in, standardised noise-trimmed images out."""

from __future__ import annotations

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn


def voiced_band_means(db: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(each mel band's mean over the clip's voiced frames (B, 1, n_mels, 1), the voiced frame
    count (B, 1, 1, 1)); a frame is voiced where any band is above the noise trim."""
    voiced = (db > 0).any(dim=-2, keepdim=True)  # (B, 1, 1, frames)
    frames = voiced.sum(dim=-1, keepdim=True)
    return (db * voiced).sum(dim=-1, keepdim=True) / frames.clamp(min=1), frames


def band_normalised(db: torch.Tensor, band_means: torch.Tensor | None = None) -> torch.Tensor:
    """`band_means` (each clip's own voiced band means when None: cepstral mean normalisation
    on the log-mel) removed from the voiced frames: a voice's or a microphone's spectral tilt,
    constant over the clip, leaves the image; silent frames (all noise, 0) stay 0."""
    voiced = (db > 0).any(dim=-2, keepdim=True)
    if band_means is None:
        band_means = voiced_band_means(db)[0]
    return torch.where(voiced, db - band_means, db)


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
        return above_floor.masked_fill(above_floor < self.trim_db, 0.0)

    # Features stay fp32 under mixed precision: in bf16 the dB values are off by about 2 %.
    @torch.autocast("cuda", enabled=False)
    @torch.autocast("cpu", enabled=False)
    def forward(
        self, waveforms: torch.Tensor, band_means: torch.Tensor | None = None
    ) -> torch.Tensor:
        """`band_means` (B, n_mels): with band_norm, remove these (a speaker's, over their
        clips) instead of each clip's own."""
        trimmed = self.trimmed_db(waveforms)
        if self.band_norm:
            given = None if band_means is None else band_means[:, None, :, None].float()
            trimmed = band_normalised(trimmed, given)
        resized = F.interpolate(
            trimmed, size=(trimmed.shape[-2], self.n_frames), mode="bilinear", align_corners=False
        )
        mean = resized.mean(dim=(-2, -1), keepdim=True)
        std = resized.std(dim=(-2, -1), keepdim=True)
        return (resized - mean) / (std + self.eps)
