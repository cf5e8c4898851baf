"""Predict emotions for a file or a folder of recordings (any format, rate or length).

Usage: `python speech_emotion_recognition/inference.py input=DIR [output=out.csv]`.

Each file is cut into windows of the model's length; the file's probabilities are the mean over
the windows that hold speech. Files that fail get a row with `error` set; the run goes on.
"""

from __future__ import annotations

import csv
import json
import logging
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from speech_emotion_recognition.data import EMOTIONS, audio_files
from speech_emotion_recognition.model import EmotionRecognitionModule
from speech_emotion_recognition.preprocessing import AudioError, crop_or_pad, load_audio

log = logging.getLogger(__name__)

COLUMNS = ("path", "label", "confidence", *EMOTIONS, "error")
SEGMENT_COLUMNS = ("path", "start", "end", "label", "confidence", *EMOTIONS)
TABLE_MIN_WIDTH = 120  # columns; rich assumes 80 when stdout is not a terminal
GET_MODEL = "Train one with `python speech_emotion_recognition/train.py` or run `dvc pull`."


@dataclass
class Windows:
    """One decoded file cut into model-length windows; `starts` in seconds, speech windows only."""

    path: str
    audio: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), np.float32))
    starts: list[float] = field(default_factory=list)
    error: str = ""


def window_starts(n_samples: int, window: int, hop: int) -> list[int]:
    """Starts that cover the whole file; the last window is aligned to the end."""
    if n_samples <= window:
        return [0]
    starts = list(range(0, n_samples - window + 1, hop))
    if starts[-1] + window < n_samples:
        starts.append(n_samples - window)
    return starts


def cut(audio: np.ndarray, sample_rate: int, window: int, hop: int, silence_dbfs: float):
    """(windows, start seconds) of the windows louder than `silence_dbfs`."""
    windows, starts = [], []
    for start in window_starts(len(audio), window, hop):
        segment = crop_or_pad(audio, window, start)
        rms = np.sqrt(np.mean(np.square(segment[: len(audio) - start], dtype=np.float64)))
        if 20 * np.log10(max(rms, 1e-12)) >= silence_dbfs:
            windows.append(segment)
            starts.append(start / sample_rate)
    if not windows:
        raise AudioError(f"no speech: every window is below {silence_dbfs} dBFS")
    return np.stack(windows).astype(np.float32), starts


class WindowedFiles(Dataset):
    """Decodes in DataLoader workers, so the next files are read while the model runs."""

    def __init__(self, paths: Sequence[str], sample_rate: int, cfg: DictConfig) -> None:
        self.paths = list(paths)
        self.sample_rate = sample_rate
        self.window = int(cfg.window_seconds * sample_rate)
        self.hop = int(cfg.hop_seconds * sample_rate)
        self.silence_dbfs = cfg.silence_dbfs

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Windows:
        path = self.paths[index]
        try:
            audio = load_audio(path, self.sample_rate)
            windows, starts = cut(audio, self.sample_rate, self.window, self.hop, self.silence_dbfs)
        except AudioError as error:
            return Windows(path, error=str(error))
        return Windows(path, windows, starts)


def _single(items: list[Windows]) -> Windows:
    return items[0]


class Predictor:
    """Log-mel features in torch, then the classifier in torch or ONNX Runtime."""

    def __init__(
        self, module: EmotionRecognitionModule, device: torch.device, onnx_path: str | None = None
    ) -> None:
        self.module = module.to(device).eval()
        self.device = device
        self.session = None
        if onnx_path:
            import onnxruntime

            providers = ["CUDAExecutionProvider", "CPUExecutionProvider"]
            available = set(onnxruntime.get_available_providers())
            self.session = onnxruntime.InferenceSession(
                onnx_path, providers=[p for p in providers if p in available]
            )

    def probabilities(self, windows: Sequence[np.ndarray], batch_size: int) -> np.ndarray:
        """(n, n_classes) for n equal-length windows, run `batch_size` at a time."""
        return np.concatenate(
            [
                self._batch(np.stack(windows[i : i + batch_size]))
                for i in range(0, len(windows), batch_size)
            ]
        )

    @torch.inference_mode()
    def _batch(self, windows: np.ndarray) -> np.ndarray:
        features = self.module.features(torch.from_numpy(windows).to(self.device))
        if self.session is None:
            logits = self.module.net(features)
        else:
            (logits,) = self.session.run(None, {"features": features.cpu().numpy()})
            logits = torch.from_numpy(logits)
        return torch.softmax(logits.float(), dim=-1).cpu().numpy()


