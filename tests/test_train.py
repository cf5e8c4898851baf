import csv
import json
import shutil
import subprocess
import sys

import pytest
import torch

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.data.clips import read_manifest
from speech_emotion_recognition.train import instantiate_loggers, train, wandb_can_sync
from speech_emotion_recognition.training.module import EmotionRecognitionModule
from tests.audio import named_corpora
from tests.conftest import SEPARABLE_LABELS


def folder_overrides(root) -> list[str]:
    return ["data=folder", f"data.root={root}", "data.batch_size=16", SEPARABLE_LABELS]


@pytest.mark.slow
def test_small_model_learns_separable_classes(make_cfg, separable_corpus, tmp_path):
    cfg = make_cfg(*folder_overrides(separable_corpus), "trainer.max_epochs=8")
    results = train(cfg)
    run = tmp_path / "run"
    # three classes are present, so chance is 1/3
    assert results["val"]["val/acc"] >= 0.6
    assert results["test"]["test/acc"] >= 0.6
    saved = json.loads((run / "metrics.json").read_text())
    assert saved["test"]["test/f1"] == pytest.approx(results["test"]["test/f1"])
    for name in (
        "splits/train.csv",
        "splits/val.csv",
        "splits/test.csv",
        "checkpoints/last.ckpt",
        "confusion_matrix_val.png",
        "confusion_matrix_test.png",
        "model.safetensors",
        "csv/metrics.csv",
    ):
        assert (run / name).is_file(), name
    assert results["best_checkpoint"].startswith("checkpoints/")  # relative to the run
    best = EmotionRecognitionModule.load_from_checkpoint(run / results["best_checkpoint"])
    assert best.hparams.features["n_mels"] == 64
    assert torch.allclose(torch.tensor(best.hparams.class_weights[:1]), torch.tensor([1.0]))


@pytest.mark.slow
def test_resume_continues_the_same_run(make_cfg, separable_corpus, tmp_path):
    corpus = tmp_path / "corpus"
    shutil.copytree(separable_corpus, corpus)
    run = tmp_path / "first"
    train(make_cfg(*folder_overrides(corpus), "test=false", output_dir=run))
    split_before = (run / "splits" / "train.csv").read_text()
    first = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    first_seconds = json.loads((run / "metrics.json").read_text())["fit_seconds"]
    # the corpus grows between the two parts: a resumed run must keep its split
    shutil.copytree(corpus / "sad" / "spk00", corpus / "sad" / "spk99")

    resumed = make_cfg(
        *folder_overrides(corpus),
        "trainer.max_epochs=2",
        f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
        output_dir=tmp_path / "second",
    )
    results = train(resumed)
    assert results["epochs"] == 2
    assert (run / "splits" / "train.csv").read_text() == split_before
    assert not (tmp_path / "second" / "splits").exists()
    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["global_step"] == 2 * first["global_step"]
    key = next(k for k in last["callbacks"] if k.startswith("ModelCheckpoint{'monitor': 'val/f1"))
    best_before = first["callbacks"][key]["best_model_score"]
    assert last["callbacks"][key]["best_model_score"] >= best_before
    with open(run / "csv" / "metrics.csv") as f:
        epochs = {row["epoch"] for row in csv.DictReader(f) if row.get("train/loss_epoch")}
    assert epochs == {"0", "1"}  # the second epoch joins the first's rows in the same run
    # the fitting time counts both processes, the first's carried in the checkpoint
    assert results["fit_seconds"] > first_seconds
    assert results["resumed"] == {"fit_seconds": "all"}


@pytest.mark.slow
def test_last_ckpt_is_the_latest_epoch_even_when_the_score_did_not_improve(
    make_cfg, separable_corpus, tmp_path
):
    """Resuming from last.ckpt must continue where the run stopped, not go back to its best
    epoch (Lightning's save_last writes only beside a new best)."""
    cfg = make_cfg(*folder_overrides(separable_corpus), "trainer.max_epochs=3", "test=false",
                   "model.optimizer.lr=0.0")  # fmt: skip  # no learning: no later epoch is better
    train(cfg)
    last = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    assert last["epoch"] == 2
    assert len(list((tmp_path / "run" / "checkpoints").glob("*.ckpt"))) == 2  # best and last


