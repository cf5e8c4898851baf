"""Synthetic speech-like audio for the tests: harmonic tones whose pitch encodes the class."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf

# One fundamental per emotion, far enough apart for a small model to tell them apart.
CLASS_PITCH_HZ = (110.0, 180.0, 260.0, 370.0, 520.0, 740.0)


def tone(
    pitch_hz: float, seconds: float, sample_rate: int, rng: np.random.Generator, channels: int = 1
) -> np.ndarray:
    """A vibrato harmonic tone in light noise, shaped like a syllable train."""
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    f0 = pitch_hz * (1 + 0.02 * np.sin(2 * np.pi * rng.uniform(3, 6) * t))
    phase = 2 * np.pi * np.cumsum(f0) / sample_rate
    wave = sum(np.sin(k * phase) / k for k in range(1, 5))
    envelope = 0.6 + 0.4 * np.sin(2 * np.pi * rng.uniform(2, 4) * t) ** 2
    audio = 0.2 * wave * envelope + 0.005 * rng.standard_normal(len(t))
    audio = audio / np.abs(audio).max() * rng.uniform(0.3, 0.8)
    return np.repeat(audio[:, None], channels, axis=1).astype(np.float32)


def write(path: Path, audio: np.ndarray, sample_rate: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, sample_rate)
    return path


def folder_corpus(
    root: Path, classes: range | list[int], per_speaker: int, speakers: int, seed: int = 0
) -> Path:
    """`root/<emotion>/<speaker>/clip.wav` with mixed rates, channels and lengths."""
    from speech_emotion_recognition.emotions import EMOTIONS

    rng = np.random.default_rng(seed)
    rates = (8000, 16000, 22050, 44100)
    for label in classes:
        for speaker in range(speakers):
            for i in range(per_speaker):
                rate = rates[(speaker + i) % len(rates)]
                audio = tone(CLASS_PITCH_HZ[label], rng.uniform(0.8, 2.0), rate, rng, 1 + i % 2)
                write(
                    root / EMOTIONS[label] / f"spk{speaker:02d}" / f"clip{i:02d}.wav", audio, rate
                )
    return root


def named_corpora(root: Path, speakers_per_sex: int = 3, seconds: float = 0.6) -> Path:
    """Tiny CREMA-D, RAVDESS, TESS, URDU and nEMO trees named as the real corpora, one clip
    per speaker and class.

    CREMA-D: actors 1001..1000+2n (odd male, even female, in VideoDemographics.csv); RAVDESS:
    actors 1..2n (odd male, even female); TESS: OAF and YAF; URDU: SM1.., SF1..; nEMO: M10..,
    F10.. at 24 kHz (sex in data.tsv), its five emotions of the six and "surprised".
    """
    rng = np.random.default_rng(0)
    rate = 16000
    ravdess_codes = {0: "05", 1: "07", 2: "06", 3: "03", 4: "01", 5: "04"}
    tess_names = ("angry", "disgust", "fear", "happy", "neutral", "sad")
    urdu = {0: ("Angry", "A"), 3: ("Happy", "H"), 4: ("Neutral", "N"), 5: ("Sad", "S")}

    def clip(label: int) -> np.ndarray:
        return tone(CLASS_PITCH_HZ[label], seconds, rate, rng)

    cremad_codes = ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD")
    demographics = ["ActorID,Age,Sex,Race,Ethnicity"]
    for actor in range(1001, 1001 + 2 * speakers_per_sex):
        sex = "Male" if actor % 2 else "Female"
        demographics.append(f"{actor},30,{sex},Caucasian,Not Hispanic")
        for label, code in enumerate(cremad_codes):
            write(root / "CREMA-D" / "AudioWAV" / f"{actor}_DFA_{code}_XX.wav", clip(label), rate)
    (root / "CREMA-D" / "VideoDemographics.csv").write_text("\n".join(demographics) + "\n")
    for actor in range(1, 2 * speakers_per_sex + 1):
        for label, code in ravdess_codes.items():
            name = f"03-01-{code}-01-01-01-{actor:02d}.wav"
            write(root / "RAVDESS" / f"Actor_{actor:02d}" / name, clip(label), rate)
    for speaker in ("OAF", "YAF"):
        for label, emotion in enumerate(tess_names):
            for word in ("back", "bar"):
                name = f"{speaker}_{word}_{emotion}.flac"
                write(root / "TESS" / f"{speaker}_{emotion}" / name, clip(label), rate)
    for sex in "MF":
        for speaker in range(1, speakers_per_sex + 1):
            for label, (folder, letter) in urdu.items():
                name = f"S{sex}{speaker}_F1_{letter}{speaker:02d}.flac"
                write(root / "URDU" / folder / name, clip(label), rate)
    nemo = {0: "anger", 2: "fear", 3: "happiness", 4: "neutral", 5: "sadness", 1: "surprised"}
    table = ["file_id\temotion\traw_text\tnormalized_text\tspeaker_id\tgender\tage"]
    for sex, gender in (("M", "male"), ("F", "female")):
        for speaker in range(1, speakers_per_sex + 1):
            for label, emotion in nemo.items():
                name = f"{sex}{speaker}0_{emotion}_{speaker}.wav"
                audio = tone(CLASS_PITCH_HZ[label], seconds, 24000, rng)
                write(root / "nEMO" / "samples" / name, audio, 24000)
                table.append(f"{name}\t{emotion}\tTak.\ttak\t    {sex}{speaker}0\t{gender}\t30")
    (root / "nEMO" / "data.tsv").write_text("\n".join(table) + "\n", encoding="utf-8")
    return root
