"""Room impulse responses for reverberation augmentation, simulated by pyroomacoustics.

Recorded corpora are close-talk studio speech; users' recordings are made in rooms. A bank of
shoebox rooms (image source method, walls absorbing to reach a drawn RT60) is simulated once
per setting, kept as one .npy in the cache folder, and convolved with training batches.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from speech_emotion_recognition.noise import cached_array


def simulate_rooms(
    count: int,
    sample_rate: int,
    rt60_s: Sequence[float] = (0.2, 0.8),
    max_seconds: float = 1.0,
    seed: int = 0,
) -> np.ndarray:
    """(count, samples) float32 impulse responses, each starting at its direct path and scaled
    to unit energy: rooms 3-10 x 3-8 x 2.4-4 m, source and microphone at least 0.5 m from a wall.
    """
    import pyroomacoustics as pra  # training only; a few hundred ms to import

    rng = np.random.default_rng(seed)
    length = int(max_seconds * sample_rate)
    bank = np.zeros((count, length), dtype=np.float32)
    for i in range(count):
        size = rng.uniform([3.0, 3.0, 2.4], [10.0, 8.0, 4.0])
        absorption, max_order = pra.inverse_sabine(rng.uniform(*rt60_s), size)
        room = pra.ShoeBox(
            size, fs=sample_rate, materials=pra.Material(absorption), max_order=max_order
        )
        room.add_source(rng.uniform(0.5, size - 0.5))
        room.add_microphone(rng.uniform(0.5, size - 0.5))
        room.compute_rir()
        response = np.asarray(room.rir[0][0], dtype=np.float64)
        response = response[int(np.argmax(np.abs(response))) :][:length]
        bank[i, : len(response)] = response / np.sqrt(np.sum(response**2))
    return bank


def room_bank(
    count: int,
    sample_rate: int,
    rt60_s: Sequence[float],
    max_seconds: float,
    seed: int,
    cache_dir: str | Path | None = None,
) -> np.ndarray:
    """`simulate_rooms`, cached in `cache_dir` under a name made of its arguments (a bank of a
    hundred rooms takes half a minute to simulate)."""
    arguments = (count, sample_rate, tuple(rt60_s), max_seconds, seed)
    key = hashlib.sha1(repr(arguments).encode()).hexdigest()
    return cached_array(
        cache_dir,
        f"rooms-{key}.npy",
        lambda: simulate_rooms(count, sample_rate, rt60_s, max_seconds, seed),
    )