def run_cli(args: list[str], cwd) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            sys.executable,
            "train.py" if cwd != PROJECT_ROOT else "speech_emotion_recognition/train.py",
            "augmentation=default",  # as in conftest.FAST: batch needs the NOISE corpus
            *args,
        ],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
def test_cli_from_inside_the_package(separable_corpus, tmp_path):
    out = tmp_path / "cli"
    result = run_cli(
        [
            *folder_overrides(separable_corpus),
            "model=small",
            "trainer.max_epochs=1",
            "logger=csv",
            "data.num_workers=0",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={out}",
        ],
        cwd=PROJECT_ROOT / "speech_emotion_recognition",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "test/acc" in json.loads((out / "metrics.json").read_text())["test"]


@pytest.mark.slow
def test_missing_data_stops_with_the_command_to_get_it(tmp_path):
    result = run_cli(
        [f"data.root={tmp_path / 'absent'}", "logger=csv", f"hydra.run.dir={tmp_path / 'run'}"],
        cwd=PROJECT_ROOT,
    )
    assert result.returncode != 0
    assert "absent" in result.stderr
    assert "dvc pull" in result.stderr


@pytest.mark.slow
def test_ddp_on_cpu_with_two_processes(separable_corpus, tmp_path):
    out = tmp_path / "ddp"
    result = run_cli(
        [
            *folder_overrides(separable_corpus),
            "model=small",
            "trainer=ddp_sim",
            "trainer.max_epochs=1",
            "logger=csv",
            "data.num_workers=0",
            f"paths.cache_dir={tmp_path / 'cache'}",
            f"hydra.run.dir={out}",
        ],
        cwd=PROJECT_ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "world_size=2" in result.stderr or "distributed_backend=gloo" in result.stderr
    assert (out / "metrics.json").is_file()


def test_wandb_goes_offline_without_an_api_key(make_cfg, monkeypatch, tmp_path):
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.setenv("NETRC", str(tmp_path / "no-netrc"))
    monkeypatch.setenv("HOME", str(tmp_path))
    assert not wandb_can_sync()
    cfg = make_cfg("logger=default")
    csv_logger, wandb_logger = instantiate_loggers(cfg.logger)
    assert csv_logger.save_dir == str(tmp_path / "run")
    wandb_logger.log_metrics({"val/acc": 0.5})  # starts the run: must not wait for a network
    wandb_logger.experiment.finish()
    assert list((tmp_path / "run" / "wandb").glob("offline-run-*"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "cut_short", [["++trainer.max_steps=1"], ["++trainer.limit_val_batches=0", "test=false"]]
)
def test_runs_cut_short_finish_cleanly(make_cfg, separable_corpus, tmp_path, cut_short):
    """Early stopping and checkpointing must not demand val/f1 from an epoch without validation."""
    results = train(make_cfg(*folder_overrides(separable_corpus), *cut_short))
    assert results["epochs"] <= 1
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.slow
def test_class_weights_of_the_training_split_reach_the_loss_and_the_files(make_cfg, tmp_path):
    from safetensors.torch import load_file

    from speech_emotion_recognition.data.clips import read_manifest
    from speech_emotion_recognition.losses import inverse_frequency_weights
    from speech_emotion_recognition.predict.predictor import read_file
    from tests.audio import folder_corpus

    root = folder_corpus(tmp_path / "corpus", [0, 3, 5], per_speaker=3, speakers=10)
    for extra in sorted((root / "angry").rglob("clip00.wav"))[:6]:  # unbalance: fewer angry
        extra.unlink()
    names = ["angry", "happy", "sad"]
    train(make_cfg(*folder_overrides(root), "test=false", f"labels.names=[{','.join(names)}]"))
    run = tmp_path / "run"
    labels = [names.index(c.label) for c in read_manifest(run / "splits" / "train.csv")]
    expected = torch.tensor(inverse_frequency_weights(labels, 3))
    assert len(set(expected.tolist())) > 1  # unbalanced
    module = EmotionRecognitionModule.load_from_checkpoint(run / "checkpoints" / "last.ckpt")
    assert torch.allclose(module.criterion.weight, expected.float())
    hparams, _ = read_file(run / "model.safetensors")
    assert torch.allclose(torch.tensor(hparams["class_weights"]), expected)
    assert torch.allclose(load_file(run / "model.safetensors")["criterion.weight"].float(),
                          expected.float(), atol=1e-3)  # fmt: skip


@pytest.mark.slow
def test_same_seed_gives_identical_weights(make_cfg, separable_corpus, tmp_path):
    """What `make repro` promises on one machine: the same seed trains the same bytes, with
    DataLoader workers and augmentations on; another training seed gives other weights."""
    from safetensors.torch import load_file

    def weights(seed: int, name: str) -> dict[str, torch.Tensor]:
        cfg = make_cfg(
            *folder_overrides(separable_corpus), "data.num_workers=2", "test=false",
            f"seed={seed}", "data.seed=0", output_dir=tmp_path / name,
        )  # fmt: skip
        train(cfg)
        return load_file(tmp_path / name / "model.safetensors")

    first, again, other = weights(1, "a"), weights(1, "b"), weights(2, "c")
    assert (tmp_path / "a/splits/train.csv").read_text() == (
        tmp_path / "c/splits/train.csv"
    ).read_text()
    assert first.keys() == again.keys()
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], other[k]) for k in first)


