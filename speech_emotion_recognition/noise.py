"""Noise for training and for robustness curves: recorded background sounds (the NOISE
corpus), coloured noise, babble and mixing at an exact SNR."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.audio import audio_files, load_audio

NOISE_HINT = (
    "Run `dvc pull data/NOISE.dvc` in the repository root (the project's DVC remote). Without "
    "it: train with augmentation=default (noise colours, filters and gain, no recordings), or "
    "give model.batch_augment.background_dirs=[DIR,...] folders of background recordings of "
    "your own; evaluate.py with noise.types=[white,pink,babble] (docs/data.md > Recorded noise)."
)

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


def recorded_noise(
    folders: Sequence[str | Path], sample_rate: int, cache_dir: str | Path | None = None
) -> np.ndarray:
    """Every recording below `folders`, mono at `sample_rate`, end to end in one float16 array
    (random crops of it are the noise). Decoding a thousand clips takes half a minute, so the
    array is kept as one .npy in `cache_dir`, named by the files' paths, sizes and times.
    Relative folders are inside the repository."""
    folders = [PROJECT_ROOT / f for f in folders]  # an absolute folder stays itself
    files = []
    for folder in folders:
        if not Path(folder).is_dir():
            raise FileNotFoundError(f"Noise recordings not found: {Path(folder).resolve()}. "
                                    f"{NOISE_HINT}")  # fmt: skip
        files += audio_files(folder)
    if not files:
        raise FileNotFoundError(f"No audio in {', '.join(map(str, folders))}. {NOISE_HINT}")
    listing = "|".join(f"{f.resolve()}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files)
    key = hashlib.sha1(f"{listing}|{sample_rate}".encode()).hexdigest()
    return cached_array(
        cache_dir,
        f"noise-{key}.npy",
        lambda: np.concatenate([load_audio(str(f), sample_rate) for f in files]).astype(np.float16),
    )


def cached_array(
    cache_dir: str | Path | None, name: str, make: Callable[[], np.ndarray]
) -> np.ndarray:
    """`cache_dir/name` if it is there, else `make()`, saved there atomically (concurrent runs
    never read half a file); without a cache folder, `make()` every time."""
    cached = Path(cache_dir) / name if cache_dir else None
    if cached and cached.is_file():
        return np.load(cached)
    array = make()
    if cached:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as f:
            np.save(f, array, allow_pickle=False)
        os.replace(tmp, cached)
    return array


def recording_crop(bank: np.ndarray, n_samples: int, rng: np.random.Generator) -> np.ndarray:
    """`n_samples` of the recordings from a random place (looped when the bank is shorter)."""
    start = int(rng.integers(max(1, len(bank) - n_samples)))
    return np.resize(bank[start : start + n_samples].astype(np.float64), n_samples)
