"""The augmentations for a whole batch at once, on the model's device (a GPU or the CPU).

DataLoader workers cannot keep up with the network when every clip goes through audiomentations
one by one (pitch shift alone costs 30 ms a clip here); these run as a few tensor operations per
batch instead, each clip drawing its own parameters. `BatchAugment` works on waveforms (speed,
time shift, room reverberation, babble of the batch's other clips, low/high-pass, coloured
noise, recorded background noise, gain);
`FeatureAugment` on the log-mel (a pitch shift as a warp of the mel axis, SpecAugment's
frequency and time masks); `mixup` mixes clips and their targets.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
import torchaudio.functional as AF
from torch import nn

from speech_emotion_recognition.noise import recorded_noise
from speech_emotion_recognition.training.rooms import room_bank


def _uniform(n: int, low: float, high: float, like: torch.Tensor) -> torch.Tensor:
    return torch.empty(n, 1, device=like.device).uniform_(low, high)


def _chosen(n: int, p: float, like: torch.Tensor) -> torch.Tensor:
    return torch.rand(n, 1, device=like.device) < p


def _audio(x: torch.Tensor) -> torch.Tensor:
    """(B, samples) bool: from each clip's first to its last non-zero sample."""
    index = torch.arange(x.shape[1], device=x.device)
    nonzero = x != 0
    first = torch.where(nonzero, index, x.shape[1]).amin(dim=1, keepdim=True)
    last = torch.where(nonzero, index, -1).amax(dim=1, keepdim=True)
    return (index >= first) & (index <= last)


def _add_at_snr(
    x: torch.Tensor,
    rows: torch.Tensor | list[int],
    noise: torch.Tensor,
    inside: torch.Tensor,
    snr_db: Sequence[float],
) -> torch.Tensor:
    """x with `noise` added to `rows`, each at an SNR drawn from `snr_db` over `inside`."""
    signal_rms = (x[rows].square() * inside).sum(dim=1, keepdim=True).sqrt()
    noise_rms = noise.square().sum(dim=1, keepdim=True).sqrt().clamp_min(1e-6)
    snr = _uniform(len(rows), *snr_db, x)
    out = x.clone()
    out[rows] = x[rows] + signal_rms / (noise_rms * 10 ** (snr / 20)) * noise
    return out


