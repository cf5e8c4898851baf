"""Compose the real Hydra config with tiny overrides: CPU, CSV logger, temp output dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

from speech_emotion_recognition import PROJECT_ROOT
from tests.audio import folder_corpus

CONFIG_DIR = str(PROJECT_ROOT / "conf")
FAST = [
    "model=small",
    "trainer=cpu",
    "augmentation=default",  # batch needs the NOISE corpus; tests/test_batch_augment.py has it
    "logger=csv",
    "trainer.max_epochs=1",
    "trainer.enable_progress_bar=false",
    "data.num_workers=0",
    "~callbacks.model_summary",
]


def compose_config(name: str, output_dir: Path, overrides: list[str]) -> DictConfig:
    """A config as the CLI would build it, with the Hydra run folder set to output_dir."""
    GlobalHydra.instance().clear()
    with initialize_config_dir(config_dir=CONFIG_DIR, version_base="1.3"):
        cfg = compose(config_name=name, return_hydra_config=True, overrides=overrides)
    GlobalHydra.instance().clear()
    with open_dict(cfg):
        cfg.hydra.runtime.output_dir = str(output_dir)
        cfg.hydra.job.num = 0
    HydraConfig.instance().set_config(cfg)
    return cfg


def compose_train(output_dir: Path, cache_dir: Path, *overrides: str) -> DictConfig:
    return compose_config("train", output_dir, [*FAST, f"paths.cache_dir={cache_dir}", *overrides])


@pytest.fixture
def make_cfg(tmp_path: Path) -> Callable[..., DictConfig]:
    """`make_cfg(*overrides)` -> the train config writing into tmp_path/run."""

    def make(*overrides: str, output_dir: Path | None = None) -> DictConfig:
        return compose_train(output_dir or tmp_path / "run", tmp_path / "cache", *overrides)

    return make


# The emotions of the separable corpus, and the label set its models are trained on.
SEPARABLE = ("angry", "happy", "sad")
SEPARABLE_LABELS = f"labels.names=[{','.join(SEPARABLE)}]"


@pytest.fixture(scope="session")
def separable_corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three emotions told apart by pitch, 10 speakers each, mixed rates and channels."""
    return folder_corpus(tmp_path_factory.mktemp("corpus"), [0, 3, 5], per_speaker=4, speakers=10)


@pytest.fixture(scope="session")
def small_checkpoint(tmp_path_factory: pytest.TempPathFactory, separable_corpus: Path) -> Path:
    """A real `model=small` checkpoint: one epoch of train.py on the separable corpus."""
    from speech_emotion_recognition.train import train

    run = tmp_path_factory.mktemp("small_run")
    cfg = compose_train(
        run,
        run / "cache",
        "data=folder",
        f"data.root={separable_corpus}",
        "test=false",
        SEPARABLE_LABELS,
    )
    train(cfg)
    return run / "checkpoints" / "last.ckpt"
