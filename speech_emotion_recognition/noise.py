"""Test-time noise for robustness curves: coloured noise, babble and mixing at an exact SNR."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

# Power spectral density ~ 1 / f ** exponent.
COLOUR_EXPONENTS = {"white": 0.0, "pink": 1.0, "brown": 2.0}


def rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def coloured_noise(n_samples: int, colour: str, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise shaped in the frequency domain to the colour's 1/f^k power spectrum."""
    spectrum = np.fft.rfft(rng.standard_normal(n_samples))
    frequencies = np.fft.rfftfreq(n_samples)
    frequencies[0] = frequencies[1] if n_samples > 1 else 1.0
    spectrum *= frequencies ** (-COLOUR_EXPONENTS[colour] / 2)
    return np.fft.irfft(spectrum, n=n_samples)


def babble(
    n_samples: int, others: Sequence[np.ndarray], rng: np.random.Generator, talkers: int
) -> np.ndarray:
    """Sum of `talkers` clips from other speakers, each at equal level and looped to length."""
    chosen = rng.choice(len(others), size=min(talkers, len(others)), replace=False)
    total = np.zeros(n_samples)
    for index in chosen:
        voice = np.asarray(others[index], dtype=np.float64)
        voice = np.resize(voice, n_samples)  # loops short clips
        total += voice / max(rms(voice), np.finfo(float).tiny)
    return total


def mix_at_snr(signal: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """signal + noise scaled so that 10 log10(P_signal / P_noise) equals `snr_db` exactly."""
    if np.isinf(snr_db):
        return signal.astype(np.float32)
    scale = rms(signal) / (max(rms(noise), np.finfo(float).tiny) * 10 ** (snr_db / 20))
    return (signal + scale * noise).astype(np.float32)
