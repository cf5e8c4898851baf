"""The predictor's test-time shift (conf/speech shift_seconds): each window's probabilities are
the mean over the window as cut and moved that much earlier and later."""

import csv

import numpy as np
import pytest
import torch

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.audio import shift_windows
from speech_emotion_recognition.inference import run
from speech_emotion_recognition.predict import predictor
from speech_emotion_recognition.predict.predictor import Predictor, engine_file, load_classifier
from tests.audio import tone, write
from tests.test_inference import config

RELEASE = PROJECT_ROOT / "models" / "ser-small-multi-v2.safetensors"
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def classifier():
    return load_classifier(RELEASE)


def test_a_shift_averages_each_window_over_its_moved_copies(classifier):
    rng = np.random.default_rng(0)
    windows = np.stack([np.pad(tone(f, 2.0, 16000, rng)[:, 0], (8000, 40000)) for f in (150, 300)])
    once = Predictor(classifier, CPU).probabilities
    moved = [once(shift_windows(windows, samples), 16) for samples in (-512, 0, 512)]
    shifted = Predictor(classifier, CPU, shift_seconds=0.032).probabilities(windows, 16)
    np.testing.assert_allclose(shifted, np.mean(moved, axis=0), atol=1e-6)
    assert np.abs(moved[0] - moved[1]).max() > 1e-4  # 32 ms of shift changes what it hears


def test_inference_scores_windows_as_the_speech_config_says(tmp_path, classifier):
    rng = np.random.default_rng(1)
    path = write(tmp_path / "in" / "a.wav", tone(220, 2.0, 16000, rng), 16000)
    rows = {}
    for shift in (0.0, 0.032):
        out = tmp_path / f"{shift}.csv"
        assert run(config(input=str(path.parent), ckpt=str(RELEASE), output=str(out),
                          speech={"shift_seconds": shift})) == 0  # fmt: skip
        with open(out, newline="") as f:
            (row,) = csv.DictReader(f)
        rows[shift] = np.array([float(row[name]) for name in classifier.class_names])
    assert np.abs(rows[0.0] - rows[0.032]).max() > 1e-4


def test_one_engine_choice_for_every_entry_point(tmp_path, monkeypatch):
    """auto takes a shipped .qdq.onnx on a CPU whose int8 products match fp32 only; onnx needs
    its file and says how to make it."""
    weights = tmp_path / "release.safetensors"
    weights.touch()
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(predictor, "int8_matches_fp32", lambda: True)
    assert engine_file(weights, "auto", cpu) is None
    weights.with_suffix(".qdq.onnx").touch()
    assert engine_file(weights, "auto", cpu) == str(tmp_path / "release.qdq.onnx")
    assert engine_file(weights, "auto", cuda) is None
    monkeypatch.setattr(predictor, "int8_matches_fp32", lambda: False)
    assert engine_file(weights, "auto", cpu) is None  # AVX2: torch, even with the file shipped
    assert engine_file(weights, "torch", cpu) is None
    with pytest.raises(FileNotFoundError, match="release.onnx.*scripts/export.py"):
        engine_file(weights, "onnx", cpu)
    assert engine_file(weights, "onnx", cpu, str(weights.with_suffix(".qdq.onnx"))).endswith(
        "release.qdq.onnx"
    )
    with pytest.raises(ValueError, match="auto, torch or onnx"):
        engine_file(weights, "tensorrt", cpu)


def test_a_windows_answer_does_not_depend_on_the_windows_beside_it():
    """The default's .qdq.onnx quantises activations dynamically, one scale per run: batched,
    a quiet window's logits moved with a loud window beside it."""
    release = PROJECT_ROOT / "models" / "ser-mid-multi.safetensors"
    classifier = load_classifier(release)
    predictor = Predictor(classifier, torch.device("cpu"), onnx_path=engine_file(
        release, "onnx", torch.device("cpu"), str(release.with_suffix(".qdq.onnx"))))  # fmt: skip
    rng = np.random.default_rng(0)
    quiet = tone(220.0, 5.0, 16000, rng)[:, 0].astype(np.float32) * 0.05
    loud = rng.uniform(-1, 1, quiet.shape).astype(np.float32)
    alone = predictor.logits([quiet], 16)
    beside = predictor.logits([quiet, loud], 16)[:1]
    np.testing.assert_array_equal(alone, beside)
