import numpy as np
import pytest

from speech_emotion_recognition.metrics import classification_report, confusion_scores, reliability
from speech_emotion_recognition.noise import babble, coloured_noise, mix_at_snr, rms

NAMES = ("a", "b", "c")


def one_hot(predictions, confidence=0.8):
    probabilities = np.full((len(predictions), 3), (1 - confidence) / 2)
    probabilities[np.arange(len(predictions)), predictions] = confidence
    return probabilities


def test_report_matches_hand_computed_values():
    labels = [0, 0, 0, 1, 1, 2]
    predicted = [0, 0, 1, 1, 2, 2]
    speakers = ["x", "x", "y", "y", "y", "x"]
    report = classification_report(one_hot(predicted), labels, speakers, NAMES, ece_bins=10)
    assert report["n_clips"] == 6
    assert report["accuracy"] == pytest.approx(4 / 6)
    # recall: a 2/3, b 1/2, c 1/1; precision: a 2/2, b 1/2, c 1/2
    assert report["ua"] == pytest.approx((2 / 3 + 1 / 2 + 1) / 3)
    f1 = [2 * p * r / (p + r) for p, r in ((1, 2 / 3), (1 / 2, 1 / 2), (1 / 2, 1))]
    assert report["macro_f1"] == pytest.approx(sum(f1) / 3)
    assert report["per_class"]["a"] == pytest.approx(
        {"precision": 1.0, "recall": 2 / 3, "f1": f1[0], "support": 3}
    )
    assert report["per_speaker"] == pytest.approx({"x": 1.0, "y": 1 / 3})
    # every clip has confidence 0.8 and 4 of 6 are right: |0.8 - 2/3|
    assert report["ece"] == pytest.approx(0.8 - 4 / 6, abs=1e-6)
    assert report["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]


def test_macro_averages_skip_classes_that_never_occur():
    report = classification_report(one_hot([0, 1]), [0, 1], ["s", "s"], NAMES, ece_bins=5)
    assert report["ua"] == 1.0
    assert report["macro_f1"] == 1.0


def test_macro_averages_skip_an_absent_class_even_when_it_is_predicted():
    """nEMO has no disgust: a model that says disgust for one of its clips loses that clip's
    recall, not a whole class's (UA 0.75 over the two classes the clips have, not 0.5)."""
    report = classification_report(one_hot([0, 0, 2, 1]), [0, 0, 1, 1], ["s"] * 4, NAMES, 5)
    assert report["ua"] == pytest.approx(0.75)
    assert report["macro_f1"] == pytest.approx((1 + 2 / 3) / 2)
    assert confusion_scores(report["confusion_matrix"])["ua"] == pytest.approx(0.75)


def test_reliability_bins():
    probabilities = np.array([[0.95, 0.05, 0.0], [0.55, 0.45, 0.0], [0.1, 0.85, 0.05]])
    confidence, accuracy, count = reliability(probabilities, [0, 1, 1], bins=2)
    assert count.tolist() == [0, 3]
    assert confidence[1] == pytest.approx((0.95 + 0.55 + 0.85) / 3)
    assert accuracy[1] == pytest.approx(2 / 3)


@pytest.mark.parametrize("colour", ["white", "pink", "brown"])
@pytest.mark.parametrize("snr", [20.0, 10.0, 5.0, 0.0])
def test_mixing_hits_the_requested_snr(colour, snr):
    rng = np.random.default_rng(0)
    signal = np.sin(np.linspace(0, 2000, 32000)) * 0.3
    noise = coloured_noise(len(signal), colour, rng)
    mixed = mix_at_snr(signal, noise, snr)
    measured = 20 * np.log10(rms(signal) / rms(mixed - signal))
    assert measured == pytest.approx(snr, abs=0.1)


def test_noise_colours_have_their_spectral_slope():
    rng = np.random.default_rng(1)
    for colour, expected in (("white", 0.0), ("pink", -1.0), ("brown", -2.0)):
        noise = coloured_noise(2**16, colour, rng)
        power = np.abs(np.fft.rfft(noise)) ** 2
        f = np.fft.rfftfreq(len(noise))
        band = (f > 0.001) & (f < 0.4)
        slope = np.polyfit(np.log(f[band]), np.log(power[band]), 1)[0]
        assert slope == pytest.approx(expected, abs=0.15)


def test_babble_sums_the_given_voices_at_equal_level():
    rng = np.random.default_rng(2)
    voices = [np.full(100, 1.0), np.full(50, -2.0), np.full(100, 3.0)]
    mixed = babble(100, voices, rng, talkers=3)
    assert mixed == pytest.approx(np.full(100, 1.0))  # 1 - 1 + 1 after unit-RMS scaling


def test_prior_bias_makes_a_seldom_predicted_class_as_frequent_as_its_labels():
    """#42's lever 6: a model that almost never says class 2, where a third of the clips are
    class 2, predicts it about a third of the time after the offsets."""
    import torch

    from speech_emotion_recognition.calibration import prior_bias

    generator = torch.Generator().manual_seed(0)
    labels = torch.arange(300) % 3
    logits = torch.nn.functional.one_hot(labels, 3).float() * 2 + torch.randn(
        300, 3, generator=generator
    )
    logits[:, 2] -= 3.0
    before = (logits.argmax(-1) == 2).float().mean()
    after = ((logits + prior_bias(logits, labels)).argmax(-1) == 2).float().mean()
    assert before < 0.1 and abs(after - 1 / 3) < 0.07
