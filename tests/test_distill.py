"""Distillation: a teacher's logits (experiments/recheck30/teacher_logits.py) become part of the
training
targets (data.teacher_logits, model.distill_alpha)."""

import csv
import shutil

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from safetensors import safe_open
from safetensors.torch import save_file

from experiments.recheck30.teacher_logits import teacher_logits
from speech_emotion_recognition.audio import audio_files, crop_or_pad, load_audio
from speech_emotion_recognition.data.clips import Clip, read_manifest
from speech_emotion_recognition.data.teacher import clip_keys, teacher_rows
from speech_emotion_recognition.predict.predictor import load_classifier
from speech_emotion_recognition.train import train
from speech_emotion_recognition.training.module import distillation_targets
from tests.conftest import SEPARABLE, SEPARABLE_LABELS, compose_train


def test_targets_mix_the_label_and_the_teacher_at_its_temperature():
    labels = torch.tensor([0, 2, 1])
    teacher = torch.tensor([[2.0, 0.0, 0.0], [0.0, 4.0, 0.0], [float("nan")] * 3])
    one_hot = torch.eye(3)[labels]
    assert torch.equal(distillation_targets(labels, teacher, 0.0, 2.0), one_hot)
    mixed = distillation_targets(labels, teacher, 0.25, 2.0)
    expected = 0.75 * one_hot[:2] + 0.25 * torch.softmax(teacher[:2] / 2.0, dim=-1)
    assert torch.allclose(mixed[:2], expected)
    assert torch.equal(mixed[2], one_hot[2])  # no logits for this clip: its label alone
    assert torch.allclose(mixed.sum(dim=-1), torch.ones(3))


def write_teacher(path, rows: dict[str, list[float]], names=("angry", "happy", "sad")) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["key", "label", *names])
        writer.writerows([key, "x", *logits] for key, logits in rows.items())


def test_teacher_rows_follow_the_clips_and_the_class_order(tmp_path):
    data = tmp_path / "data"
    clips = [Clip(str(data / "A" / f"{name}.wav"), "sad", "s", "c") for name in ("one", "two")]
    write_teacher(tmp_path / "t.csv", {"A/one": [1.0, 2.0, 3.0]}, names=("sad", "angry", "happy"))
    rows = teacher_rows(tmp_path / "t.csv", data, clips, ["angry", "happy", "sad"])
    assert rows[0].tolist() == [2.0, 3.0, 1.0]
    assert np.isnan(rows[1]).all()  # the teacher never saw it
    assert clip_keys([data / "A" / "one.ogg"], data) == ["A/one"]
    with pytest.raises(ValueError, match="no logits for neutral"):
        teacher_rows(tmp_path / "t.csv", data, clips, ["angry", "neutral"])


def test_keys_follow_a_corpus_folder_linked_from_elsewhere(tmp_path):
    """Manifests hold resolved paths; a corpus linked into data/ keeps its key there."""
    (tmp_path / "disk" / "CREMA-D").mkdir(parents=True)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "CREMA-D").symlink_to(tmp_path / "disk" / "CREMA-D")
    clip = tmp_path / "disk" / "CREMA-D" / "1001_DFA_ANG_XX.wav"
    assert clip_keys([clip], tmp_path / "data") == ["CREMA-D/1001_DFA_ANG_XX"]
    with pytest.raises(ValueError, match="data.teacher_root"):
        clip_keys([tmp_path / "elsewhere.wav"], tmp_path / "data")


@pytest.mark.slow
def test_the_student_learns_what_the_teacher_says(make_cfg, separable_corpus, tmp_path):
    """A teacher that calls every clip `sad`, at full weight: the student ends up saying `sad`
    where the labels alone teach it the three classes (test_train, >= 0.6 accuracy)."""
    keys = clip_keys(audio_files(separable_corpus), separable_corpus)
    write_teacher(tmp_path / "teacher.csv", {key: [0.0, 0.0, 8.0] for key in keys})
    cfg = make_cfg(
        "data=folder",
        f"data.root={separable_corpus}",
        "data.batch_size=16",
        SEPARABLE_LABELS,
        "trainer.max_epochs=4",
        f"data.teacher_logits={tmp_path / 'teacher.csv'}",
        f"data.teacher_root={separable_corpus}",
        "model.distill_alpha=1.0",
        "model.distill_temperature=1.0",
    )
    train(cfg)
    run = tmp_path / "run"
    model = load_classifier(run / "model.safetensors")
    clips = read_manifest(run / "splits" / "val.csv")
    audio = [crop_or_pad(load_audio(c.path, 16000), 5 * 16000) for c in clips]
    with torch.no_grad():
        said = model(torch.from_numpy(np.stack(audio))).argmax(dim=-1)
    assert {c.label for c in clips} == set(SEPARABLE)
    assert (said == SEPARABLE.index("sad")).float().mean() >= 0.9


@pytest.mark.slow
def test_an_ensemble_teacher_gives_the_mean_of_its_models_logits(
    small_checkpoint, separable_corpus, tmp_path
):
    """Two models that differ only by +4 on the first class's output bias: the ensemble's logits
    are the first model's plus 2 there, and the same elsewhere."""
    trained = small_checkpoint.parent.parent
    run = tmp_path / "run"
    shutil.copytree(trained / "splits", run / "splits")
    shutil.copy(trained / "model.safetensors", run / "model.safetensors")
    cfg = compose_train(run, trained / "cache", "data=folder", f"data.root={separable_corpus}",
                        f"paths.data_dir={separable_corpus}", SEPARABLE_LABELS)  # fmt: skip
    (run / ".hydra").mkdir()
    OmegaConf.save(cfg, run / ".hydra" / "config.yaml", resolve=True)
    shifted = tmp_path / "shifted.safetensors"
    with safe_open(run / "model.safetensors", "pt") as f:
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (not a dict)
        metadata = f.metadata()
    tensors["net.head.bias"][0] += 4.0
    save_file(tensors, shifted, metadata=metadata)

    def read(path):
        with open(path) as f:
            rows = list(csv.DictReader(f))
        return {r["key"]: np.array([float(r[c]) for c in SEPARABLE]) for r in rows}

    one = read(teacher_logits(run))
    mean = read(teacher_logits(run, [run / "model.safetensors", shifted], tmp_path / "mean.csv"))
    assert (
        len(one) == len(read_manifest(run / "splits" / "train.csv")) and one.keys() == mean.keys()
    )
    for key, row in one.items():
        np.testing.assert_allclose(mean[key] - row, [2.0, 0.0, 0.0], atol=0.1)  # bf16 outputs
