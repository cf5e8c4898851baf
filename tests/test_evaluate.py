import json

import pytest
import torch

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.evaluate import evaluate
from tests.conftest import compose_config

FIGURES = (
    "confusion_matrix.png",
    "confusion_matrix_normalised.png",
    "per_class.png",
    "reliability.png",
    "noise_robustness.png",
)


@pytest.mark.slow
def test_report_end_to_end_on_a_labelled_folder(small_checkpoint, separable_corpus, tmp_path):
    out = tmp_path / "report"
    overrides = [
        f"ckpt={small_checkpoint}",
        "data=folder",
        f"data.root={separable_corpus}",
        "subset=all",
        f"paths.cache_dir={tmp_path / 'cache'}",
        "data.num_workers=0",
        "noise.snr_db=[10,0]",
    ]
    cfg = compose_config("evaluate", out, overrides)
    results = evaluate(cfg)
    saved = json.loads((out / "metrics.json").read_text())
    assert saved["n_clips"] == 120
    for key in ("accuracy", "ua", "macro_f1", "ece", "per_class", "per_speaker"):
        assert key in saved
    assert len(saved["per_speaker"]) == 10
    assert [(r["noise"], r["snr_db"]) for r in saved["noise"]] == [
        ("clean", None),
        ("white", 10),
        ("white", 0),
        ("pink", 10),
        ("pink", 0),
        ("babble", 10),
        ("babble", 0),
        ("recorded", 10),
        ("recorded", 0),
    ]
    for name in FIGURES:
        assert (out / name).stat().st_size > 1000, name
    report = (out / "report.md").read_text()
    assert f"{results['accuracy']:.3f}" in report
    assert "noise_robustness.png" in report and "UrbanSound8K fold 2" in report
    # same seed, same noise: a second run gives the same numbers
    again = evaluate(compose_config("evaluate", tmp_path / "again", overrides))
    assert again["noise"] == results["noise"]


def test_babble_never_uses_the_target_speaker(monkeypatch):
    import numpy as np

    from speech_emotion_recognition import evaluate as module
    from speech_emotion_recognition.data.clips import Clip

    seen = []

    def spy(n_samples, others, rng, talkers):
        seen.append(others)
        return np.ones(n_samples)

    monkeypatch.setattr(module, "babble", spy)
    clips = [Clip("a.wav", "angry", "alice", "t"), Clip("b.wav", "angry", "bob", "t")]
    voices = {"alice": [np.full(10, 1.0)], "bob": [np.full(10, 2.0)], "carol": [np.full(10, 3.0)]}
    audio = [np.ones(10, np.float32)] * 2
    cfg = module.DictConfig({"seed": 0, "noise": {"babble_talkers": 4}})
    module.noisy_versions(clips, audio, voices, "babble", 5.0, cfg, condition=1)
    assert sorted(v[0] for v in seen[0]) == [2.0, 3.0]  # alice hears bob and carol
    assert sorted(v[0] for v in seen[1]) == [1.0, 3.0]  # bob hears alice and carol


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    from tests.audio import named_corpora

    return named_corpora(tmp_path_factory.mktemp("named"), speakers_per_sex=4)


@pytest.mark.slow
@pytest.mark.parametrize("option", ["tess", "urdu", "multi", "multi_all", "manifest"])
def test_each_data_option_trains_and_evaluates(make_cfg, corpora, tmp_path, option):
    from speech_emotion_recognition.train import train

    roots = {"tess": corpora / "TESS", "urdu": corpora / "URDU", "multi": corpora}
    root = roots.get(option, corpora)
    if option == "manifest":
        files = sorted((corpora / "URDU").rglob("*.flac"))
        lines = ["path,label,speaker"] + [
            f"{f.relative_to(corpora)},{f.parent.name},{f.stem.split('_')[0]}" for f in files
        ]
        root = corpora / "mine.csv"
        root.write_text("\n".join(lines) + "\n")
    overrides = [f"data={option}", f"data.root={root}", "data.batch_size=8"]
    four = ["labels=four"] if option in ("urdu", "manifest") else []  # URDU's emotions
    results = train(make_cfg(*overrides, *four))
    run = tmp_path / "run"
    assert (run / "model.safetensors").is_file() and "test/acc" in results["test"]
    if option == "multi":
        assert {"val/cremad/acc", "val/ravdess/acc"} <= set(results["val"])
        assert "val/tess/acc" not in results["val"]
    if option == "multi_all":
        assert {"val/cremad/acc", "val/ravdess/acc", "val/urdu/acc"} <= set(results["val"])
        assert "val/tess/acc" not in results["val"]  # TESS trains only

    cfg = compose_config("evaluate", tmp_path / "report", [
        f"ckpt={run / 'model.safetensors'}", *overrides[:2], f"manifest_dir={run / 'splits'}",
        f"paths.cache_dir={tmp_path / 'cache'}", "data.num_workers=0", "noise.types=[white]",
        "noise.snr_db=[10]",
    ])  # fmt: skip
    report = evaluate(cfg)
    assert (
        report["n_clips"]
        == len(results and (run / "splits" / "test.csv").read_text().splitlines()) - 1
    )
    if option == "multi_all":
        assert set(report["per_corpus"]) == {"cremad", "ravdess", "urdu"}


