"""Training on real speech: RAVDESS as `dvc pull` provides it (data/RAVDESS)."""

import pytest

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.train import train

RAVDESS = PROJECT_ROOT / "data" / "RAVDESS"


@pytest.mark.slow
@pytest.mark.real_data
def test_small_model_beats_chance_on_held_out_ravdess_actors(make_cfg):
    assert RAVDESS.is_dir(), f"{RAVDESS} is missing: run `dvc pull` in {PROJECT_ROOT}"
    cfg = make_cfg(
        "data=ravdess",
        f"paths.cache_dir={PROJECT_ROOT / 'data' / 'cache'}",
        "data.num_workers=2",
        "trainer.max_epochs=6",
    )
    results = train(cfg)
    # 6 classes: chance is 1/6; two whole actors per split, 88 clips each
    assert results["val"]["val/acc"] >= 0.3
    assert results["test"]["test/acc"] > 1 / 6