def predict(
    paths: Sequence[str], predictor: Predictor, cfg: DictConfig
) -> Iterator[tuple[Windows, np.ndarray | None]]:
    """Yields each file with its per-window probabilities, batching windows across files."""
    sample_rate = predictor.module.hparams.features["sample_rate"]
    loader = DataLoader(
        WindowedFiles(paths, sample_rate, cfg),
        batch_size=1,
        collate_fn=_single,
        num_workers=cfg.num_workers,
    )
    pending: list[Windows] = []

    def flush() -> Iterator[tuple[Windows, np.ndarray | None]]:
        decoded = [w for w in pending if not w.error]
        if decoded:
            windows = np.concatenate([w.audio for w in decoded])
            probabilities = predictor.probabilities(windows, cfg.batch_size)
            splits = np.cumsum([len(w.audio) for w in decoded])[:-1]
            by_path = dict(
                zip([w.path for w in decoded], np.split(probabilities, splits), strict=True)
            )
        for item in pending:
            yield item, None if item.error else by_path[item.path]
        pending.clear()

    for item in tqdm(
        loader, total=len(paths), desc="files", unit="file", disable=len(paths) < 2, file=sys.stderr
    ):
        pending.append(item)
        if sum(len(w.audio) for w in pending) >= cfg.batch_size:
            yield from flush()
    yield from flush()


def file_row(item: Windows, probabilities: np.ndarray | None) -> dict:
    if probabilities is None:
        return {
            "path": item.path,
            "label": "",
            "confidence": "",
            **dict.fromkeys(EMOTIONS, ""),
            "error": item.error,
        }
    mean = probabilities.mean(axis=0)
    best = int(mean.argmax())
    return {
        "path": item.path,
        "label": EMOTIONS[best],
        "confidence": float(mean[best]),
        **{name: float(p) for name, p in zip(EMOTIONS, mean, strict=True)},
        "error": "",
    }


def segment_rows(item: Windows, probabilities: np.ndarray, seconds: float) -> list[dict]:
    return [
        {
            "path": item.path,
            "start": start,
            "end": start + seconds,
            "label": EMOTIONS[int(p.argmax())],
            "confidence": float(p.max()),
            **{name: float(v) for name, v in zip(EMOTIONS, p, strict=True)},
        }
        for start, p in zip(item.starts, probabilities, strict=True)
    ]


def write_rows(rows: list[dict], columns: Sequence[str], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix.lower() == ".json":
        path.write_text(json.dumps(rows, indent=2) + "\n")
        return
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(columns))
        writer.writeheader()
        writer.writerows(rows)


def print_rows(rows: list[dict], columns: Sequence[str], title: str, root: Path) -> None:
    """A readable table: paths relative to the input folder, probabilities to two decimals."""
    table = Table(title=title)
    for column in columns:
        table.add_column(column, overflow="fold", no_wrap=column == "path")
    for row in rows:
        path = Path(row["path"])
        cells = {**row, "path": str(path.relative_to(root)) if root in path.parents else path.name}
        table.add_row(*(f"{v:.2f}" if isinstance(v, float) else str(v) for v in cells.values()))
    console = Console()
    console.width = max(console.width, TABLE_MIN_WIDTH)
    console.print(table)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def run(cfg: DictConfig) -> int:
    """The whole command; returns the exit status (0 when at least one file was predicted)."""
    source, ckpt = Path(cfg.input), Path(cfg.ckpt)
    if not source.exists():
        log.error("Input not found: %s", source.resolve())
        return 2
    if not ckpt.is_file():
        log.error("Checkpoint not found: %s. %s", ckpt.resolve(), GET_MODEL)
        return 2
    paths = [str(source)] if source.is_file() else [str(p) for p in audio_files(source)]
    if not paths:
        log.error("No wav, flac, ogg or mp3 files in %s", source.resolve())
        return 1
    onnx_path = None
    if cfg.engine == "onnx":
        onnx_path = str(cfg.onnx or ckpt.with_suffix(".onnx"))
        if not Path(onnx_path).is_file():
            log.error(
                "ONNX model not found: %s. Run `python scripts/export.py ckpt=%s`", onnx_path, ckpt
            )
            return 2
    predictor = Predictor(
        EmotionRecognitionModule.from_file(ckpt), resolve_device(cfg.device), onnx_path
    )
    rows, segments = [], []
    for item, probabilities in predict(paths, predictor, cfg):
        rows.append(file_row(item, probabilities))
        if cfg.segments and probabilities is not None:
            segments.extend(segment_rows(item, probabilities, cfg.window_seconds))
    if cfg.output:
        output = Path(cfg.output)
        write_rows(rows, COLUMNS, output)
        if cfg.segments:
            write_rows(segments, SEGMENT_COLUMNS, output.with_name(f"{output.stem}.segments.csv"))
        log.info("Wrote %d rows to %s", len(rows), output)
    else:
        root = source if source.is_dir() else source.parent
        print_rows(rows, COLUMNS, f"{ckpt.name} on {source}", root)
        if cfg.segments:
            print_rows(segments, SEGMENT_COLUMNS, "speech windows", root)
    failed = sum(bool(r["error"]) for r in rows)
    if failed:
        log.warning(
            "%d of %d files could not be predicted (see the error column)", failed, len(rows)
        )
    if failed == len(rows):
        log.error("No file could be predicted.")
        return 1
    return 0


@hydra.main(version_base="1.3", config_path="../conf", config_name="inference")
def main(cfg: DictConfig) -> None:
    sys.exit(run(cfg))


if __name__ == "__main__":
    main()
