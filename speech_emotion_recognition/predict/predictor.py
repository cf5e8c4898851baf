"""Prediction in plain torch: load a release or checkpoint, pick device and precision, cut files
into windows over their speech (speech.py) and batch them across files.

`inference.py`, `evaluate.py` and the scripts share it. It never imports Lightning, Hydra or
W&B, so a prediction starts in about the time torch itself takes to import.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file
from torch import nn
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from speech_emotion_recognition.audio import AudioError, load_audio, shift_windows
from speech_emotion_recognition.emotions import EMOTIONS
from speech_emotion_recognition.features import LogMelFeatures
from speech_emotion_recognition.network import CNNTransformer
from speech_emotion_recognition.predict.speech import (
    Span,
    SpeechConfig,
    speech_windows,
    weighted_mean,
)

HPARAMS_KEY = "hparams"  # safetensors metadata entry holding the model and feature sizes
CLASS_NAMES_KEY = "class_names"  # ONNX metadata entry: the outputs' class names, JSON
GET_MODEL = "Train one with `python speech_emotion_recognition/train.py` or run `dvc pull`."


def checkpoint_error(path: str | Path) -> str | None:
    """None when `path` is a file, else the message every entry point prints before exiting 2."""
    path = Path(path)
    return None if path.is_file() else f"Checkpoint not found: {path.resolve()}. {GET_MODEL}"


class EmotionClassifier(nn.Module):
    """Waveforms (B, samples) -> logits: log-mel features, then the CNN + Transformer network.

    The state-dict keys (`features.*`, `net.*`) are those of the training LightningModule, so
    its checkpoints and the released safetensors load here unchanged.
    """

    def __init__(self, features: dict, net: dict, class_names: Sequence[str]) -> None:
        super().__init__()
        self.hparams = {"features": features, "net": net, "class_names": list(class_names)}
        self.class_names = list(class_names)
        self.sample_rate = features["sample_rate"]
        self.features = LogMelFeatures(**features)
        self.net = CNNTransformer(
            n_mels=features["n_mels"],
            n_frames=features["n_frames"],
            n_classes=len(class_names),
            **net,
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.net(self.features(waveforms))


def read_file(path: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(hparams, state dict) of a released .safetensors or a Lightning .ckpt, without Lightning."""
    path = Path(path)
    if path.suffix == ".safetensors":
        with safe_open(path, framework="pt") as f:
            hparams = json.loads(f.metadata()[HPARAMS_KEY])
        return hparams, load_file(path)
    checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    return checkpoint["hyper_parameters"], checkpoint["state_dict"]


def load_classifier(path: str | Path) -> EmotionClassifier:
    """The classifier of a release or checkpoint in fp32, in eval mode; sizes and class names
    come from the file (files without names predict the six emotions, in their order)."""
    hparams, state = read_file(path)
    names = hparams.get("class_names") or EMOTIONS
    classifier = EmotionClassifier(hparams["features"], hparams["net"], names)
    wanted = classifier.state_dict().keys()
    classifier.load_state_dict(
        {k: v.float() if v.is_floating_point() else v for k, v in state.items() if k in wanted}
    )
    return classifier.eval()


def onnx_class_names(model: str | Any) -> list[str] | None:
    """The class names an exported ONNX file (path or InferenceSession) carries, if any."""
    if isinstance(model, str):
        import onnxruntime

        model = onnxruntime.InferenceSession(model, providers=["CPUExecutionProvider"])
    names = model.get_modelmeta().custom_metadata_map.get(CLASS_NAMES_KEY)
    return None if names is None else json.loads(names)


def preferred_onnx(ckpt: str | Path) -> Path | None:
    """The CPU engine a release prefers, by shipping it beside its weights: `<name>.qdq.onnx`
    (scripts/export.py static_int8=true), where it is faster than torch and agrees with fp32."""
    path = Path(ckpt).with_suffix(".qdq.onnx")
    return path if path.is_file() else None


