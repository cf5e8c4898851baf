"""The streaming engine: a recording fed in chunks of any size gets the windows and labels of the
file, its events in order, with bounded memory; sounds that are not speech give no events."""

from __future__ import annotations

import csv
import sys
import time
from dataclasses import replace

import numpy as np
import pytest
import soundfile as sf
import torch

from scripts.recordings import ACTOR, clip
from scripts.recordings import talk as recording
from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.audio import load_audio
from speech_emotion_recognition.listen import run
from speech_emotion_recognition.noise import coloured_noise, rms
from speech_emotion_recognition.predict import stream as stream_module
from speech_emotion_recognition.predict.predictor import (
    Predictor,
    cut_windows,
    load_classifier,
    segment_rows,
)
from speech_emotion_recognition.predict.speech import normalise, speech_regions
from speech_emotion_recognition.predict.stream import SpeechStream, stream_events
from tests.audio import tone
from tests.conftest import compose_config
from tests.test_speech import RELEASE, SPEECH

RATE = 16000
TOLERANCE = 2 * 512 / RATE + 0.001  # two detector frames, and the rounding to ms


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    """fp32, each window scored as the speech config says, as listen.py and the server do."""
    return Predictor(
        load_classifier(RELEASE),
        torch.device("cpu"),
        torch.float32,
        shift_seconds=SPEECH.shift_seconds,
    )


