"""A trained model's logits for every clip of its training split: the soft labels a smaller
model can later be distilled from (issue 22), written beside the run.

python scripts/teacher_logits.py RUN_DIR [--data-dir DIR]

Reads RUN_DIR/model.safetensors and RUN_DIR/splits/train.csv and writes
RUN_DIR/teacher_logits.csv: `key, label, <one logit column per class>`. Each clip is seen as
validation sees it (clean, no augmentation, its first 5 s, zero-padded). `key` is the clip's
path below the data folder without its suffix (`CREMA-D/AudioWAV/1001_DFA_ANG_XX`), so logits
computed on the GPU machine's transported copies match the original files here.
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import numpy as np
import torch
from omegaconf import OmegaConf

from speech_emotion_recognition.data.cache import AudioCache
from speech_emotion_recognition.data.clips import read_manifest
from speech_emotion_recognition.data.teacher import clip_key
from speech_emotion_recognition.predictor import load_classifier, resolve_device
from speech_emotion_recognition.preprocessing import AudioError, crop_or_pad


def load(cache: AudioCache, path: str) -> np.ndarray:
    reason = cache.ensure(path)
    if reason is not None:  # the run trained on it, so it decoded then
        raise AudioError(f"{path}: {reason}")
    return cache.load(path)


@torch.inference_mode()
def teacher_logits(run_dir: Path, data_dir: Path, batch_size: int = 64) -> Path:
    device = resolve_device("auto")
    model = load_classifier(run_dir / "model.safetensors").to(device)
    data = OmegaConf.load(run_dir / ".hydra" / "config.yaml").data
    length = int(data.max_seconds * model.sample_rate)
    cache = AudioCache(data.cache_dir, model.sample_rate, data.min_rms)  # the run decoded them
    clips = read_manifest(run_dir / "splits" / "train.csv")
    target = run_dir / "teacher_logits.csv"
    with open(target, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["key", "label", *model.class_names])
        for start in range(0, len(clips), batch_size):
            batch = clips[start : start + batch_size]
            audio = [crop_or_pad(load(cache, c.path), length) for c in batch]
            features = model.features(torch.from_numpy(np.stack(audio)).to(device))
            with torch.autocast(device.type, torch.bfloat16):  # as the run trained: bf16-mixed
                logits = model.net(features).float().cpu().numpy()
            for clip, row in zip(batch, logits, strict=True):
                key = clip_key(clip.path, data_dir)
                writer.writerow([key, clip.label, *(f"{v:.5f}" for v in row)])
    return target


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data-dir", type=Path, default=Path("data"))
    args = parser.parse_args()
    print(teacher_logits(args.run_dir, args.data_dir))


if __name__ == "__main__":
    main()