class BatchAugment(nn.Module):
    """(B, samples) -> (B, samples), in fp32; filters are Butterworth magnitudes in the FFT domain.

    Noise colours are given as spectral slopes in dB per octave (0 white, -3.01 pink, -6.02
    brown), as audiomentations' AddColorNoise takes them. `noise_over="clip"` puts coloured and
    recorded noise only where the window holds audio (first to last non-zero sample), at an SNR
    over that stretch: a short recording in noise reaches the model as noisy speech followed by
    the zero padding of its window, as `inference.py` and `evaluate.py` present it, where
    "window" fills the padding with noise too. Speed perturbation resamples a clip
    by one of `speeds` (tempo and pitch together, as Kaldi's recipes do); reverberation
    convolves it with one of `reverb_rooms` simulated rooms (rooms.py) at its own loudness.
    Babble sums up to `babble_talkers` other clips of the batch at equal level, as evaluate.py's
    babble sums other speakers' clips.
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
        background_p: float = 0.0,
        background_snr_db: Sequence[float] = (0.0, 20.0),
        background_dirs: Sequence[str] = (),
        cache_dir: str | None = None,
        speed_p: float = 0.0,
        speeds: Sequence[float] = (0.9, 1.1),
        reverb_p: float = 0.0,
        reverb_rt60_s: Sequence[float] = (0.2, 0.8),
        reverb_rooms: int = 100,
        babble_p: float = 0.0,
        babble_snr_db: Sequence[float] = (0.0, 20.0),
        babble_talkers: int = 4,
        noise_over: str = "window",
    ) -> None:
        super().__init__()
        self.sample_rate = sample_rate
        if noise_over not in ("clip", "window"):
            raise ValueError(f"noise_over must be 'clip' or 'window', not {noise_over!r}")
        self.noise_over = noise_over
        self.speed_p, self.speeds = speed_p, tuple(speeds)
        self.reverb_p = reverb_p
        rooms = torch.zeros(0, 0)
        if reverb_p > 0:
            bank = room_bank(reverb_rooms, sample_rate, reverb_rt60_s, 1.0, 0, cache_dir)
            rooms = torch.from_numpy(bank)
        self.register_buffer("rooms", rooms, persistent=False)
        self.babble_p, self.babble_snr_db = babble_p, tuple(babble_snr_db)
        self.babble_talkers = babble_talkers
        self.shift_p, self.max_shift = shift_p, max_shift
        self.low_pass_p, self.low_pass_hz = low_pass_p, tuple(low_pass_hz)
        self.high_pass_p, self.high_pass_hz = high_pass_p, tuple(high_pass_hz)
        self.filter_order = filter_order
        self.noise_p, self.snr_db = noise_p, tuple(snr_db)
        self.register_buffer("decays", torch.tensor(list(noise_decays_db)), persistent=False)
        self.gain_p, self.gain_db = gain_p, tuple(gain_db)
        self.background_p, self.background_snr_db = background_p, tuple(background_snr_db)
        bank = torch.zeros(0, dtype=torch.float16)
        if background_p > 0:
            bank = torch.from_numpy(recorded_noise(background_dirs, sample_rate, cache_dir))
        self.register_buffer("bank", bank, persistent=False)  # never in a checkpoint

    def speed(self, x: torch.Tensor) -> torch.Tensor:
        """Each chosen clip played `factor` times as fast (resampled), cut or zero-padded back
        to its length; one resampling per factor drawn in the batch."""
        if self.speed_p <= 0:
            return x
        n, length = x.shape
        chosen = _chosen(n, self.speed_p, x).view(-1).cpu()
        factors = torch.tensor(self.speeds)[torch.randint(len(self.speeds), (n,))]
        out = x.clone()
        for factor in sorted(set(factors[chosen].tolist()) - {1.0}):
            rows = torch.nonzero(chosen & (factors == factor)).view(-1).to(x.device)
            played = AF.resample(x[rows], round(self.sample_rate * factor), self.sample_rate)
            out[rows] = F.pad(played, (0, max(0, length - played.shape[1])))[:, :length]
        return out

    def reverb(self, x: torch.Tensor) -> torch.Tensor:
        """Each chosen clip convolved with a random simulated room, at the clip's own RMS."""
        if self.reverb_p <= 0:
            return x
        n, length = x.shape
        rows = torch.nonzero(_chosen(n, self.reverb_p, x).view(-1)).view(-1)
        if len(rows) == 0:
            return x
        rooms = self.rooms[torch.randint(len(self.rooms), (len(rows),), device=x.device)]
        wet = AF.fftconvolve(x[rows], rooms)[:, :length]
        dry_rms = x[rows].square().mean(dim=1, keepdim=True).sqrt()
        wet_rms = wet.square().mean(dim=1, keepdim=True).sqrt().clamp_min(1e-9)
        out = x.clone()
        out[rows] = wet * dry_rms / wet_rms
        return out

    def shift(self, x: torch.Tensor) -> torch.Tensor:
        """Move each chosen clip by up to `max_shift` of its length, filling with zeros (no
        rollover); one slice copy per clip, far cheaper than a gather over the whole batch."""
        n, length = x.shape
        limit = int(self.max_shift * length)
        offsets = (
            torch.randint(-limit, limit + 1, (n,)) * _chosen(n, self.shift_p, x).view(-1).cpu()
        )
        out = x.clone()
        for i in torch.nonzero(offsets).view(-1).tolist():
            offset = int(offsets[i])
            out[i] = 0
            if offset > 0:
                out[i, offset:] = x[i, :-offset]
            else:
                out[i, :offset] = x[i, -offset:]
        return out

    def extent(self, x: torch.Tensor) -> torch.Tensor:
        """(B, samples) bool: where noise goes; with noise_over="clip" where the clip has audio
        (the zero padding of a short clip stays silent)."""
        if self.noise_over == "window":
            return torch.ones_like(x, dtype=torch.bool)
        return _audio(x)

    def babble(self, x: torch.Tensor, extent: torch.Tensor) -> torch.Tensor:
        """Each chosen clip with k other clips of the batch (1 ≤ k ≤ babble_talkers, one k per
        batch), each scaled to unit RMS over its own audio, summed at an SNR over `extent`."""
        n, _ = x.shape
        talkers = min(self.babble_talkers, n - 1)
        if self.babble_p <= 0 or talkers < 1:
            return x
        rows = torch.nonzero(_chosen(n, self.babble_p, x).view(-1)).view(-1)
        if len(rows) == 0:
            return x
        audio = _audio(x)
        power = (x.square() * audio).sum(1, keepdim=True) / audio.sum(1, keepdim=True).clamp(1)
        voices = x / power.sqrt().clamp_min(1e-6)
        k = int(torch.randint(1, talkers + 1, ()))
        # rolling by 1..k gives every row k other rows of the batch, never itself
        noise = sum(torch.roll(voices, shifts, dims=0) for shifts in range(1, k + 1))
        inside = extent[rows]
        return _add_at_snr(x, rows, noise[rows] * inside, inside, self.babble_snr_db)

    def filter_and_noise(self, x: torch.Tensor, extent: torch.Tensor) -> torch.Tensor:
        """Low/high-pass in the FFT domain and coloured noise drawn as its spectrum, for the
        clips that draw any of them; the SNR is measured over `extent`."""
        n, length = x.shape
        low_on = _chosen(n, self.low_pass_p, x)
        high_on = _chosen(n, self.high_pass_p, x)
        noise_on = _chosen(n, self.noise_p, x)
        rows = torch.nonzero((low_on | high_on | noise_on).view(-1)).view(-1)
        if len(rows) == 0:
            return x
        m = len(rows)
        frequency = torch.fft.rfftfreq(length, 1.0 / self.sample_rate, device=x.device)
        frequency = frequency.clamp_min(frequency[1]).unsqueeze(0)
        order = 2 * self.filter_order
        low = _uniform(m, *self.low_pass_hz, x)
        high = _uniform(m, *self.high_pass_hz, x)
        response = torch.where(
            low_on[rows], (1 + (frequency / low) ** order).rsqrt(), 1.0
        ) * torch.where(high_on[rows], (1 + (high / frequency) ** order).rsqrt(), 1.0)
        spectrum = torch.fft.rfft(x[rows]) * response

        # Coloured noise: a white spectrum with amplitude ~ f ** (decay / 6.02 dB per octave).
        decay = self.decays[torch.randint(len(self.decays), (m, 1), device=x.device)]
        slope = frequency ** (decay / (20 * math.log10(2)))
        noise = torch.complex(torch.randn_like(slope), torch.randn_like(slope)) * slope
        noise[:, 0] = 0  # no offset
        snr = _uniform(m, *self.snr_db, x)
        signal = torch.fft.irfft(spectrum, n=length)
        out = x.clone()
        out[rows] = signal
        noisy = noise_on[rows].view(-1)  # only these need the noise in the time domain
        if noisy.any():
            inside = extent[rows[noisy]]
            noise = torch.fft.irfft(noise[noisy], n=length) * inside
            signal_power = (signal[noisy].square() * inside).sum(dim=1, keepdim=True)
            noise_power = noise.square().sum(dim=1, keepdim=True).clamp_min(1e-12)
            scale = (signal_power / noise_power).sqrt() * 10 ** (-snr[noisy] / 20)
            out[rows[noisy]] = signal[noisy] + scale * noise
        return out

    def background(self, x: torch.Tensor, extent: torch.Tensor) -> torch.Tensor:
        """Recorded sounds (a random stretch of the bank per clip) at an SNR over `extent`."""
        if self.background_p <= 0:
            return x
        n, length = x.shape
        rows = torch.nonzero(_chosen(n, self.background_p, x).view(-1)).view(-1).tolist()
        if not rows:
            return x
        starts = torch.randint(len(self.bank) - length, (len(rows),)).tolist()
        inside = extent[rows]
        noise = torch.stack([self.bank[s : s + length] for s in starts]).float() * inside
        return _add_at_snr(x, rows, noise, inside, self.background_snr_db)

    def gain(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        db = _uniform(n, *self.gain_db, x) * _chosen(n, self.gain_p, x)
        return x * 10 ** (db / 20)

    @torch.autocast("cuda", enabled=False)
    @torch.autocast("cpu", enabled=False)
    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        x = self.reverb(self.shift(self.speed(waveforms.float())))
        extent = self.extent(x)
        x = self.filter_and_noise(self.babble(x, extent), extent)
        return self.gain(self.background(x, extent))


def _mel(hz: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + hz / 700.0)


def _hz(mel: torch.Tensor) -> torch.Tensor:
    return 700.0 * (10 ** (mel / 2595.0) - 1.0)


class FeatureAugment(nn.Module):
    """(B, 1, n_mels, n_frames) log-mel -> the same, augmented per clip.

    Pitch shift: the mel axis is warped so that the energy at f Hz moves to f * 2**(s/12), s
    drawn from `semitones` (a shift of the harmonics and formants together; cheap where a
    waveform pitch shift is not). Masks: `freq_masks` bands of up to `freq_width` mels and
    `time_masks` spans of up to `time_width` frames set to 0, the standardised mean (SpecAugment).
    """

    def __init__(
        self,
        n_mels: int,
        f_min: float,
        f_max: float,
        pitch_p: float = 0.0,
        semitones: Sequence[float] = (-2.0, 3.0),
        freq_masks: int = 0,
        freq_width: int = 0,
        time_masks: int = 0,
        time_width: int = 0,
    ) -> None:
        super().__init__()
        self.pitch_p, self.semitones = pitch_p, tuple(semitones)
        self.freq_masks, self.freq_width = freq_masks, freq_width
        self.time_masks, self.time_width = time_masks, time_width
        low, high = _mel(torch.tensor(f_min)), _mel(torch.tensor(f_max))
        self.register_buffer("centres_hz", _hz(torch.linspace(low, high, n_mels)), False)
        self.mel_range = (float(low), float(high))

    def pitch(self, x: torch.Tensor) -> torch.Tensor:
        n, _, n_mels, n_frames = x.shape
        semitones = _uniform(n, *self.semitones, x) * _chosen(n, self.pitch_p, x)
        source_hz = self.centres_hz.unsqueeze(0) / 2 ** (semitones / 12)  # (n, n_mels)
        low, high = self.mel_range
        rows = (_mel(source_hz) - low) / (high - low) * 2 - 1  # grid_sample's [-1, 1]
        columns = torch.linspace(-1, 1, n_frames, device=x.device)
        grid = torch.stack(
            torch.broadcast_tensors(columns.view(1, 1, -1), rows.unsqueeze(-1)), dim=-1
        )
        return F.grid_sample(x, grid, align_corners=True, padding_mode="border")

    def mask(self, x: torch.Tensor, axis: int, count: int, width: int) -> torch.Tensor:
        size = x.shape[axis]
        positions = torch.arange(size, device=x.device)
        keep = torch.ones(x.shape[0], size, dtype=torch.bool, device=x.device)
        for _ in range(count):
            widths = torch.randint(width + 1, (x.shape[0], 1), device=x.device)
            starts = (torch.rand(x.shape[0], 1, device=x.device) * (size - widths)).long()
            keep &= (positions < starts) | (positions >= starts + widths)
        shape = [x.shape[0], 1, 1, 1]
        shape[axis] = size
        return x * keep.view(shape)

    @torch.autocast("cuda", enabled=False)
    @torch.autocast("cpu", enabled=False)
    def forward(self, features: torch.Tensor) -> torch.Tensor:
        x = features.float()
        if self.pitch_p > 0:
            x = self.pitch(x)
        if self.freq_masks and self.freq_width:
            x = self.mask(x, 2, self.freq_masks, self.freq_width)
        if self.time_masks and self.time_width:
            x = self.mask(x, 3, self.time_masks, self.time_width)
        return x


def mixup(
    features: torch.Tensor, targets: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup (Zhang et al., 2018): each clip blended with another of the batch, weight
    lambda ~ Beta(alpha, alpha) per clip, and the class probabilities (B, n_classes) alike."""
    n = features.shape[0]
    weight = torch.distributions.Beta(alpha, alpha).sample((n,)).to(features.device)
    # The larger weight on the clip itself, so each row stays mostly its own clip.
    weight = torch.maximum(weight, 1 - weight)
    partner = torch.randperm(n, device=features.device)
    mixed = torch.lerp(features[partner], features, weight.view(-1, *[1] * (features.dim() - 1)))
    return mixed, torch.lerp(targets[partner], targets, weight.view(-1, 1))
