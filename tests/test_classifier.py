import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from speech_emotion_recognition.network import CNNTransformer
from tests.conftest import CONFIG_DIR


def model_net(name: str) -> tuple[dict, dict]:
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name="train", overrides=[f"model={name}"])
    GlobalHydra.instance().clear()
    return dict(cfg.model.features), dict(cfg.model.net)


def build(name: str) -> tuple[CNNTransformer, dict]:
    features, net = model_net(name)
    model = CNNTransformer(
        n_mels=features["n_mels"], n_frames=features["n_frames"], n_classes=6, **net
    )
    return model.eval(), features


def test_full_cnn_turns_the_spectrogram_into_256_steps_of_512():
    model, features = build("default")
    assert (features["n_mels"], features["n_frames"]) == (256, 1024)
    with torch.inference_mode():
        maps = model.cnn(torch.randn(1, 1, 256, 1024))
    assert maps.shape == (1, 512, 1, 256)


def test_full_model_returns_logits_for_six_classes():
    model, _ = build("default")
    with torch.inference_mode():
        logits = model(torch.randn(2, 1, 256, 1024))
    assert logits.shape == (2, 6)


def test_full_model_parameter_count_matches_the_specification():
    model, _ = build("default")
    # conv weights (no bias, BatchNorm follows) + BatchNorm scale and shift
    cnn = sum(
        i * o * k * k + 2 * o
        for i, o, k in [(1, 32, 7), (32, 64, 3), (64, 128, 3), (128, 256, 3), (256, 512, 3)]
    )
    d, ff = 512, 1024
    layer = (3 * d * d + 3 * d) + (d * d + d) + (d * ff + ff) + (ff * d + d) + 2 * 2 * d
    head = d * 6 + 6
    assert cnn == 1_570_272
    assert sum(p.numel() for p in model.parameters()) == cnn + 6 * layer + head == 14_190_054
    assert len(model.encoder.layers) == 6
    assert model.encoder.layers[0].self_attn.num_heads == 4


def test_model_sizes_are_the_specified_ones():
    """363,766 parameters for model=small (the CPU release), 2,503,414 for model=mid,
    14,190,054 for the specification; each turns its own spectrogram into six logits."""
    for name, expected in (("small", 363_766), ("mid", 2_503_414), ("default", 14_190_054)):
        model, features = build(name)
        assert sum(p.numel() for p in model.parameters()) == expected, name
        with torch.inference_mode():
            logits = model(torch.randn(2, 1, features["n_mels"], features["n_frames"]))
        assert logits.shape == (2, 6), name


def test_pools_that_do_not_fold_the_mel_axis_are_rejected():
    _, net = model_net("small")
    net["pools"] = [[2, 2], [2, 2], [2, 1], [2, 1]]
    with pytest.raises(ValueError, match="exactly 1 mel row"):
        CNNTransformer(n_mels=64, n_frames=128, n_classes=6, **net)


def test_blurpool_keeps_sizes_and_moves_less_than_a_strided_max_under_a_one_frame_shift():
    """#42's lever 5: anti-aliased pooling, so that one pass needs no shifted copies."""
    from torch import nn

    from speech_emotion_recognition.network import BlurPool

    x = torch.randn(8, 4, 4, 66, generator=torch.Generator().manual_seed(0))
    change = {}
    for name, pool in (("max", nn.MaxPool2d((2, 2))), ("blur", BlurPool(4, (2, 2)))):
        now, moved = pool(x[..., 1:65]), pool(x[..., :64])
        assert now.shape == (8, 4, 2, 32)
        change[name] = (now - moved).abs().mean() / now.abs().mean()
    assert change["blur"] < 0.8 * change["max"]
