"""A trained model's logits for every clip of its training split: the soft labels a smaller
model can later be distilled from (issue 22), written beside the run.

python experiments/recheck30/teacher_logits.py RUN_DIR [--weights W [W ...]] [--out FILE]

Reads RUN_DIR/model.safetensors and RUN_DIR/splits/train.csv and writes
RUN_DIR/teacher_logits.csv: `key, label, <one logit column per class>`. With --weights the
teacher is an ensemble instead: the mean logits of those models (releases or runs trained on
RUN_DIR's split), into FILE. Each clip is seen as validation sees it (clean, no augmentation,
its first 5 s, zero-padded), in bf16 where the device has it, as prediction runs. `key` is the
clip's path below the run's data folder (`paths.data_dir`) without its suffix
(`CREMA-D/AudioWAV/1001_DFA_ANG_XX`), so logits computed on the GPU machine's transported
copies match the original files here.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
from omegaconf import OmegaConf

from speech_emotion_recognition.audio import AudioError, crop_or_pad
from speech_emotion_recognition.data.cache import AudioCache
from speech_emotion_recognition.data.clips import read_manifest
from speech_emotion_recognition.data.teacher import clip_keys
from speech_emotion_recognition.predict.predictor import (
    Predictor,
    load_classifier,
    resolve_device,
    resolve_precision,
)


def load(cache: AudioCache, path: str) -> np.ndarray:
    reason = cache.ensure(path)
    if reason is not None:  # the run trained on it, so it decoded then
        raise AudioError(f"{path}: {reason}")
    return cache.load(path)


def teacher_logits(
    run_dir: Path, weights: list[Path] | None = None, out: Path | None = None, batch_size: int = 64
) -> Path:
    """The teacher's logits for RUN_DIR's training clips, from the run's config and audio cache:
    the run's own model, or the mean over `weights`; into `out` (RUN_DIR/teacher_logits.csv)."""
    device = resolve_device("auto")
    precision = resolve_precision("auto", device)
    models = [
        Predictor(load_classifier(w), device, precision)
        for w in weights or [run_dir / "model.safetensors"]
    ]
    names = models[0].class_names
    if any(m.class_names != names for m in models):
        raise SystemExit("the teacher's models predict different classes")
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    rate = models[0].sample_rate
    length = int(config.data.max_seconds * rate)
    cache = AudioCache(config.data.cache_dir, rate, config.data.min_rms)
    clips = read_manifest(run_dir / "splits" / "train.csv")
    target = out or run_dir / "teacher_logits.csv"
    with open(target, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["key", "label", *names])
        keys = clip_keys([c.path for c in clips], config.paths.data_dir)
        for start in range(0, len(clips), batch_size):
            batch = clips[start : start + batch_size]
            audio = [crop_or_pad(load(cache, c.path), length) for c in batch]
            logits = np.mean([m.logits(audio, batch_size) for m in models], axis=0)
            for key, clip, row in zip(keys[start : start + batch_size], batch, logits, strict=True):
                writer.writerow([key, clip.label, *(f"{v:.5f}" for v in row)])
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--weights", type=Path, nargs="+", help="an ensemble's models")
    parser.add_argument("--out", type=Path, help="default: RUN_DIR/teacher_logits.csv")
    args = parser.parse_args()
    print(teacher_logits(args.run_dir, args.weights, args.out))


if __name__ == "__main__":
    main()
