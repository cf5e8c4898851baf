"""The model card says what the run did, from the run's own config."""

import json

from scripts.model_card import (
    _cross_validation,
    _device_augmentations,
    _left_out,
    _worker_augmentations,
    card,
)
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


def write_summary(folder, common: list[str], runs: list[tuple[str, float]]) -> None:
    """A summary.py summary.json with only what the card reads."""
    folder.mkdir(parents=True)
    figures = ("accuracy", "ua", "macro_f1")
    rows = [{"run": str(i), "varies": varies, **{f"test_{n}": acc for n in figures}}
            for i, (varies, acc) in enumerate(runs)]  # fmt: skip
    spread = {f"test_{n}": {"mean": 0.5, "sd": 0.1} for n in figures}
    summary = {"runs": len(rows), "common_overrides": common, "per_run": rows, **spread}
    (folder / "summary.json").write_text(json.dumps(summary))


def test_card_groups_left_out_runs_by_corpus_and_keeps_them_out_of_the_spread(tmp_path):
    """A leave-one-corpus-out summary mixes corpora: its mean is no spread of anything. The card
    gives each left-out corpus its runs (seeds) and their mean ± sd instead."""
    cv = tmp_path / "cv"
    write_summary(cv / "kfold", ["split=kfold"], [("split.fold=0", 0.6), ("split.fold=1", 0.7)])
    common = ["split=leave_corpus_out"]
    write_summary(cv / "xcorpus_a", common, [("split.held_out=cremad", 0.30),
                                             ("split.held_out=ravdess", 0.45)])  # fmt: skip
    write_summary(cv / "xcorpus_b", [*common, "seed=43", "split.held_out=cremad"], [("", 0.34)])
    spread = "\n".join(_cross_validation(tmp_path))
    assert "kfold" in spread and "xcorpus" not in spread
    left_out = "\n".join(_left_out(tmp_path))
    assert "| cremad | 2 | 0.300 (seed 42), 0.340 (seed 43) | **0.320 ± 0.028** |" in left_out
    assert "| ravdess | 1 | 0.450 (seed 42) | **0.450** |" in left_out
    assert _left_out(tmp_path / "none") == []


def test_card_reports_the_left_out_corpus_apart_from_one_every_run_tests_unseen(tmp_path):
    """A run that leaves CREMA-D out and also tests URDU (`data.test_only`) pools both in its
    test accuracy; the card gives each corpus its own figures, over the classes it has, and
    recall per class."""
    folder = tmp_path / "cv" / "xcorpus_seed1"
    write_summary(folder, ["seed=1", "split=leave_corpus_out", "split.held_out=cremad"],
                  [("", 0.50)])  # fmt: skip
    confusion = {
        "test/cremad": [[3, 1, 0], [0, 4, 0], [2, 2, 0]],  # recall 0.75, 1.0, 0.0
        "test/urdu": [[5, 0, 0], [0, 5, 0], [0, 0, 0]],  # no clip of the third class
    }
    # as logged in training: UA and F1 over all three classes; the card's are over those it has
    figures = {"cremad": (0.583, 0.583, 0.465), "urdu": (1.0, 0.667, 0.667)}
    test = {f"test/{c}/{k}": v for c, f in figures.items()
            for k, v in zip(("acc", "ua", "f1"), f, strict=True)}  # fmt: skip
    record = {"class_names": ["angry", "happy", "sad"], "test": {"test/acc": 0.50, **test},
              "confusion": {**confusion, "test": [[8, 1, 0], [0, 9, 0], [2, 2, 0]]}}  # fmt: skip
    (folder / "runs" / "0").mkdir(parents=True)
    (folder / "runs" / "0" / "metrics.json").write_text(json.dumps(record))
    left_out = "\n".join(_left_out(tmp_path))
    assert "| cremad | 1 | 0.583 (seed 1) | **0.583** | 0.583 | 0.465 " in left_out
    assert "| angry 0.75, happy 1.00, **sad 0.00** |" in left_out
    assert "| urdu (never trained on) | 1 | 1.000 (seed 1) | **1.000** | 1.000 | 1.000 " in left_out
    assert "angry 1.00, happy 1.00 |" in left_out


def test_a_card_lists_only_its_own_release_files(tmp_path):
    """ser-small-multi's card listed ser-small-multi-v2.onnx, a file of another release."""
    text = card(compose_config("model_card", tmp_path, ["release=ser-small-multi"]))
    assert "ser-small-multi.onnx" in text and "ser-small-multi-v2.onnx" not in text