def int8_matches_fp32() -> bool:
    """Whether this CPU runs ONNX Runtime's int8 products as the releases were checked on: with
    AVX512-VNNI. On AVX2, or AVX512 without VNNI, its u8s8 kernels saturate 16-bit sums, and
    the int8 networks' labels moved on 2–3 of the 88 RAVDESS test clips (below the 98 % an
    engine must agree on)."""
    return torch.cpu._is_vnni_supported()


def engine_file(
    ckpt: str | Path, engine: str, device: torch.device, onnx: str | None = None
) -> str | None:
    """The ONNX file the network runs from, None for torch: the one choice `inference.py`, the
    server, `listen.py` and `batch_predict.py` share, so that they give the same answers.
    auto: on a CPU with int8_matches_fp32, the release's preferred file (preferred_onnx), else
    torch; onnx: `onnx`,
    or the weights' name with the suffix .onnx. Raises FileNotFoundError when that is missing."""
    if engine == "auto":
        preferred = preferred_onnx(ckpt) if device.type == "cpu" and int8_matches_fp32() else None
        return str(preferred) if preferred else None
    if engine == "torch":
        return None
    if engine != "onnx":
        raise ValueError(f"engine={engine}: choose auto, torch or onnx")
    path = Path(onnx) if onnx else Path(ckpt).with_suffix(".onnx")
    if not path.is_file():
        raise FileNotFoundError(
            f"ONNX model not found: {path}. Run `python scripts/export.py ckpt={ckpt}`"
        )
    return str(path)


def engine_name(onnx_path: str | None, precision: torch.dtype) -> str:
    """What runs the network, in words: `onnx <file name>` or `torch <precision>`."""
    if onnx_path:
        return f"onnx {Path(onnx_path).name}"
    return f"torch {str(precision).removeprefix('torch.')}"


def scoring(shift_seconds: float) -> str:
    """How a report's windows were scored (`shift_seconds` of conf/speech), in its words."""
    if not shift_seconds:
        return "each window scored once"
    return f"each window also scored {1000 * shift_seconds:g} ms earlier and later, averaged"


def resolve_device(name: str) -> torch.device:
    """auto: CUDA when available, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def native_bf16(device: torch.device) -> bool:
    """Whether bf16 matrix products run in hardware: CUDA, or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


def resolve_precision(name: str, device: torch.device) -> torch.dtype:
    """auto: bf16 where the hardware has it natively, else fp32; `32` and `bf16` force one."""
    if name == "auto":
        return torch.bfloat16 if native_bf16(device) else torch.float32
    return {"32": torch.float32, "bf16": torch.bfloat16}[str(name)]