def random_chunks(audio: np.ndarray, rng: np.random.Generator, most: int) -> list[np.ndarray]:
    cuts = np.cumsum(rng.integers(1, most, len(audio) // 2 + 2))
    return np.split(audio, cuts[cuts < len(audio)])


@pytest.mark.real_data
def test_a_recording_streamed_in_any_chunks_gets_the_files_windows(predictor):
    audio = recording()
    item = cut_windows("talk", audio, RATE, SPEECH)
    probabilities = predictor.probabilities(item.audio, 16)
    expected = segment_rows(item, probabilities, RATE, predictor.class_names)
    assert len(expected) >= 10 and any(r["end"] - r["start"] == 5.0 for r in expected)
    rng = np.random.default_rng(1)
    for most in (160, 4000, 48000):  # 10 ms, a quarter second, three seconds at most
        events = list(stream_events(predictor, SPEECH, random_chunks(audio, rng, most)))
        windows = [e for e in events if e["type"] == "window"]
        moved = 0
        for window, row in zip(windows, expected, strict=True):
            assert window["start"] == pytest.approx(row["start"], abs=TOLERANCE)
            assert window["end"] == pytest.approx(row["end"], abs=TOLERANCE)
            if (window["start"], window["end"]) != (row["start"], row["end"]):
                # A frame's shift moves the window, and the model hears it: 32 ms of shift
                # changes the label of 5 % of validation clips even with the default shift
                # (18 % scored once; reports/shift), so only a moved window's place is compared.
                moved += 1
                continue
            assert window["label"] == row["label"], (most, row["start"])
            for name in predictor.class_names:
                assert window[name] == pytest.approx(row[name], abs=0.01), (most, name)
        assert moved <= 2, most
        # each window comes after its region's start and before its end, regions in order
        starts = [i for i, e in enumerate(events) if e["type"] == "speech_start"]
        ends = [i for i, e in enumerate(events) if e["type"] == "speech_end"]
        assert len(starts) == len(ends) and starts == sorted(starts) and ends == sorted(ends)
        regions = [
            (events[a]["time"], events[b]["time"], a, b) for a, b in zip(starts, ends, strict=True)
        ]
        assert all(a < b for _, _, a, b in regions)
        for i, event in enumerate(events):
            if event["type"] == "window":
                (a, b), *_ = [(a, b) for t0, t1, a, b in regions
                              if t0 <= event["start"] < event["end"] <= t1]  # fmt: skip
                assert a < i < b
        assert [w["start"] for w in windows] == sorted(w["start"] for w in windows)


@pytest.mark.real_data
def test_a_long_stream_keeps_only_the_audio_windows_to_come_can_reach():
    audio = np.concatenate([recording(seed) for seed in range(3)])  # over two minutes
    stream = SpeechStream(SPEECH, RATE)
    kept = []
    for chunk in np.split(audio, np.arange(RATE // 4, len(audio), RATE // 4)):
        stream.feed(chunk)
        kept.append(stream.buffered_seconds)
    assert len(audio) / RATE > 120
    assert max(kept) <= 3 * SPEECH.window_seconds, max(kept)


@pytest.mark.real_data
def test_silence_noise_and_a_tone_give_no_events(predictor):
    rng = np.random.default_rng(0)
    white, pink = (coloured_noise(10 * RATE, c, rng) for c in ("white", "pink"))
    sounds = {
        "silence": np.zeros(10 * RATE, np.float32),
        "white": 0.1 * white / rms(white),
        "pink": 0.1 * pink / rms(pink),
        "tone": tone(440.0, 10.0, RATE, rng)[:, 0],
    }
    for name, audio in sounds.items():
        events = list(stream_events(predictor, SPEECH, random_chunks(audio, rng, 4000)))
        assert events == [], name


@pytest.mark.real_data
@pytest.mark.slow
def test_listen_plays_a_file_in_real_time_with_the_engines_windows(predictor, tmp_path):
    audio = recording()[: 8 * RATE]
    sf.write(tmp_path / "talk.wav", audio, RATE, subtype="FLOAT")
    out = tmp_path / "events.csv"
    cfg = compose_config("listen", tmp_path, [f"input={tmp_path / 'talk.wav'}", f"csv={out}",
                                              "realtime=true", "precision=32"])  # fmt: skip
    began = time.monotonic()
    assert run(cfg) == 0
    took = time.monotonic() - began
    assert took >= 8.0  # at the pace it was recorded
    with open(out, newline="") as f:
        rows = list(csv.DictReader(f))
    chunk = int(cfg.chunk_seconds * RATE)
    chunks = np.split(audio, range(chunk, len(audio), chunk))
    expected = list(stream_events(predictor, SPEECH, chunks))
    assert [r["type"] for r in rows] == [e["type"] for e in expected]
    windows = [(r, e) for r, e in zip(rows, expected, strict=True) if e["type"] == "window"]
    assert len(windows) >= 2
    for row, event in windows:
        assert (row["label"], float(row["start"]), float(row["end"])) == (
            event["label"], event["start"], event["end"])  # fmt: skip
        assert 0 <= float(row["latency_ms"]) < took * 1000  # measured within the run


def test_listen_without_portaudio_says_what_to_install(tmp_path, monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "sounddevice", None)  # as if PortAudio were missing
    cfg = compose_config("listen", tmp_path, ["seconds=1", f"ckpt={RELEASE}"])
    assert run(cfg) == 2
    assert "apt-get install libportaudio2" in caplog.text


GATED = replace(SPEECH, gate="models/speech-gate.safetensors", gate_reviews="all")
FOLD1 = PROJECT_ROOT / "data" / "NOISE" / "urbansound8k" / "fold1"


@pytest.mark.real_data
@pytest.mark.parametrize("name", ["102842-3-1-0.ogg", "40722-8-0-3.ogg"])  # a dog, a siren
def test_a_gate_on_every_file_refuses_in_a_stream_what_it_refuses_in_a_file(predictor, name):
    """#44: the stream hears a region as far as it has it; silero alone takes these at 0.5."""
    audio = normalise(load_audio(str(FOLD1 / name), RATE), SPEECH)
    assert speech_regions(audio, RATE, SPEECH) and not speech_regions(audio, RATE, GATED)
    rng = np.random.default_rng(0)
    assert list(stream_events(predictor, SPEECH, random_chunks(audio, rng, 4000)))
    assert list(stream_events(predictor, GATED, random_chunks(audio, rng, 4000))) == []


@pytest.mark.real_data
def test_a_long_region_keeps_only_the_audio_its_next_window_needs(predictor, monkeypatch):
    """A minute of talk without a pause is one region: its windows come as the file's do and
    the stream keeps seconds, not the region; refused by a gate, it keeps nothing of it."""
    sentences = [clip(p.name) for p in sorted(ACTOR.glob("03-01-0[1345678]-*.wav"))[:40]]
    audio = np.concatenate([s[slice(*speech_regions(s, RATE, SPEECH)[0])] for s in sentences])
    assert len(audio) / RATE > 60 and len(speech_regions(audio, RATE, SPEECH)) == 1
    chunks = np.split(audio, np.arange(RATE // 4, len(audio), RATE // 4))
    file_windows = [s.start / RATE for s in cut_windows("talk", audio, RATE, SPEECH).spans]
    monkeypatch.setattr(stream_module, "holds_speech", lambda *_: False)
    for config in (SPEECH, GATED):
        stream, kept, starts = SpeechStream(config, RATE), [], []
        for chunk in chunks:
            starts += [e.span.start / RATE for e in stream.feed(chunk) if hasattr(e, "span")]
            kept.append(stream.buffered_seconds)
        starts += [e.span.start / RATE for e in stream.finish() if hasattr(e, "span")]
        assert max(kept) <= 2 * SPEECH.window_seconds, (config.gate, max(kept))
        expected = file_windows if config.gate is None else []
        assert starts == pytest.approx(expected, abs=TOLERANCE), config.gate


@pytest.mark.real_data
def test_a_gate_on_every_file_lets_a_streamed_talk_through_unchanged(predictor):
    audio = recording()
    chunks = random_chunks(audio, np.random.default_rng(2), 4000)
    assert list(stream_events(predictor, GATED, chunks)) == list(
        stream_events(predictor, SPEECH, chunks)
    )
