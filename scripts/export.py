"""Export a checkpoint's classifier to ONNX (dynamic batch) for `inference.py engine=onnx`.

python scripts/export.py ckpt=FILE [onnx=OUT.onnx]   # default OUT: FILE with the suffix .onnx

The log-mel front end stays in torch (it is cheap and torchaudio's STFT does not export
portably); the ONNX graph takes features (batch, 1, n_mels, n_frames) and returns logits.
"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import hydra
import numpy as np
import onnx
import onnxruntime
import torch
from omegaconf import DictConfig

from speech_emotion_recognition.predictor import (
    CLASS_NAMES_KEY,
    EmotionClassifier,
    checkpoint_error,
    load_classifier,
    onnx_class_names,
)

log = logging.getLogger(__name__)

MAX_LOGIT_DIFFERENCE = 1e-3  # fp32 ONNX Runtime vs fp32 torch; more means a broken export


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
    difference = float(np.abs(actual - expected).max())
    if difference > MAX_LOGIT_DIFFERENCE:
        raise RuntimeError(f"ONNX logits differ from torch by {difference:.2e} in {path}")
    log.info("Exported %s; max |logit difference| vs torch: %.2e", path, difference)
    return name_classes(path, module.class_names)


def name_classes(path: Path, names: list[str]) -> Path:
    """The class names, in output order, as the ONNX file's metadata (`class_names`, JSON)."""
    model = onnx.load(str(path))
    onnx.helper.set_model_props(model, {CLASS_NAMES_KEY: json.dumps(names)})
    onnx.save(model, str(path))
    return path


def quantize_onnx(path: Path, out: Path) -> Path:
    """Dynamic int8 quantization of the matrix products (the Transformer's linear layers).

    Weights become int8, activations are quantized per batch at run time; the convolutions stay
    fp32. On CPUs with VNNI or AMX-INT8 the int8 products are the fast path of ONNX Runtime.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(path, out, op_types_to_quantize=["MatMul"], weight_type=QuantType.QInt8)
    log.info("Quantized %s -> %s", path, out)
    names = onnx_class_names(str(path))
    return out if names is None else name_classes(out, names)


@hydra.main(version_base="1.3", config_path="../conf", config_name="export")
def main(cfg: DictConfig) -> None:
    if error := checkpoint_error(cfg.ckpt):
        log.error(error)
        sys.exit(2)
    ckpt = Path(cfg.ckpt)
    exported = export_onnx(
        load_classifier(ckpt), Path(cfg.onnx or ckpt.with_suffix(".onnx")), cfg.opset
    )
    if cfg.int8:
        quantize_onnx(exported, exported.with_suffix(".int8.onnx"))


if __name__ == "__main__":
    main()
