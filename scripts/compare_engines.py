"""Accuracy and agreement with fp32 PyTorch of every prediction path, on held-out speakers.

python scripts/compare_engines.py ckpt=models/ser-full-multi.safetensors

Paths: torch fp32 (the reference), torch bf16, ONNX Runtime fp32 and ONNX Runtime with
dynamic int8 matrix products. An engine may become a default only where its labels agree with
fp32 PyTorch on at least 98 % of the clips.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from scripts.export import export_onnx, quantize_onnx
from speech_emotion_recognition.audio import crop_or_pad
from speech_emotion_recognition.evaluate import model_data
from speech_emotion_recognition.predict.predictor import Predictor, load_classifier


def compare(cfg: DictConfig) -> list[dict]:
    classifier = load_classifier(cfg.ckpt)
    datamodule = model_data(cfg.data, classifier, cfg.manifest_dir)
    clips = datamodule.splits[cfg.subset]
    windows = [crop_or_pad(datamodule.cache.load(c.path), datamodule.n_samples) for c in clips]
    labels = np.array([classifier.class_names.index(c.label) for c in clips])
    cpu = torch.device("cpu")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        onnx = export_onnx(classifier, Path(tmp) / "model.onnx", cfg.onnx_opset)
        int8 = quantize_onnx(onnx, Path(tmp) / "model.int8.onnx")
        paths = {
            "torch fp32": Predictor(classifier, cpu, torch.float32),
            "torch bf16": Predictor(classifier, cpu, torch.bfloat16),
            "onnx fp32": Predictor(classifier, cpu, torch.float32, str(onnx)),
            "onnx int8": Predictor(classifier, cpu, torch.float32, str(int8)),
        }
        reference = None
        for name, predictor in paths.items():
            predicted = predictor.probabilities(windows, cfg.batch_size).argmax(axis=1)
            reference = predicted if reference is None else reference
            rows.append({
                "path": name,
                "accuracy": float(np.mean(predicted == labels)),
                "agreement": float(np.mean(predicted == reference)),
            })  # fmt: skip
    return rows


@hydra.main(version_base="1.3", config_path="../conf", config_name="compare_engines")
def main(cfg: DictConfig) -> None:
    rows = compare(cfg)
    table = Table(title=f"{Path(cfg.ckpt).name}, {cfg.subset} speakers")
    for column in ("path", "accuracy", "labels agree with torch fp32"):
        table.add_column(column)
    for r in rows:
        table.add_row(r["path"], f"{r['accuracy']:.3f}", f"{100 * r['agreement']:.1f} %")
    Console().print(table)


if __name__ == "__main__":
    main()
