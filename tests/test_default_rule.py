"""The default release's rule (experiments/default_rule/rule.py): the highest validation score,
unless a
release about as good loses clearly less accuracy in noise."""

from experiments.default_rule.rule import candidate, choose
from speech_emotion_recognition import PROJECT_ROOT


def row(score: float, noise_loss: float) -> dict:
    return {"score": score, "noise_loss": noise_loss}


def test_the_highest_score_is_the_default_when_none_is_more_robust():
    assert choose({"old": row(0.50, 0.15), "new": row(0.52, 0.14)}) == "new"
    assert choose({"old": row(0.52, 0.15), "new": row(0.50, 0.14)}) == "old"


def test_a_release_as_good_within_the_seed_spread_and_more_robust_in_noise_wins():
    assert choose({"old": row(0.52, 0.15), "new": row(0.51, 0.08)}) == "new"
    # too far below on the clean score, however robust
    assert choose({"old": row(0.52, 0.15), "new": row(0.49, 0.02)}) == "old"


def test_a_candidate_is_a_release_or_a_runs_weights_scored_once_or_shifted(tmp_path):
    release = PROJECT_ROOT / "models" / "ser-small-multi-v2.safetensors"
    assert candidate("ser-small-multi-v2") == ("ser-small-multi-v2", release, 0.0)
    assert candidate("ser-small-multi-v2@0.032") == ("ser-small-multi-v2@0.032", release, 0.032)
    weights = tmp_path / "run" / "model.safetensors"
    assert candidate(f"smoothing={weights}") == ("smoothing", weights, 0.0)
    assert candidate(f"smoothing={weights}@0.064") == ("smoothing@0.064", weights, 0.064)