def test_missing_noise_stops_with_the_command_to_get_it(make_cfg, separable_corpus, tmp_path):
    from speech_emotion_recognition.train import train

    absent = tmp_path / "NOISE" / "fold1"
    cfg = make_cfg(*folder_overrides(separable_corpus), "augmentation=batch",
                   f"model.batch_augment.background_dirs=[{absent}]")  # fmt: skip
    with pytest.raises(Exception, match="dvc pull data/NOISE.dvc") as error:  # Hydra wraps it
        train(cfg)
    assert str(absent) in str(error.value) and "augmentation=default" in str(error.value)


def test_nemo_trains_a_few_steps_end_to_end(make_cfg, tmp_path):
    """data=nemo as a user runs it: 24 kHz files, sex from data.tsv, a run with test metrics."""
    root = named_corpora(tmp_path / "corpora", speakers_per_sex=3, seconds=0.3)
    cfg = make_cfg("data=nemo", f"data.root={root / 'nEMO' / 'samples'}", "labels=nemo",
                   "data.batch_size=8", "++trainer.max_steps=2")  # fmt: skip
    results = train(cfg)
    tested = read_manifest(tmp_path / "run" / "splits" / "test.csv")
    assert {c.corpus for c in tested} == {"nemo"} and {c.sex for c in tested} == {"F", "M"}
    assert 0.0 <= results["test"]["test/acc"] <= 1.0
    assert (tmp_path / "run" / "model.safetensors").is_file()


@pytest.mark.slow
def test_a_left_out_corpus_gets_its_own_confusion_counts(make_cfg, tmp_path):
    """Per-class recall on each left-out corpus (#42) needs that corpus's own counts, apart from
    the pooled test matrix that mixes it with URDU."""
    root = named_corpora(tmp_path / "corpora", speakers_per_sex=2, seconds=0.3)
    cfg = make_cfg("data=multi_all", f"data.root={root}", "split=leave_corpus_out",
                   "split.held_out=ravdess", "data.test_only=[urdu]", "data.batch_size=8",
                   "++trainer.max_steps=2")  # fmt: skip
    confusion = train(cfg)["confusion"]
    tested = read_manifest(tmp_path / "run" / "splits" / "test.csv")
    for corpus in ("ravdess", "urdu"):
        counts = torch.tensor(confusion[f"test/{corpus}"])
        assert counts.sum() == sum(c.corpus == corpus for c in tested)
    assert (torch.tensor(confusion["test/ravdess"]) + torch.tensor(confusion["test/urdu"])).equal(
        torch.tensor(confusion["test"])
    )
    # lever 6: the same run, offsets fitted on its validation clips, counted the same way
    from experiments.generalisation.calibrate import calibrate_run

    calibrated = calibrate_run(tmp_path / "run", tmp_path / "calibrated", tmp_path / "cache")
    for corpus in ("ravdess", "urdu"):
        counts = torch.tensor(calibrated["confusion"][f"test/{corpus}"])
        assert counts.sum() == sum(c.corpus == corpus for c in tested)
        hits = counts.diag().sum() / counts.sum()
        assert calibrated["test"][f"test/{corpus}/acc"] == pytest.approx(float(hits))
    assert len(calibrated["bias"]) == 6


