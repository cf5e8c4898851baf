"""The batch augmentations (augmentation=batch): recorded noise at its SNR, coloured noise at its
SNR, the mel-axis pitch shift, the masks, and training batches only."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from speech_emotion_recognition.emotions import EMOTIONS
from speech_emotion_recognition.noise import recorded_noise
from speech_emotion_recognition.training.batch_augment import BatchAugment, FeatureAugment, mixup
from speech_emotion_recognition.training.rooms import room_bank
from tests.audio import write
from tests.conftest import compose_config

RATE = 16000
OFF = dict(shift_p=0.0, max_shift=0.5, low_pass_p=0.0, low_pass_hz=[4000.0, 8000.0],
           high_pass_p=0.0, high_pass_hz=[60.0, 800.0], filter_order=2, noise_p=0.0,
           snr_db=[5.0, 30.0], noise_decays_db=[0.0], gain_p=0.0, gain_db=[-6.0, 12.0])  # fmt: skip


@pytest.fixture
def noise_dir(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):  # hum, hiss and clatter, 3 s each
        t = np.arange(3 * RATE) / RATE
        sound = 0.3 * np.sin(2 * np.pi * (50 + 200 * i) * t) + 0.05 * rng.standard_normal(len(t))
        write(tmp_path / "NOISE" / f"sound{i}.flac", sound.astype(np.float32), RATE)
    return tmp_path / "NOISE"


def speech_batch(n: int = 8, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * RATE)) / RATE
    return torch.stack([0.2 * torch.sin(2 * torch.pi * (150 + 20 * i) * t) for i in range(n)])


def snr_db(clean: torch.Tensor, mixed: torch.Tensor) -> torch.Tensor:
    noise = mixed - clean
    return 10 * torch.log10(clean.square().mean(1) / noise.square().mean(1))


def test_recorded_noise_is_mixed_at_the_snr(noise_dir, tmp_path):
    cache = str(tmp_path / "cache")
    augment = BatchAugment(RATE, **OFF, background_p=1.0, background_snr_db=[10.0, 10.0],
                           background_dirs=[str(noise_dir)], cache_dir=cache)  # fmt: skip
    clean = speech_batch()
    mixed = augment(clean)
    assert torch.allclose(snr_db(clean, mixed), torch.full((8,), 10.0), atol=0.01)
    assert len(list((tmp_path / "cache").glob("noise-*.npy"))) == 1  # decoded once, then read


def test_coloured_noise_is_mixed_at_the_snr():
    augment = BatchAugment(RATE, **{**OFF, "noise_p": 1.0, "snr_db": [20.0, 20.0],
                                    "noise_decays_db": [0.0, -3.01, -6.02]})  # fmt: skip
    clean = speech_batch()
    assert torch.allclose(snr_db(clean, augment(clean)), torch.full((8,), 20.0), atol=0.05)


@pytest.mark.parametrize("kind", ["coloured", "recorded"])
def test_noise_over_the_clip_leaves_the_padding_silent(kind, noise_dir, tmp_path):
    """A short clip in its zero-padded window gets noise where it has audio, at the SNR over
    that stretch, as evaluate.py mixes it; the padding stays as inference pads it."""
    recorded = dict(background_p=1.0, background_snr_db=[10.0, 10.0],
                    background_dirs=[str(noise_dir)], cache_dir=str(tmp_path))  # fmt: skip
    noise = {"coloured": dict(noise_p=1.0, snr_db=[10.0, 10.0]), "recorded": recorded}[kind]
    augment = BatchAugment(RATE, **{**OFF, **noise}, noise_over="clip")
    clean = torch.cat([speech_batch(), torch.zeros(8, RATE)], dim=1)  # 1 s of audio, 1 s padding
    mixed = augment(clean)
    assert mixed[:, RATE:].abs().max() < 1e-6  # the FFT round trip's rounding, no noise
    assert torch.allclose(snr_db(clean[:, :RATE], mixed[:, :RATE]), torch.full((8,), 10.0),
                          atol=0.05)  # fmt: skip


def test_babble_mixes_other_clips_of_the_batch_never_the_clip_itself():
    """Each clip a tone of its own: the babble added to a clip holds other clips' tones at
    equal level, none of its own, at the drawn SNR."""
    torch.manual_seed(0)
    augment = BatchAugment(RATE, **OFF, babble_p=1.0, babble_snr_db=[5.0, 5.0], babble_talkers=3)
    clean = speech_batch()  # tones of 150, 170, ... 290 Hz, 1 s: 1 Hz per FFT bin
    clean[3] *= 10  # a loud talker is no louder in others' babble
    mixed = augment(clean)
    assert torch.allclose(snr_db(clean, mixed), torch.full((8,), 5.0), atol=0.01)
    tones = torch.fft.rfft(mixed - clean).abs()
    levels = tones[:, 150:300:20]  # (clip, tone): how much of each clip's tone is in its babble
    own = levels.diagonal()
    assert own.max() < 1e-3 * levels.max()
    talkers = (levels > 0.5 * levels.max(dim=1, keepdim=True).values).sum(dim=1)
    assert len(set(talkers.tolist())) == 1 and 1 <= talkers[0] <= 3  # one count per batch


def test_missing_noise_names_the_folder_and_the_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="dvc pull data/NOISE.dvc") as error:
        recorded_noise([tmp_path / "NOISE" / "urbansound8k"], RATE)
    assert str(tmp_path / "NOISE" / "urbansound8k") in str(error.value)


def peak_hz(x: torch.Tensor) -> float:
    return float(torch.fft.rfft(x).abs().argmax()) * RATE / len(x)


def test_speed_perturbation_plays_clips_faster_or_slower_at_their_length():
    t = torch.arange(RATE) / RATE
    tone = torch.sin(2 * torch.pi * 1000 * t).repeat(4, 1)
    for factor in (0.9, 1.1):
        played = BatchAugment(RATE, **OFF, speed_p=1.0, speeds=[factor])(tone)
        assert played.shape == tone.shape
        speeding = slice(0, int(RATE / factor) - 100)  # the part before any zero padding
        assert peak_hz(played[0, speeding]) == pytest.approx(1000 * factor, abs=3)


def test_reverb_spreads_a_click_over_the_room_at_its_loudness(tmp_path):
    cache = str(tmp_path / "cache")
    rooms = room_bank(3, RATE, (0.5, 0.5), 1.0, 0, cache)
    assert np.allclose((rooms**2).sum(axis=1), 1.0, atol=1e-4)
    assert (np.abs(rooms).argmax(axis=1) == 0).all()  # each starts at its direct path
    assert np.array_equal(room_bank(3, RATE, (0.5, 0.5), 1.0, 0, cache), rooms)  # read back
    click = torch.zeros(2, RATE)
    click[:, 1000] = 1.0
    augment = BatchAugment(RATE, **OFF, reverb_p=1.0, reverb_rt60_s=[0.5, 0.5], reverb_rooms=3,
                           cache_dir=cache)  # fmt: skip
    wet = augment(click)
    assert torch.allclose(wet.square().mean(1), click.square().mean(1), rtol=1e-4)
    tail = wet[:, 1000 + RATE // 20 :].square().sum(1) / wet.square().sum(1)
    assert (tail > 0.01).all()  # energy arriving after 50 ms: the room, not the dry click
    assert len(list(Path(cache).glob("rooms-*.npy"))) == 1


def test_mixup_blends_clips_and_targets_with_the_same_weights():
    torch.manual_seed(0)
    targets = torch.eye(6)[torch.tensor([0, 1, 2, 3, 4, 5, 0, 1])]
    features = targets.view(8, 1, 6, 1).clone()  # features that record their own target
    mixed, mixed_targets = mixup(features, targets, alpha=0.4)
    assert torch.allclose(mixed.view(8, 6), mixed_targets)
    assert torch.allclose(mixed_targets.sum(1), torch.ones(8))
    assert (mixed_targets[targets.bool()] >= 0.5).all()  # each row mostly its own clip
    assert not torch.equal(mixed_targets, targets)


def test_pitch_warp_moves_energy_by_the_semitones():
    augment = FeatureAugment(64, 60.0, 8000.0, pitch_p=1.0, semitones=[12.0, 12.0])
    features = torch.zeros(1, 1, 64, 10)
    source = int((augment.centres_hz - 500).abs().argmin())
    features[..., source, :] = 1.0
    peak = int(augment(features)[0, 0, :, 0].argmax())
    assert augment.centres_hz[peak] / augment.centres_hz[source] == pytest.approx(2.0, rel=0.06)


def test_masks_zero_bands_and_spans_of_at_most_their_width():
    augment = FeatureAugment(64, 60.0, 8000.0, freq_masks=1, freq_width=8, time_masks=1,
                             time_width=20)  # fmt: skip
    masked = augment(torch.ones(16, 1, 64, 128))
    rows = (masked == 0).all(dim=3).sum(dim=(1, 2))
    assert (rows <= 8).all() and rows.sum() > 0


def test_noise_reaches_training_batches_only(noise_dir, tmp_path):
    cfg = compose_config("train", tmp_path, ["model=small", "augmentation=batch",
                         f"model.batch_augment.background_dirs=[{noise_dir}]",
                         f"model.batch_augment.cache_dir={tmp_path / 'cache'}"])  # fmt: skip
    from hydra.utils import instantiate

    module = instantiate(cfg.model, class_names=list(EMOTIONS))
    torch.manual_seed(0)
    batch = (speech_batch(4, 5.0), torch.zeros(4, dtype=torch.long))
    for training, changed in ((False, False), (True, True)):
        module._trainer = SimpleNamespace(training=training)
        waveforms = module.on_after_batch_transfer(batch, 0)[0]
        assert (not torch.equal(waveforms, batch[0])) == changed, training


def test_mixup_and_smoothing_reach_the_training_loss_only(tmp_path):
    cfg = compose_config("train", tmp_path, ["model=small", "augmentation=none",
                         "model.mixup_alpha=0.4", "model.label_smoothing=0.1"])  # fmt: skip
    from hydra.utils import instantiate

    module = instantiate(cfg.model, class_names=list(EMOTIONS))
    module.log = module.log_dict = lambda *args, **kwargs: None
    seen = []
    module.criterion.register_forward_hook(lambda _, inputs, __: seen.append(inputs[1]))
    corpus = speaker = torch.zeros(4, dtype=torch.long)  # a DataModule batch's four parts
    batch = (speech_batch(4, 1.0), torch.tensor([0, 1, 2, 3]), corpus, speaker)
    module._step(batch, "train")
    module._step(batch, "val")
    train_targets, val_targets = seen
    assert train_targets.shape == (4, 6) and torch.allclose(train_targets.sum(1), torch.ones(4))
    assert torch.equal(val_targets, batch[1])
    assert module.criterion.label_smoothing == 0.1
