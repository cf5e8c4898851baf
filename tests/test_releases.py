"""The committed releases say what their reports say, on the real test actors."""

import functools
import json

import numpy as np
import pytest
import torch

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.audio import crop_or_pad, load_audio
from speech_emotion_recognition.emotions import EMOTIONS
from speech_emotion_recognition.evaluate import evaluate
from speech_emotion_recognition.predict.predictor import (
    Predictor,
    int8_matches_fp32,
    load_classifier,
)
from tests.conftest import compose_config
from tests.test_precision import TEST_ACTORS

MODELS = PROJECT_ROOT / "models"
# Measured on an AVX2 CPU: 86, 85 and 85 of 88 labels; there engine=auto runs torch instead.
INT8 = pytest.mark.skipif(
    not int8_matches_fp32(), reason="no AVX512-VNNI: ONNX Runtime's int8 products saturate here"
)


@pytest.mark.real_data
def test_small_release_scores_what_its_report_says(tmp_path):
    reported = json.loads((PROJECT_ROOT / "reports/ser-small-ravdess/metrics.json").read_text())
    cfg = compose_config("evaluate", tmp_path, [
        f"ckpt={MODELS / 'ser-small-ravdess.safetensors'}", "precision=32",
        "noise.types=[white]", "noise.snr_db=[20,10]",  # the report's first two noise draws
        f"paths.cache_dir={PROJECT_ROOT / 'data' / 'cache'}",
        "speech.shift_seconds=0",  # its report scored each window once, as then
    ])  # fmt: skip
    measured = evaluate(cfg)
    assert measured["per_speaker"].keys() == reported["per_speaker"].keys()
    for key in ("n_clips", "accuracy", "ua", "macro_f1"):
        assert measured[key] == pytest.approx(reported[key], abs=1e-6), key
    for got, want in zip(measured["noise"], reported["noise"][:3], strict=True):
        assert (got["noise"], got["snr_db"]) == (want["noise"], want["snr_db"])
        assert got["accuracy"] == pytest.approx(want["accuracy"], abs=1e-6)


@pytest.mark.real_data
def test_default_release_scores_what_its_report_says_on_ravdess(tmp_path):
    """ser-mid-multi's report covers CREMA-D and RAVDESS test speakers; CI has RAVDESS,
    whose test actors (08, 13) the English mix shares with the RAVDESS split."""
    reported = json.loads((PROJECT_ROOT / "reports/ser-mid-multi/metrics.json").read_text())
    cfg = compose_config("evaluate", tmp_path, [
        "precision=32", "noise.types=[]", f"paths.cache_dir={PROJECT_ROOT / 'data' / 'cache'}",
    ])  # fmt: skip
    measured = evaluate(cfg)
    assert cfg.ckpt.endswith("models/ser-mid-multi.safetensors")
    assert reported["shift_seconds"] == cfg.speech.shift_seconds  # scored as users run it
    for key in ("n_clips", "accuracy", "ua", "macro_f1"):
        assert measured[key] == pytest.approx(reported["per_corpus"]["ravdess"][key], abs=1e-6)


@functools.cache
def fp32_reference(weights: str) -> tuple[list[np.ndarray], np.ndarray]:
    """The test actors' first 5 s and fp32 torch's probabilities, once per release."""
    from speech_emotion_recognition.data.corpora import ravdess

    clips = [
        c
        for c in ravdess(PROJECT_ROOT / "data" / "RAVDESS")
        if c.speaker in TEST_ACTORS and c.label in EMOTIONS  # the releases' six
    ]
    windows = [crop_or_pad(load_audio(c.path, 16000), 80000) for c in clips]
    classifier = load_classifier(MODELS / weights)
    return windows, Predictor(classifier, torch.device("cpu")).probabilities(windows, 16)


@pytest.mark.real_data
@pytest.mark.parametrize(
    ("weights", "onnx", "agreement", "tolerance"),
    [("ser-small-ravdess.safetensors", "ser-small-ravdess.onnx", 1.0, 1e-3),
     ("ser-small-multi.safetensors", "ser-small-multi.onnx", 1.0, 1e-3),
     ("ser-small-multi-v2.safetensors", "ser-small-multi-v2.onnx", 1.0, 1e-3),
     ("ser-mid-multi.safetensors", "ser-mid-multi.onnx", 1.0, 1e-3),
     # int8 weights: the same labels, close probabilities
     pytest.param("ser-full-multi.safetensors", "ser-full-multi.int8.onnx", 1.0, 0.05,
                  marks=[pytest.mark.slow, INT8]),
     # static int8 (engine=auto's CPU path): the project's rule for an engine, >= 98 % labels
     pytest.param("ser-full-multi.safetensors", "ser-full-multi.qdq.onnx", 0.98, 0.1,
                  marks=[pytest.mark.slow, INT8]),
     pytest.param("ser-mid-multi.safetensors", "ser-mid-multi.qdq.onnx", 0.98, 0.1,
                  marks=INT8)],
)  # fmt: skip
def test_committed_onnx_matches_its_weights_on_real_clips(weights, onnx, agreement, tolerance):
    windows, torch_p = fp32_reference(weights)
    classifier = load_classifier(MODELS / weights)
    cpu = torch.device("cpu")
    onnx_p = Predictor(classifier, cpu, torch.float32, str(MODELS / onnx)).probabilities(
        windows, 16
    )
    assert np.mean(torch_p.argmax(1) == onnx_p.argmax(1)) >= agreement
    assert np.abs(torch_p - onnx_p).max() <= tolerance