def test_gradient_reversal_flips_and_scales_the_gradient_only():
    from speech_emotion_recognition.training.adversary import ramp, reverse_gradient

    x = torch.ones(3, requires_grad=True)
    y = reverse_gradient(x, 0.5)
    (2 * y).sum().backward()
    assert torch.equal(y, x) and torch.equal(x.grad, torch.full((3,), -1.0))
    assert ramp(0.0, 0.3) == 0.0 and 0.29 < ramp(1.0, 0.3) <= 0.3


@pytest.mark.slow
def test_corpus_adversary_trains_and_stays_out_of_the_release(make_cfg, tmp_path):
    """#42's lever 4: the corpus classifier learns during training (its loss is logged) and the
    release holds only what prediction loads."""
    from safetensors.torch import load_file

    from speech_emotion_recognition.predict.predictor import load_classifier

    root = named_corpora(tmp_path / "corpora", speakers_per_sex=2, seconds=0.3)
    cfg = make_cfg("data=multi_all", f"data.root={root}", "split=leave_corpus_out",
                   "split.held_out=ravdess", "data.batch_size=8", "model.adversary_weight=0.3",
                   "++trainer.max_steps=3", "trainer.log_every_n_steps=1")  # fmt: skip
    train(cfg)
    logged = next((tmp_path / "run").rglob("metrics.csv")).read_text()
    assert "train/corpus_loss" in logged.splitlines()[0]
    release = tmp_path / "run" / "model.safetensors"
    assert not [name for name in load_file(release) if name.startswith("adversary.")]
    load_classifier(release)


@pytest.mark.slow
def test_speaker_norm_removes_each_speakers_own_band_means_in_training_and_testing(
    make_cfg, tmp_path
):
    """#42's lever 2b: every speaker (the left-out corpus's too, from their own clips, without
    labels) has band means over all their clips, and a run trains and tests with them."""
    import hydra

    from speech_emotion_recognition.audio import crop_or_pad
    from speech_emotion_recognition.data.datamodule import speaker_key
    from speech_emotion_recognition.features import LogMelFeatures, voiced_band_means
    from speech_emotion_recognition.training.speakers import speaker_band_means

    root = named_corpora(tmp_path / "corpora", speakers_per_sex=2, seconds=0.3)
    overrides = ("data=multi_all", f"data.root={root}", "split=leave_corpus_out",
                 "split.held_out=ravdess", "data.batch_size=8", "model.features.band_norm=true",
                 "model.speaker_norm=true")  # fmt: skip
    cfg = make_cfg(*overrides)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")
    features = LogMelFeatures(**cfg.model.features)
    table = speaker_band_means(features, datamodule)
    speakers = datamodule.speakers()
    tested = datamodule.splits["test"]
    assert len(table) == len(speakers) and {speaker_key(c) for c in tested} <= set(speakers)
    key = speaker_key(tested[0])  # a speaker of the corpus left out
    audio = [datamodule.cache.load(c.path) for c in tested if speaker_key(c) == key]
    waveforms = torch.stack([torch.from_numpy(crop_or_pad(a, datamodule.n_samples)) for a in audio])
    means, frames = voiced_band_means(features.trimmed_db(waveforms))
    expected = (means.squeeze(1).squeeze(-1) * frames.flatten()[:, None]).sum(0) / frames.sum()
    assert torch.allclose(table[speakers.index(key)], expected, atol=1e-4)
    results = train(make_cfg(*overrides, "++trainer.max_steps=2"))
    assert 0.0 <= results["test"]["test/ravdess/acc"] <= 1.0
