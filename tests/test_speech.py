"""Speech, not loudness, decides what is predicted (silero-vad on real RAVDESS speech)."""

import csv
import json
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
from omegaconf import OmegaConf

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.audio import AudioError, load_audio
from speech_emotion_recognition.inference import run
from speech_emotion_recognition.noise import coloured_noise, rms
from speech_emotion_recognition.predict.speech import (
    SpeechConfig,
    normalise,
    speech_regions,
    speech_windows,
)
from tests.audio import tone
from tests.test_inference import config

RAVDESS = PROJECT_ROOT / "data" / "RAVDESS"
RELEASE = PROJECT_ROOT / "models" / "ser-mid-multi.safetensors"
SPEECH = SpeechConfig(**OmegaConf.load(PROJECT_ROOT / "conf" / "speech" / "default.yaml"))


def speech_clips(actor: str = "08", n: int = 12) -> list[np.ndarray]:
    if not RAVDESS.is_dir():
        pytest.fail(f"{RAVDESS} is missing: run `dvc pull data/RAVDESS.dvc`")
    paths = sorted((RAVDESS / f"Actor_{actor}").glob("03-01-0[1345678]-*.wav"))[:n]
    return [load_audio(str(p), 16000) for p in paths]


def predict(folder, tmp_path, **values) -> dict[str, dict]:
    out = tmp_path / f"{folder.name}.csv"
    run(config(input=str(folder), ckpt=str(RELEASE), output=str(out), speech={"vad": True},
               **values))  # fmt: skip
    with open(out, newline="") as f:
        return {r["path"].rsplit("/", 1)[-1]: r for r in csv.DictReader(f)}


@pytest.mark.real_data
def test_quiet_speech_gets_the_same_label_as_the_original(tmp_path):
    levels = {"original": None, "minus60": -60.0, "minus70": -70.0, "minus85": -85.0}
    for name, dbfs in levels.items():
        for i, clip in enumerate(speech_clips()):
            scaled = clip if dbfs is None else clip * 10 ** (dbfs / 20) / rms(clip)
            (tmp_path / name).mkdir(exist_ok=True)
            sf.write(tmp_path / name / f"{i:02d}.wav", scaled, 16000, subtype="FLOAT")
    rows = {name: predict(tmp_path / name, tmp_path) for name in levels}
    for name in ("minus60", "minus70", "minus85"):
        for clip, row in rows[name].items():
            assert not row["error"], (name, clip, row["error"])
            assert row["label"] == rows["original"][clip]["label"], (name, clip)


@pytest.mark.real_data
def test_noise_silence_and_a_tone_have_no_speech(tmp_path):
    rng = np.random.default_rng(0)
    folder = tmp_path / "not_speech"
    folder.mkdir()
    for colour in ("white", "pink", "brown"):
        for seconds in (3, 30):
            noise = coloured_noise(seconds * 16000, colour, rng)
            sf.write(folder / f"{colour}{seconds}.wav", 0.1 * noise / rms(noise), 16000)
    sf.write(folder / "silence.wav", np.zeros(5 * 16000), 16000)
    sf.write(folder / "tone.wav", tone(440.0, 5.0, 16000, rng), 16000)
    rows = predict(folder, tmp_path)
    assert {name: row["error"] for name, row in rows.items()} == {
        name: "no speech detected" for name in (p.name for p in folder.iterdir())
    }


@pytest.mark.real_data
def test_faint_to_the_detector_speech_is_still_speech():
    """Every clip of the RAVDESS actors whose shouted or clipped sentences silero scores under
    its threshold in every frame (15 clips of actors 06, 18 and 20) gets speech windows."""
    refused = []
    for actor in ("06", "18", "20"):
        for path in sorted((RAVDESS / f"Actor_{actor}").glob("*.wav")):
            try:
                speech_windows(load_audio(str(path), 16000), 16000, SPEECH)
            except AudioError:
                refused.append(path.name)
    assert not refused


