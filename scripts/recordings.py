"""Recordings the benchmarks, the browser script and the tests build from RAVDESS test actor 08
(`dvc pull data/RAVDESS.dvc`), each with the reason it is built the way it is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.audio import load_audio

RATE = 16000
ACTOR = PROJECT_ROOT / "data" / "RAVDESS" / "Actor_08"


def clip(name: str) -> np.ndarray:
    path = ACTOR / name
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: run `dvc pull data/RAVDESS.dvc`")
    return load_audio(str(path), RATE)


def talk(seed: int = 0) -> np.ndarray:
    """About 48 s: eight sentences, each quieter than the one before (a stream learns the peak
    as it goes; here it is heard first), pauses of 0.3-2.5 s, then three sentences without
    their silences and 0.6 s pauses: one long region with overlapping windows, which the merge
    rule bridges. Faint noise throughout."""
    from omegaconf import OmegaConf

    from speech_emotion_recognition.predict.speech import SpeechConfig, speech_regions

    names = sorted(p.name for p in ACTOR.glob("03-01-0[1345678]-*.wav"))[:11]
    sentences = [clip(name) for name in names]
    rng = np.random.default_rng(seed)
    config = SpeechConfig(**OmegaConf.load(PROJECT_ROOT / "conf" / "speech" / "default.yaml"))
    parts = []
    for i, sentence in enumerate(sentences[:8]):
        pause = np.zeros(int(rng.uniform(0.3, 2.5) * RATE))
        parts += [sentence / np.abs(sentence).max() * 0.9 * 0.85**i, pause]
    for sentence in sentences[8:]:
        regions = speech_regions(sentence / np.abs(sentence).max(), RATE, config)
        speech = 0.3 * sentence[regions[0][0] : regions[-1][1]] / np.abs(sentence).max()
        parts += [speech, np.zeros(int(0.6 * RATE))]
    parts.append(np.zeros(RATE))
    audio = np.concatenate(parts)
    return (audio + 3e-4 * rng.standard_normal(len(audio))).astype(np.float32)


def three_sentences(target: Path) -> Path:
    """Neutral, happy and sad sentences at 1, 7 and 13 s of 18 s of noise (the page's picture)."""
    names = ("03-01-01-01-01-01-08.wav", "03-01-03-01-01-01-08.wav", "03-01-04-01-01-01-08.wav")
    recording = 0.0005 * np.random.default_rng(1).standard_normal(18 * RATE)
    for start, name in zip((1, 7, 13), names, strict=True):
        sentence = clip(name)
        recording[start * RATE : start * RATE + len(sentence)] += sentence
    sf.write(target, recording, RATE)
    return target


# The Live tab's sentences: each keeps its label from the default release, by a clear margin,
# whatever the offset at which the browser starts sending and whatever rate it resamples to
# (tests/test_serve.py checks it; the sad take before the last came out "fear" in one CI run,
# the last one's margin fell to 0.08 at one offset with ser-mid-multi).
LIVE_SENTENCES = {
    "angry": "03-01-05-02-01-01-08.wav",
    "happy": "03-01-03-02-01-01-08.wav",
    "sad": "03-01-04-02-02-02-08.wav",
}


def live_sentences(target: Path) -> tuple[Path, float]:
    """The LIVE_SENTENCES at 1.5, 6.5 and 11.5 s of 17 s of noise, and the length in seconds."""
    recording = 0.0005 * np.random.default_rng(2).standard_normal(17 * RATE)
    for start, name in zip((1.5, 6.5, 11.5), LIVE_SENTENCES.values(), strict=True):
        sentence = clip(name)
        recording[int(start * RATE) : int(start * RATE) + len(sentence)] += sentence
    sf.write(target, recording, RATE)
    return target, len(recording) / RATE
