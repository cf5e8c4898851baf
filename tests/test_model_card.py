"""The model card says what the run did, from the run's own config."""

from scripts.model_card import _device_augmentations, _worker_augmentations
from tests.conftest import compose_config


def test_card_lists_the_augmentations_a_run_switched_on(tmp_path):
    cfg = compose_config("train", tmp_path, ["experiment=multi_small"])
    assert _worker_augmentations(cfg) == "none"
    assert _device_augmentations(cfg) == (
        "shift (p 0.5), low_pass (p 0.3), high_pass (p 0.3), noise (p 0.5), background (p 0.5), "
        "gain (p 0.5), pitch (p 0.3); noise over the clip"
    )
    reverb = compose_config("train", tmp_path, ["experiment=ablation", "ablation=reverb"])
    assert "reverb (p 0.3)" in _device_augmentations(reverb)
    base = compose_config("train", tmp_path, ["experiment=ablation", "ablation=base"])
    assert _device_augmentations(base).endswith("; noise over the window")


def test_card_names_the_worker_augmentations_of_a_clip_by_clip_recipe(tmp_path):
    cfg = compose_config("train", tmp_path, ["experiment=ravdess_small"])
    assert _worker_augmentations(cfg) == (
        "shift, low_pass, high_pass, noise, pitch, gain; noise over the window"
    )
    assert _device_augmentations(cfg) == "none"
    default = compose_config("train", tmp_path, ["augmentation=default"])
    assert _worker_augmentations(default).endswith("; noise over the clip")
