import random

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.utils import instantiate

from speech_emotion_recognition.audio import AudioError, crop_or_pad, load_audio, shift_windows
from speech_emotion_recognition.features import LogMelFeatures
from speech_emotion_recognition.noise import rms
from tests.audio import tone, write
from tests.conftest import CONFIG_DIR


def config(*overrides: str):
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=list(overrides))
    GlobalHydra.instance().clear()
    return cfg


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_load_audio_downmixes_and_resamples(tmp_path, rate):
    audio = tone(220.0, 1.5, rate, np.random.default_rng(0), channels=2)
    path = write(tmp_path / "a.flac", audio, rate)
    decoded = load_audio(str(path), 16000)
    assert decoded.dtype == np.float32
    assert decoded.ndim == 1
    assert abs(len(decoded) - 24000) <= 1


def test_load_audio_rejects_non_audio(tmp_path):
    path = tmp_path / "a.wav"
    path.write_text("hello")
    with pytest.raises(AudioError, match="unreadable"):
        load_audio(str(path), 16000)


def test_crop_or_pad():
    audio = np.arange(10, dtype=np.float32)
    assert crop_or_pad(audio, 4, offset=3).tolist() == [3, 4, 5, 6]
    padded = crop_or_pad(audio, 12)
    assert padded.tolist() == [*range(10), 0, 0]


def test_shift_windows_moves_each_window_and_zero_fills():
    windows = np.arange(1, 11, dtype=np.float32).reshape(2, 5)
    assert shift_windows(windows, 2).tolist() == [[0, 0, 1, 2, 3], [0, 0, 6, 7, 8]]
    assert shift_windows(windows, -2).tolist() == [[3, 4, 5, 0, 0], [8, 9, 10, 0, 0]]
    assert shift_windows(windows, 0).tolist() == windows.tolist()


def test_augmentations_keep_shape_and_stay_finite():
    cfg = config(
        "augmentation=default",
        "augmentation.transforms.shift.p=1",
        "augmentation.transforms.pitch.p=1",
        "augmentation.transforms.gain.p=1",
        "augmentation.transforms.noise.p=1",
    )
    augment = instantiate(cfg.augmentation)
    assert [type(t).__name__ for t in augment.transforms] == [
        "Shift",
        "LowPassFilter",
        "HighPassFilter",
        "OverClip",
        "PitchShift",
        "Gain",
    ]
    random.seed(0)  # audiomentations draws from both global generators
    np.random.seed(0)  # noqa: NPY002
    audio = tone(220.0, 5.0, 16000, np.random.default_rng(0))[:, 0]
    for _ in range(20):
        out = augment(samples=audio, sample_rate=16000)
        assert out.shape == audio.shape
        assert out.dtype == np.float32
        assert np.isfinite(out).all()
        assert not np.allclose(out, audio)
        # Only gain (<= +12 dB) and noise (SNR >= 8 dB: <= +0.7 dB) add energy;
        # shift and the filters remove it, pitch shifting keeps it.
        level_db = 20 * np.log10(rms(out) / rms(audio))
        assert level_db < 12.0 + 0.7 + 0.5


@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
def test_default_noise_stays_on_the_clip_and_off_its_padding(colour):
    """augmentation=default puts its noise where the clip is, as the release's batch recipe does
    (#22): a short clip's zero padding stays silent, as inference presents it, and the SNR is
    measured over the clip, at the batch recipe's level under the speech (8-33 dB)."""
    others = ["white", "pink", "brown"]
    others.remove(colour)
    cfg = config(
        "augmentation=default",
        *[f"augmentation.transforms.{step}.p=0" for step in ("shift", "low_pass", "high_pass")],
        *[f"augmentation.transforms.{step}.p=0" for step in ("pitch", "gain")],
        "augmentation.transforms.noise.p=1",
        *[f"augmentation.transforms.noise.transforms.{other}=null" for other in others],
    )
    augment = instantiate(cfg.augmentation)
    random.seed(0)  # audiomentations draws from both global generators
    np.random.seed(0)  # noqa: NPY002
    clip = tone(220.0, 2.0, 16000, np.random.default_rng(0))[:, 0]
    window = crop_or_pad(clip, 80000, offset=0)
    window = np.roll(window, 16000)  # 1 s of padding before the clip, 2 s after it
    for _ in range(10):
        out = augment(samples=window, sample_rate=16000)
        assert out.shape == window.shape
        assert not out[:16000].any() and not out[48000:].any()
        added = out[16000:48000] - clip
        snr_db = 20 * np.log10(rms(clip) / rms(added))
        assert 8.0 - 0.5 <= snr_db <= 33.0 + 0.5