@pytest.mark.parametrize("noise_type", ["white", "pink", "babble"])
def test_noise_is_mixed_at_the_snr_over_the_clip(noise_type):
    import numpy as np

    from speech_emotion_recognition import evaluate as module
    from speech_emotion_recognition.data.clips import Clip
    from speech_emotion_recognition.noise import rms

    rng = np.random.default_rng(0)
    speech = np.sin(np.arange(8000) / 7.0).astype(np.float32) * 0.3
    audio = [speech]
    voices = {"other": [rng.standard_normal(12000)]}
    cfg = module.DictConfig({"seed": 0, "noise": {"babble_talkers": 4}})
    clips = [Clip("a.wav", "angry", "alice", "t")]
    for snr in (20.0, 5.0, 0.0):
        (mixed,) = module.noisy_versions(clips, audio, voices, noise_type, snr, cfg, 1)
        assert len(mixed) == len(speech)
        noise = mixed - speech
        assert 20 * np.log10(rms(speech) / rms(noise)) == pytest.approx(snr, abs=0.1)


def speech_config(**values):
    """conf/speech/default.yaml, as inference and evaluation read it."""
    from omegaconf import OmegaConf

    from speech_emotion_recognition.predict.speech import SpeechConfig

    return SpeechConfig(**{**OmegaConf.load(PROJECT_ROOT / "conf/speech/default.yaml"), **values})


def test_noise_on_a_short_clip_leaves_the_window_padding_silent():
    """A 1 s clip padded to the 5 s window: noise at the SNR over the clip, none in the padding."""
    import numpy as np

    from speech_emotion_recognition import evaluate as module
    from speech_emotion_recognition.data.clips import Clip
    from speech_emotion_recognition.noise import rms
    from speech_emotion_recognition.predict.speech import speech_windows

    speech = (0.3 * np.sin(np.arange(16000) / 7.0)).astype(np.float32)
    cfg = module.DictConfig({"seed": 0, "noise": {"babble_talkers": 4}})
    (mixed,) = module.noisy_versions([Clip("a.wav", "angry", "a", "t")], [speech], {}, "white", 0.0,
                                     cfg, 1)  # fmt: skip
    assert 20 * np.log10(rms(speech) / rms(mixed - speech)) == pytest.approx(0.0, abs=0.1)
    windows, _ = speech_windows(mixed, 16000, speech_config(vad=False))
    (window,) = windows
    assert len(window) == 5 * 16000
    assert np.count_nonzero(window[16000:]) == 0
    assert np.count_nonzero(window[:16000]) > 15000


@pytest.mark.real_data
def test_white_noise_at_0_db_changes_what_the_release_predicts():
    import numpy as np

    from speech_emotion_recognition import evaluate as module
    from speech_emotion_recognition.audio import load_audio
    from speech_emotion_recognition.data.clips import Clip
    from speech_emotion_recognition.predict.predictor import (
        Predictor,
        clip_probabilities,
        load_classifier,
    )

    paths = sorted((PROJECT_ROOT / "data" / "RAVDESS" / "Actor_08").glob("*.wav"))[::6][:8]
    assert paths, "run `dvc pull data/RAVDESS.dvc`"
    audio = [load_audio(str(p), 16000) for p in paths]
    clips = [Clip(str(p), "angry", "ravdess_08", "ravdess") for p in paths]
    cfg = module.DictConfig({"seed": 0, "noise": {"babble_talkers": 4}})
    noisy = module.noisy_versions(clips, audio, {}, "white", 0.0, cfg, 1)
    predictor = Predictor(load_classifier(PROJECT_ROOT / "models/ser-small-ravdess.safetensors"),
                          torch.device("cpu"))  # fmt: skip
    speech = speech_config()
    clean, _ = clip_probabilities(predictor, audio, speech, 8)
    again, _ = clip_probabilities(predictor, audio, speech, 8)
    mixed, _ = clip_probabilities(predictor, noisy, speech, 8)
    np.testing.assert_array_equal(clean, again)
    assert np.abs(mixed - clean).max(axis=1).min() > 0.02  # every clip moves
