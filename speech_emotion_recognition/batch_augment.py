"""The cheap waveform augmentations for a whole batch at once, on the model's device.

On a GPU the DataLoader workers cannot keep up with the network when every clip goes through
audiomentations on the CPU; these run as a few tensor operations per batch instead. They mirror
`conf/augmentation/default.yaml` (time shift, low/high-pass, coloured noise, gain), each clip
drawing its own parameters; pitch shift stays on the CPU workers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def _uniform(n: int, low: float, high: float, like: torch.Tensor) -> torch.Tensor:
    return torch.empty(n, 1, device=like.device).uniform_(low, high)


def _chosen(n: int, p: float, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, 1, device=like.device) < p


class BatchAugment(nn.Module):
    """(B, samples) -> (B, samples), in fp32; filters are Butterworth magnitudes in the FFT domain.

    Noise colours are given as spectral slopes in dB per octave (0 white, -3.01 pink, -6.02
    brown), as audiomentations' AddColorNoise takes them.
    """

    def __init__(
        self,
        sample_rate: int,
        shift_p: float,
        max_shift: float,
        low_pass_p: float,
        low_pass_hz: Sequence[float],
        high_pass_p: float,
        high_pass_hz: Sequence[float],
        filter_order: int,
        noise_p: float,
        snr_db: Sequence[float],
        noise_decays_db: Sequence[float],
        gain_p: float,
        gain_db: Sequence[float],
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        self.shift_p, self.max_shift = shift_p, max_shift
        self.low_pass_p, self.low_pass_hz = low_pass_p, tuple(low_pass_hz)
        self.high_pass_p, self.high_pass_hz = high_pass_p, tuple(high_pass_hz)
        self.filter_order = filter_order
        self.noise_p, self.snr_db = noise_p, tuple(snr_db)
        self.register_buffer("decays", torch.tensor(list(noise_decays_db)), persistent=False)
        self.gain_p, self.gain_db = gain_p, tuple(gain_db)

    def shift(self, x: torch.Tensor) -> torch.Tensor:
        """Move each clip by up to `max_shift` of its length, filling with zeros (no rollover)."""
        n, length = x.shape
        limit = int(self.max_shift * length)
        offsets = torch.randint(-limit, limit + 1, (n, 1), device=x.device)
        offsets = offsets * _chosen(n, self.shift_p, x)
        source = torch.arange(length, device=x.device) - offsets
        inside = (source >= 0) & (source < length)
        return torch.gather(x, 1, source.clamp(0, length - 1)) * inside

    def filter_and_noise(self, x: torch.Tensor) -> torch.Tensor:
        n, length = x.shape
        frequency = torch.fft.rfftfreq(length, 1.0 / self.sample_rate, device=x.device)
        frequency = frequency.clamp_min(frequency[1]).unsqueeze(0)
        order = 2 * self.filter_order
        low = _uniform(n, *self.low_pass_hz, x)
        high = _uniform(n, *self.high_pass_hz, x)
        response = torch.where(
            _chosen(n, self.low_pass_p, x), (1 + (frequency / low) ** order).rsqrt(), 1.0
        ) * torch.where(
            _chosen(n, self.high_pass_p, x), (1 + (high / frequency) ** order).rsqrt(), 1.0
        )
        filtered = torch.fft.irfft(torch.fft.rfft(x) * response, n=length)

        # Coloured noise: white Gaussian noise with amplitude ~ f ** (decay / 6.02 dB per octave).
        decay = self.decays[torch.randint(len(self.decays), (n, 1), device=x.device)]
        slope = frequency ** (decay / (20 * math.log10(2)))
        noise = torch.fft.irfft(torch.fft.rfft(torch.randn_like(x)) * slope, n=length)
        signal_rms = filtered.square().mean(dim=1, keepdim=True).sqrt()
        noise_rms = noise.square().mean(dim=1, keepdim=True).sqrt().clamp_min(1e-12)
        snr = _uniform(n, *self.snr_db, x)
        scale = signal_rms / (noise_rms * 10 ** (snr / 20)) * _chosen(n, self.noise_p, x)
        return filtered + scale * noise

    def gain(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        db = _uniform(n, *self.gain_db, x) * _chosen(n, self.gain_p, x)
        return x * 10 ** (db / 20)

    @torch.autocast("cuda", enabled=False)
    @torch.autocast("cpu", enabled=False)
    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.gain(self.filter_and_noise(self.shift(waveforms.float())))
