"""Label sets and fine-tuning from a release: which weights are copied, which are new, what
stays frozen, and which clips a label set keeps."""

from __future__ import annotations

import json
import logging

import hydra
import pytest
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from speech_emotion_recognition.data.clips import SPLITS, Clip, read_manifest
from speech_emotion_recognition.data.labels import select_labels
from speech_emotion_recognition.emotions import EMOTIONS
from speech_emotion_recognition.predict.predictor import HPARAMS_KEY, load_classifier
from speech_emotion_recognition.training.module import EmotionRecognitionModule
from tests.audio import named_corpora
from tests.conftest import SEPARABLE, SEPARABLE_LABELS


@pytest.fixture(scope="module")
def release(small_checkpoint, tmp_path_factory):
    """The small checkpoint (angry, happy, sad) as a release file."""
    module = EmotionRecognitionModule.load_from_checkpoint(small_checkpoint, map_location="cpu")
    return module.save_weights(tmp_path_factory.mktemp("release") / "mine.safetensors")


def test_a_label_set_keeps_its_clips_and_names_what_is_missing():
    clips = [Clip(f"/{c}/{e}.wav", e, f"{c}_1", c) for c in ("ravdess", "urdu")
             for e in (EMOTIONS if c == "ravdess" else ("angry", "sad"))]  # fmt: skip
    kept = select_labels(clips, ["angry", "sad"])
    assert {c.label for c in kept} == {"angry", "sad"} and len(kept) == 4
    with pytest.raises(ValueError) as error:
        select_labels(clips, ["angry", "calm", "boredom"])
    message = str(error.value)
    assert "calm, boredom" in message
    assert "ravdess: angry, disgust, fear, happy, neutral, sad; urdu: angry, sad" in message
    # a corpus only tested on does not provide a class for training
    with pytest.raises(ValueError, match="No training corpus has fear"):
        select_labels(clips, ["angry", "fear"], test_only=["ravdess"])
    assert len(select_labels(clips, ["angry", "fear"], ["ravdess"], require_all=False)) == 3


def test_labels_four_trains_on_four_emotions_of_every_corpus(make_cfg, tmp_path):
    root = named_corpora(tmp_path / "corpora", speakers_per_sex=3)
    cfg = make_cfg("data=multi_all", f"data.root={root}", "labels=four")
    assert list(cfg.labels.names) == ["angry", "happy", "neutral", "sad"]
    hydra.utils.instantiate(cfg.data).prepare_data()
    clips = [c for s in SPLITS for c in read_manifest(tmp_path / "run" / "splits" / f"{s}.csv")]
    assert {c.label for c in clips} == {"angry", "happy", "neutral", "sad"}
    assert {c.corpus for c in clips} == {"cremad", "ravdess", "tess", "urdu"}


def test_old_releases_without_names_load_as_the_six_emotions(tmp_path):
    fake = tmp_path / "old.safetensors"
    hparams = {"features": {"sample_rate": 16000, "n_fft": 512, "win_length": 400,
                            "hop_length": 160, "f_min": 60.0, "f_max": 8000.0, "n_mels": 64,
                            "top_db": 60.0, "trim_db": 7.0, "n_frames": 128, "eps": 1e-6},
               "net": {"channels": [16, 32, 64, 128], "kernels": [7, 3, 3, 3],
                       "pools": [[2, 2], [2, 2], [4, 1], [4, 1]], "n_heads": 4,
                       "dim_feedforward": 256, "n_layers": 2, "dropout": 0.1}}  # fmt: skip
    state = load_classifier_state(hparams)
    save_file(state, fake, metadata={HPARAMS_KEY: json.dumps(hparams)})
    assert load_classifier(fake).class_names == list(EMOTIONS)


def load_classifier_state(hparams: dict) -> dict:
    from speech_emotion_recognition.predict.predictor import EmotionClassifier

    net = EmotionClassifier(hparams["features"], hparams["net"], EMOTIONS)
    return {k: v.contiguous() for k, v in net.state_dict().items()}


def weights(path) -> dict[str, torch.Tensor]:
    return {k: v.float() for k, v in load_file(path).items() if k.startswith("net.")}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("names", "head"),
    [
        (SEPARABLE, "copied"),
        (("sad", "angry", "happy"), "reordered"),
        (("angry", "happy", "neutral", "sad"), "new"),
    ],  # fmt: skip
)
def test_init_from_copies_weights_and_a_head_only_for_the_same_classes(
    release, make_cfg, tmp_path, names, head
):
    from speech_emotion_recognition.train import train

    root = named_corpora(tmp_path / "corpora", speakers_per_sex=3)
    results = train(make_cfg(
        "data=multi_all", f"data.root={root}", f"labels.names=[{','.join(names)}]",
        f"init_from={release}", "model=default",  # the release's sizes win over model=
        "freeze.part=encoder", "freeze.epochs=1", "test=false",
    ))  # fmt: skip
    theirs, ours = weights(release), weights(tmp_path / "run" / "model.safetensors")
    with safe_open(tmp_path / "run" / "model.safetensors", "pt") as f:
        assert json.loads(f.metadata()[HPARAMS_KEY])["class_names"] == list(names)
    # one epoch with CNN and Transformer frozen: only the head has learnt
    body = [k for k in theirs if not k.startswith("net.head.")]
    assert all(torch.equal(theirs[k], ours[k]) for k in body)
    order = [SEPARABLE.index(n) for n in names if n in SEPARABLE]
    if head == "new":
        assert ours["net.head.weight"].shape == (4, theirs["net.head.weight"].shape[1])
    else:
        moved = (ours["net.head.weight"] - theirs["net.head.weight"][order]).abs().max()
        assert 0 < moved < 0.05  # started from the release's rows in this model's order
    assert results["init_from"]["classes"] == list(names)
    assert results["init_from"]["release_classes"] == list(SEPARABLE)


@pytest.mark.slow
def test_freezing_the_cnn_ends_after_its_epochs(
    release, make_cfg, separable_corpus, tmp_path, caplog
):
    from speech_emotion_recognition.train import train

    with caplog.at_level(logging.INFO, logger="speech_emotion_recognition.training.finetune"):
        train(make_cfg("data=folder", f"data.root={separable_corpus}", SEPARABLE_LABELS,
                       f"init_from={release}", "freeze.part=cnn", "freeze.epochs=1",
                       "trainer.max_epochs=2", "test=false"))  # fmt: skip
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("Epoch ")]
    assert said[0].startswith("Epoch 0: cnn frozen") and said[1].startswith("Epoch 1: nothing")
    counts = [tuple(map(int, m.split(", ")[1].split(" parameters")[0].split(" of "))) for m in said]
    assert counts[0][0] < counts[0][1] == counts[1][0]  # fewer train while frozen, all after
    theirs, ours = weights(release), weights(tmp_path / "run" / "model.safetensors")
    cnn = [k for k in theirs if k.startswith("net.cnn.") and "num_batches" not in k]
    encoder = [k for k in theirs if k.startswith("net.encoder.")]
    assert any(not torch.equal(theirs[k], ours[k]) for k in cnn)  # unfrozen in epoch 2
    assert any(not torch.equal(theirs[k], ours[k]) for k in encoder)
