"""Export a checkpoint's classifier to ONNX (dynamic batch) for `inference.py engine=onnx`.

python scripts/export.py ckpt=FILE [onnx=OUT.onnx]   # default OUT: FILE with the suffix .onnx

The log-mel front end stays in torch (it is cheap and torchaudio's STFT does not export
portably); the ONNX graph takes features (batch, 1, n_mels, n_frames) and returns logits.
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
import onnxruntime
import torch
from omegaconf import DictConfig

from speech_emotion_recognition.predictor import EmotionClassifier, load_classifier

log = logging.getLogger(__name__)


def export_onnx(module: EmotionClassifier, path: Path, opset: int) -> Path:
    features = module.hparams["features"]
    example = torch.randn(2, 1, features["n_mels"], features["n_frames"])
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.onnx.export(
        module.net.eval(),
        (example,),
        str(path),
        input_names=["features"],
        output_names=["logits"],
        dynamic_axes={"features": {0: "batch"}, "logits": {0: "batch"}},
        opset_version=opset,
        dynamo=False,
    )
    with torch.inference_mode():
        expected = module.net(example).numpy()
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (actual,) = session.run(None, {"features": example.numpy()})
    log.info(
        "Exported %s; max |logit difference| vs torch: %.2e",
        path,
        float(np.abs(actual - expected).max()),
    )
    return path


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    ckpt = Path(cfg.ckpt)
    export_onnx(
        load_classifier(ckpt),
        Path(cfg.onnx or ckpt.with_suffix(".onnx")),
        cfg.opset,
    )


if __name__ == "__main__":
    main()
