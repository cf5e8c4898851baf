"""Export a checkpoint's classifier to ONNX (dynamic batch) for `inference.py engine=onnx`.

python scripts/export.py ckpt=FILE [onnx=OUT.onnx]   # default OUT: FILE with the suffix .onnx
python scripts/export.py ckpt=FILE static_int8=true  # also OUT.qdq.onnx, the fastest CPU path

The log-mel front end stays in torch (it is cheap and torchaudio's STFT does not export
portably); the ONNX graph takes features (batch, 1, n_mels, n_frames) and returns logits.
"""

from __future__ import annotations

import glob
import json
import logging
import random
import sys
import tempfile
from pathlib import Path

import hydra
import numpy as np
import onnx
import onnxruntime
import torch
from omegaconf import DictConfig

from speech_emotion_recognition.audio import AudioError, load_audio
from speech_emotion_recognition.predict.predictor import (
    CLASS_NAMES_KEY,
    EmotionClassifier,
    checkpoint_error,
    load_classifier,
    onnx_class_names,
)
from speech_emotion_recognition.predict.speech import SpeechConfig, speech_windows

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


class Calibration:
    """ONNX Runtime's calibration reader: features of speech windows, a batch at a time."""

    def __init__(self, features: np.ndarray, batch_size: int = 8) -> None:
        self.batches = iter(
            [
                {"features": features[i : i + batch_size]}
                for i in range(0, len(features), batch_size)
            ]
        )

    def get_next(self) -> dict | None:
        return next(self.batches, None)


def calibration_features(
    module: EmotionClassifier, paths: list[str], speech: SpeechConfig
) -> np.ndarray:
    """Log-mel features of the speech windows of `paths`, as inference.py would cut them."""
    windows = []
    for path in paths:
        try:
            found, _ = speech_windows(
                load_audio(path, module.sample_rate), module.sample_rate, speech
            )
        except AudioError as error:
            log.warning("calibration skips %s: %s", path, error)
            continue
        windows.extend(found)
    with torch.inference_mode():
        return module.features(torch.from_numpy(np.stack(windows))).numpy()


def quantize_static_onnx(path: Path, out: Path, features: np.ndarray) -> Path:
    """Static int8 for the CNN, dynamic int8 for the Transformer's matrix products.

    The convolutions (with their ReLU and max-pooling) get int8 weights per channel and int8
    activations whose ranges come from `features` (QDQ, calibrated), so ONNX Runtime runs them
    as int8 convolutions end to end; the linear layers then get dynamic int8 as in
    `quantize_onnx`. Attention's own products stay fp32.
    """
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory() as folder:
        prepared, convolutions = Path(folder) / "prepared.onnx", Path(folder) / "cnn.onnx"
        quant_pre_process(str(path), str(prepared), skip_symbolic_shape=True)  # folds BatchNorm
        quantize_static(
            str(prepared),
            str(convolutions),
            Calibration(features),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv", "Relu", "MaxPool"],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )
        quantize_onnx(convolutions, out)
    names = onnx_class_names(str(path))
    log.info("Static int8 (calibrated on %d windows): %s", len(features), out)
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
    if cfg.static_int8:
        paths = sorted(glob.glob(cfg.calibration.files))
        if not paths:
            log.error("No calibration audio matches %s", cfg.calibration.files)
            sys.exit(2)
        chosen = random.Random(cfg.calibration.seed).sample(
            paths, min(cfg.calibration.clips, len(paths))
        )
        classifier = load_classifier(ckpt)
        features = calibration_features(classifier, chosen, SpeechConfig(**cfg.speech))
        quantize_static_onnx(exported, exported.with_suffix(".qdq.onnx"), features)


if __name__ == "__main__":
    main()