class Predictor:
    """Features in fp32 torch, then the network in torch (fp32 or bf16) or ONNX Runtime.

    `shift_seconds` (conf/speech): each window's probabilities are the mean over the window as
    cut and moved that much earlier and later, so that where a window starts, to a detector
    frame, does not decide its label (0: the window once).
    """

    def __init__(
        self,
        classifier: EmotionClassifier,
        device: torch.device,
        precision: torch.dtype = torch.float32,
        onnx_path: str | None = None,
        shift_seconds: float = 0.0,
    ) -> None:
        self.classifier = classifier.to(device).eval()
        self.device = device
        self.precision = precision
        shift = round(shift_seconds * classifier.sample_rate)
        self.shifts = [-shift, 0, shift] if shift else [0]
        self.session = None
        self.onnx_path = onnx_path
        if onnx_path:
            import onnxruntime

            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            available = set(onnxruntime.get_available_providers())
            self.session = onnxruntime.InferenceSession(
                onnx_path, providers=[p for p in providers if p in available]
            )
            names = onnx_class_names(self.session)
            if names is not None and names != classifier.class_names:
                raise ValueError(
                    f"{onnx_path} predicts {', '.join(names)} but its release "
                    f"{', '.join(classifier.class_names)}: export it again (scripts/export.py)."
                )

    @property
    def engine(self) -> str:
        """engine_name of this predictor's network."""
        return engine_name(self.onnx_path, self.precision)

    @property
    def sample_rate(self) -> int:
        return self.classifier.sample_rate

    @property
    def class_names(self) -> list[str]:
        return self.classifier.class_names

    def probabilities(self, windows: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
        """(n, n_classes) for n equal-length windows, run `batch_size` at a time, each the mean
        over its shifted copies."""
        if len(self.shifts) > 1:  # else the windows go to the network as they are
            windows = np.stack(windows)
            windows = np.concatenate([shift_windows(windows, s) for s in self.shifts])
        logits = torch.from_numpy(self.logits(windows, batch_size))
        probabilities = torch.softmax(logits, dim=-1).reshape(len(self.shifts), -1, logits.shape[1])
        return probabilities.mean(dim=0).numpy()

    def logits(self, windows: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
        """(n, n_classes) float32 logits (a teacher's, for distillation) the same way."""
        return np.concatenate(
            [
                self._batch(np.stack(windows[i : i + batch_size]))
                for i in range(0, len(windows), batch_size)
            ]
        )

    @torch.inference_mode()
    def _batch(self, windows: np.ndarray) -> np.ndarray:
        features = self.classifier.features(torch.from_numpy(windows).to(self.device))
        if self.session is None:
            bf16 = self.precision == torch.bfloat16
            with torch.autocast(self.device.type, torch.bfloat16, enabled=bf16):
                logits = self.classifier.net(features)
        else:  # a window at a time: dynamic int8 (.int8.onnx, .qdq.onnx) quantises each run's
            # activations with one scale, which would make a window's answer depend on the
            # windows beside it in the batch (up to 0.02 in logits); this costs 0.3 of 2.6 ms
            features = features.cpu().numpy()
            rows = [self.session.run(None, {"features": f[None]})[0] for f in features]
            logits = torch.from_numpy(np.concatenate(rows))
        return logits.float().cpu().numpy()


@dataclass
class Windows:
    """One decoded file cut into model windows over its speech (`spans`, in samples)."""

    path: str
    audio: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    spans: list[Span] = field(default_factory=list)
    error: str = ""
    n_samples: int = 0  # the decoded file's length at the model's sample rate


class WindowedFiles(Dataset):
    """Decodes and finds the speech in DataLoader workers, while the model runs on earlier files."""

    def __init__(self, paths: Sequence[str], sample_rate: int, speech: SpeechConfig) -> None:
        self.paths = list(paths)
        self.sample_rate = sample_rate
        self.speech = speech

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Windows:
        path = self.paths[index]
        try:
            audio = load_audio(path, self.sample_rate)
        except AudioError as error:
            return Windows(path, error=str(error))
        return cut_windows(path, audio, self.sample_rate, self.speech)


def cut_windows(path: str, audio: np.ndarray, sample_rate: int, speech: SpeechConfig) -> Windows:
    """A decoded file cut into model windows over its speech; `error` says why there are none."""
    try:
        windows, spans = speech_windows(audio, sample_rate, speech)
    except AudioError as error:
        return Windows(path, error=str(error))
    return Windows(path, windows, spans, n_samples=len(audio))


def first_item(items: list[Windows]) -> Windows:
    """The collate function of one-file batches: the file's Windows as they are."""
    return items[0]


def grouped_probabilities(
    predictor: Predictor, groups: Sequence[np.ndarray], batch_size: int
) -> list[np.ndarray]:
    """The windows of several files in shared batches, probabilities split back per file."""
    probabilities = predictor.probabilities(np.concatenate(groups), batch_size)
    return np.split(probabilities, np.cumsum([len(g) for g in groups])[:-1])


def predict_files(
    paths: Sequence[str],
    predictor: Predictor,
    speech: SpeechConfig,
    batch_size: int,
    num_workers: int,
) -> Iterator[tuple[Windows, np.ndarray | None]]:
    """Yields each file with its per-window probabilities, batching windows across files."""
    loader = DataLoader(
        WindowedFiles(paths, predictor.sample_rate, speech),
        batch_size=1,
        collate_fn=first_item,
        num_workers=num_workers,
    )
    pending: list[Windows] = []

    def flush() -> Iterator[tuple[Windows, np.ndarray | None]]:
        decoded = [w.audio for w in pending if not w.error]
        results = iter(grouped_probabilities(predictor, decoded, batch_size) if decoded else [])
        for item in pending:
            yield item, None if item.error else next(results)
        pending.clear()

    for item in tqdm(
        loader, total=len(paths), desc="files", unit="file", disable=len(paths) < 2, file=sys.stderr
    ):
        pending.append(item)
        if sum(len(w.audio) for w in pending) >= batch_size:
            yield from flush()
    yield from flush()


def clip_windows(
    clips: Sequence[np.ndarray], sample_rate: int, speech: SpeechConfig
) -> tuple[list[np.ndarray], list[list[Span]], int]:
    """Each decoded clip's windows over its speech and their spans, as `inference.py` cuts them.

    An evaluation must score every clip, so a clip in which the detector finds no speech (say,
    under heavy noise) is cut from its whole length; how many were comes back too.
    """
    windows, cuts, whole = [], [], 0
    for audio in clips:
        try:
            found, spans = speech_windows(audio, sample_rate, speech)
        except AudioError:
            whole += 1
            found, spans = speech_windows(audio, sample_rate, replace(speech, vad=False))
        windows.append(found)
        cuts.append(spans)
    return windows, cuts, whole


def clip_probabilities(
    predictor: Predictor, clips: Sequence[np.ndarray], speech: SpeechConfig, batch_size: int
) -> tuple[np.ndarray, int]:
    """One row per decoded clip from its windows (`clip_windows`), and how many clips had no
    speech found."""
    windows, cuts, whole = clip_windows(clips, predictor.sample_rate, speech)
    parts = grouped_probabilities(predictor, windows, batch_size)
    rows = [weighted_mean(p, spans) for p, spans in zip(parts, cuts, strict=True)]
    return np.stack(rows), whole


def columns(names: Sequence[str]) -> tuple[str, ...]:
    """A file's row in inference.py's CSV and the server's answer: a column per class name."""
    return ("path", "label", "confidence", *names, "error")


def segment_columns(names: Sequence[str]) -> tuple[str, ...]:
    """One row per window of speech."""
    return ("path", "start", "end", "label", "confidence", *names)


def file_row(item: Windows, probabilities: np.ndarray | None, names: Sequence[str]) -> dict:
    if probabilities is None:
        return {
            "path": item.path,
            "label": "",
            "confidence": "",
            **dict.fromkeys(names, ""),
            "error": item.error,
        }
    mean = weighted_mean(probabilities, item.spans)
    best = int(mean.argmax())
    return {
        "path": item.path,
        "label": names[best],
        "confidence": float(mean[best]),
        **{name: float(p) for name, p in zip(names, mean, strict=True)},
        "error": "",
    }


def segment_row(span: Span, probabilities: np.ndarray, rate: int, names: Sequence[str]) -> dict:
    """One window: `start`/`end` in seconds of the speech it holds, not its padding."""
    return {
        "start": round(span.speech_start / rate, 3),
        "end": round(span.speech_end / rate, 3),
        "label": names[int(probabilities.argmax())],
        "confidence": float(probabilities.max()),
        **{name: float(v) for name, v in zip(names, probabilities, strict=True)},
    }


def segment_rows(
    item: Windows, probabilities: np.ndarray, sample_rate: int, names: Sequence[str]
) -> list[dict]:
    """One row per window of a file."""
    return [
        {"path": item.path, **segment_row(span, p, sample_rate, names)}
        for span, p in zip(item.spans, probabilities, strict=True)
    ]