def loud_span(clip: np.ndarray, frame: int = 320) -> tuple[float, float]:
    """Seconds from the first to the last 20 ms frame within 30 dB of the clip's loudest one
    (RAVDESS's room noise sits about 40 dB down)."""
    frames = clip[: len(clip) // frame * frame].reshape(-1, frame)
    level = np.sqrt(np.mean(frames**2, axis=1))
    loud = np.flatnonzero(level > level.max() * 10 ** (-30 / 20))
    return loud[0] * frame / 16000, (loud[-1] + 1) * frame / 16000


@pytest.mark.real_data
def test_segments_follow_the_speech_of_a_long_recording(tmp_path):
    first, second = speech_clips(n=2)
    recording = 0.0005 * np.random.default_rng(1).standard_normal(60 * 16000)
    places = {10.0: first, 40.0: second}
    for start, clip in places.items():
        recording[int(start * 16000) : int(start * 16000) + len(clip)] += clip
    (tmp_path / "long").mkdir()
    sf.write(tmp_path / "long" / "talk.wav", recording.astype(np.float32), 16000)
    speech = [(start + on, start + off) for start, clip in places.items()
              for on, off in [loud_span(clip)]]  # fmt: skip
    out = tmp_path / "talk.csv"
    timeline = tmp_path / "talk.png"
    run(config(input=str(tmp_path / "long"), ckpt=str(RELEASE), output=str(out), segments=True,
               timeline=str(timeline), speech={"vad": True}))  # fmt: skip
    with open(tmp_path / "talk.segments.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    segments = [(float(r["start"]), float(r["end"])) for r in rows]
    # the file's probabilities are its segments' mean, weighted by the speech each holds
    with open(out, newline="") as f:
        (file_row,) = csv.DictReader(f)
    weights = np.array([end - start for start, end in segments])
    for emotion in ("angry", "disgust", "fear", "happy", "neutral", "sad"):
        values = np.array([float(r[emotion]) for r in rows])
        expected = float(values @ weights / weights.sum())
        assert float(file_row[emotion]) == pytest.approx(expected, abs=1e-3), emotion
    assert len(segments) == 2
    for (start, end), (on, off) in zip(segments, speech, strict=True):
        assert abs(start - on) <= 0.3 and abs(end - off) <= 0.3, (start, end, on, off)
    assert timeline.stat().st_size > 10_000


GATED = replace(SPEECH, gate="models/speech-gate.safetensors")
FOLD2 = PROJECT_ROOT / "data" / "NOISE" / "urbansound8k" / "fold2"


def regions(path, config: SpeechConfig) -> list:
    return speech_regions(normalise(load_audio(str(path), 16000), config), 16000, config)


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["100652-3-0-0.ogg", "118723-4-0-0.ogg", "102871-8-0-10.ogg"])
def test_the_gate_refuses_a_dog_a_drill_and_a_siren_the_second_look_takes(name):
    assert not regions(FOLD2 / name, replace(SPEECH, weak_threshold=None))  # not at 0.5
    assert regions(FOLD2 / name, SPEECH)  # today's second look takes it for speech
    assert not regions(FOLD2 / name, GATED)


@pytest.mark.real_data
def test_the_gate_keeps_the_shouts_that_silero_hears_only_at_its_weak_threshold():
    shouts = json.loads((PROJECT_ROOT / "reports/corpora/ravdess.json").read_text())
    weak_only = shouts["speech_only_at_weak_threshold"]
    assert len(weak_only) == 15
    for name in weak_only:
        assert not regions(RAVDESS / name, replace(SPEECH, weak_threshold=None)), name
        assert regions(RAVDESS / name, GATED), name


def test_the_gates_syllable_share_tells_a_four_hertz_rhythm_from_a_steady_sound():
    """Round two's modulation feature: speech's level rises and falls at the syllable rate;
    an engine's or a drill's holds still."""
    import torch

    from speech_emotion_recognition.predict.gate import syllable_shares

    t = torch.arange(400) / 100  # 4 s at the gate's 100 frames a second
    noise = torch.randn(64, 400, generator=torch.Generator().manual_seed(0))
    steady = -30 + noise
    syllables = steady + 20 * torch.sin(2 * torch.pi * 4 * t).clamp(min=0)
    assert (syllable_shares(syllables) > 0.6).all()
    assert (syllable_shares(steady) < 0.5).all()


def test_the_gates_detector_pattern_counts_onsets_and_the_longest_run():
    from speech_emotion_recognition.predict.gate import detector_pattern

    probabilities = [0.0, 0.6, 0.7, 0.2, 0.05, 0.9, 0.9, 0.9, 0.1, 0.0]  # 10 frames, 0.32 s
    mean, peak, over_weak, over, onsets, longest = detector_pattern(probabilities, 0.32).tolist()
    assert mean == pytest.approx(0.435) and peak == pytest.approx(0.9)
    assert over_weak == pytest.approx(0.7) and over == pytest.approx(0.5)
    assert onsets == pytest.approx(2 / 0.32) and longest == pytest.approx(3 * 0.032)