def test_augmentation_none_disables_everything():
    assert config("augmentation=none").augmentation is None


@pytest.fixture
def features() -> LogMelFeatures:
    return LogMelFeatures(**config().model.features)


def test_features_are_256_by_1024_and_standardised(features):
    waveforms = torch.from_numpy(
        np.stack([tone(f, 5.0, 16000, np.random.default_rng(1))[:, 0] for f in (150, 300)])
    )
    out = features(waveforms)
    assert out.shape == (2, 1, 256, 1024)
    assert torch.allclose(out.mean(dim=(-2, -1)), torch.zeros(2, 1), atol=1e-4)
    assert torch.allclose(out.std(dim=(-2, -1)), torch.ones(2, 1), atol=1e-3)


def test_noise_trim_zeroes_everything_near_the_floor(features):
    rng = np.random.default_rng(2)
    speech = tone(300, 2.5, 16000, rng)[:, 0]
    hiss = 1e-4 * rng.standard_normal(40000).astype(np.float32)
    waveform = torch.from_numpy(np.concatenate([speech, hiss]))[None]
    db = features.trimmed_db(waveform)
    assert db.min() == 0
    assert not ((db > 0) & (db < 7)).any()  # nothing survives within 7 dB of the floor
    frames = db.shape[-1]
    quiet_half = db[..., frames // 2 + 10 :]
    assert (quiet_half == 0).float().mean() > 0.9
    assert (db[..., : frames // 2 - 10] > 0).float().mean() > 0.2


def test_features_are_per_clip_not_per_batch(features):
    loud = torch.from_numpy(tone(200, 5.0, 16000, np.random.default_rng(3))[:, 0])
    together = features(torch.stack([loud, loud * 1e-3]))
    alone = features((loud * 1e-3)[None])
    assert torch.allclose(together[1], alone[0], atol=1e-4)


def test_features_ignore_loudness_so_loudness_normalisation_is_built_in(features):
    """The dB are taken above each clip's own floor and standardised per clip: a clip 40 dB
    quieter or 12 dB louder gives the same features (why the ablation has no loudness arm)."""
    rng = np.random.default_rng(4)
    voice = torch.from_numpy(tone(180, 3.0, 16000, rng)[:, 0])
    voice = voice + 0.01 * torch.randn(len(voice), generator=torch.Generator().manual_seed(0))
    reference = features(voice[None])
    for gain in (0.01, 4.0):
        assert torch.allclose(features((voice * gain)[None]), reference, atol=1e-3)


def test_band_norm_removes_a_constant_tilt_and_keeps_silence_at_zero():
    """Per-utterance normalisation (#42's lever 2): a per-band offset on the voiced frames, as a
    microphone or a vocal tract adds, leaves the image; silent frames stay 0."""
    from speech_emotion_recognition.features import band_normalised

    db = torch.zeros(1, 1, 8, 20)
    db[..., 5:15] = torch.rand(1, 1, 8, 10) * 30 + 10
    tilt = torch.linspace(-6, 6, 8).view(1, 1, 8, 1)
    tilted = torch.where(db > 0, db + tilt, db)
    assert torch.allclose(band_normalised(tilted), band_normalised(db), atol=1e-4)
    assert (band_normalised(db)[..., :5] == 0).all()
    band_means = band_normalised(db)[..., 5:15].mean(dim=-1)
    assert torch.allclose(band_means, torch.zeros(1, 1, 8), atol=1e-4)


def test_band_norm_brings_a_filtered_voice_closer_to_the_original():
    voice = torch.from_numpy(tone(180, 3.0, 16000, np.random.default_rng(5))[:, 0])
    # a gentle channel: pre-emphasis tilts the spectrum by about ±4 dB, the same in every frame
    muffled = torch.cat([voice[:1], voice[1:] - 0.5 * voice[:-1]])
    distance = {}
    for band_norm in (False, True):
        features = LogMelFeatures(**{**config().model.features, "band_norm": band_norm})
        distance[band_norm] = (features(voice[None]) - features(muffled[None])).abs().mean()
    assert distance[True] < 0.8 * distance[False]
