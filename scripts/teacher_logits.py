"""A trained model's logits for every clip of its training split: the soft labels a smaller
model can later be distilled from (issue 22), written beside the run.

python scripts/teacher_logits.py RUN_DIR

Reads RUN_DIR/model.safetensors and RUN_DIR/splits/train.csv and writes
RUN_DIR/teacher_logits.csv: `key, label, <one logit column per class>`. Each clip is seen as
validation sees it (clean, no augmentation, its first 5 s, zero-padded), in bf16 where the
device has it, as prediction runs. `key` is the clip's path below the run's data folder
(`paths.data_dir`) without its suffix (`CREMA-D/AudioWAV/1001_DFA_ANG_XX`), so logits computed
on the GPU machine's transported copies match the original files here.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from speech_emotion_recognition.data.cache import AudioCache
from speech_emotion_recognition.data.clips import read_manifest
from speech_emotion_recognition.data.teacher import clip_keys
from speech_emotion_recognition.predictor import (
    Predictor,
    load_classifier,
    resolve_device,
    resolve_precision,
)
from speech_emotion_recognition.preprocessing import AudioError, crop_or_pad


def load(cache: AudioCache, path: str) -> np.ndarray:
    reason = cache.ensure(path)
    if reason is not None:  # the run trained on it, so it decoded then
        raise AudioError(f"{path}: {reason}")
    return cache.load(path)


def teacher_logits(run_dir: Path, batch_size: int = 64) -> Path:
    """RUN_DIR/teacher_logits.csv from the run's weights, manifest, config and audio cache."""
    device = resolve_device("auto")
    predictor = Predictor(
        load_classifier(run_dir / "model.safetensors"), device, resolve_precision("auto", device)
    )
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    length = int(config.data.max_seconds * predictor.sample_rate)
    cache = AudioCache(config.data.cache_dir, predictor.sample_rate, config.data.min_rms)
    clips = read_manifest(run_dir / "splits" / "train.csv")
    target = run_dir / "teacher_logits.csv"
    with open(target, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["key", "label", *predictor.class_names])
        keys = clip_keys([c.path for c in clips], config.paths.data_dir)
        for start in range(0, len(clips), batch_size):
            batch = clips[start : start + batch_size]
            audio = [crop_or_pad(load(cache, c.path), length) for c in batch]
            logits = predictor.logits(audio, batch_size)
            for key, clip, row in zip(keys[start : start + batch_size], batch, logits, strict=True):
                writer.writerow([key, clip.label, *(f"{v:.5f}" for v in row)])
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    args = parser.parse_args()
    print(teacher_logits(args.run_dir))


if __name__ == "__main__":
    main()
