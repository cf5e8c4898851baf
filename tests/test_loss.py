import pytest
import torch
import torch.nn.functional as F

from speech_emotion_recognition.losses import FocalLoss, inverse_frequency_weights


@pytest.fixture
def batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return torch.randn(16, 6, generator=generator) * 3, torch.randint(6, (16,), generator=generator)


def test_gamma_zero_is_cross_entropy(batch):
    logits, target = batch
    assert torch.allclose(FocalLoss(gamma=0.0)(logits, target), F.cross_entropy(logits, target))


def test_gamma_zero_with_weights_is_weighted_cross_entropy(batch):
    logits, target = batch
    weight = [0.5, 1.0, 2.0, 1.5, 0.25, 0.75]
    expected = F.cross_entropy(logits, target, weight=torch.tensor(weight))
    assert torch.allclose(FocalLoss(0.0, weight)(logits, target), expected)


def test_focusing_down_weights_easy_examples(batch):
    logits, target = batch
    per_example_ce = F.cross_entropy(logits, target, reduction="none")
    p_true = torch.exp(-per_example_ce)
    expected = ((1 - p_true) ** 2 * per_example_ce).mean()
    assert torch.allclose(FocalLoss(gamma=2.0)(logits, target), expected)
    assert FocalLoss(gamma=2.0)(logits, target) < F.cross_entropy(logits, target)


def test_inverse_frequency_weights():
    # counts 1, 2, 1 and an absent class: 1/n = 1, 0.5, 1 -> scaled to mean 1 over 3 classes
    weights = inverse_frequency_weights([0, 1, 1, 2], n_classes=4)
    assert weights == pytest.approx([1.2, 0.6, 1.2, 0.0])


def test_balanced_classes_get_equal_weights():
    assert inverse_frequency_weights([0, 1, 2, 0, 1, 2], 3) == pytest.approx([1.0, 1.0, 1.0])


def test_probability_targets_equal_class_targets_and_smoothing_matches_torch(batch):
    logits, target = batch
    weight = [0.5, 1.0, 2.0, 1.5, 0.25, 0.75]
    one_hot = F.one_hot(target, 6).float()
    for loss in (FocalLoss(2.0), FocalLoss(2.0, weight)):
        assert torch.allclose(loss(logits, one_hot), loss(logits, target))
    smoothed = F.cross_entropy(logits, target, label_smoothing=0.1)
    assert torch.allclose(FocalLoss(0.0, label_smoothing=0.1)(logits, target), smoothed)
    assert not torch.allclose(FocalLoss(0.0)(logits, target), smoothed)
