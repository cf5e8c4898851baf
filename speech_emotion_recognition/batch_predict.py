"""Predict emotions for archives too large for one machine: Lightning's predict loop across
processes, GPUs and nodes, one shard per rank, merged at the end, resumable.

Usage: `python speech_emotion_recognition/batch_predict.py input=DIR output=DIR/emotions.csv`
(`.parquet` for large jobs), with `trainer=ddp_sim` (2 CPU processes), `trainer=ddp` (every GPU
of the node) or under torchrun / SLURM like training. Each file gives the row `inference.py`
writes; every rank appends its rows to `<output>.shards/rank-<i>.csv` as it goes, so a restart
skips the files already there. `inference.py` itself never loads Lightning.
"""

from __future__ import annotations

import csv
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
from lightning.pytorch.callbacks import BasePredictionWriter
from omegaconf import DictConfig
from torch.utils.data import DataLoader

from speech_emotion_recognition.audio import input_files
from speech_emotion_recognition.cli import check_arguments
from speech_emotion_recognition.predict.adapt import (
    adapt_rows,
    adapted_columns,
    as_numbers,
    speakers_for,
)
from speech_emotion_recognition.predict.predictor import (
    Predictor,
    WindowedFiles,
    Windows,
    checkpoint_error,
    columns,
    engine_file,
    file_row,
    first_item,
    load_classifier,
    resolve_precision,
)
from speech_emotion_recognition.predict.speech import SpeechConfig

log = logging.getLogger(__name__)


class FilePredictions(L.LightningModule):
    """One file per step through the Predictor and engine inference.py uses, so the rows equal
    inference.py's."""

    def __init__(self, cfg: DictConfig, shift_seconds: float) -> None:
        super().__init__()
        self.ckpt = str(cfg.ckpt)
        self.classifier = load_classifier(self.ckpt)
        self.engine_name, self.onnx_name = cfg.engine, cfg.onnx
        self.precision_name = str(cfg.precision)
        self.batch_size = cfg.batch_size
        self.shift_seconds = shift_seconds
        self.predictor: Predictor | None = None

    def on_predict_start(self) -> None:
        """The engine is chosen here, on each rank's own device, as inference.py chooses it."""
        onnx_path = engine_file(self.ckpt, self.engine_name, self.device, self.onnx_name)
        precision = resolve_precision(self.precision_name, self.device)
        self.predictor = Predictor(
            self.classifier, self.device, precision, onnx_path, self.shift_seconds
        )

    def predict_step(self, item: Windows, _: int) -> dict:
        names = self.classifier.class_names
        if item.error:
            return file_row(item, None, names)
        return file_row(item, self.predictor.probabilities(item.audio, self.batch_size), names)


def read_rows(shards: Sequence[Path]) -> list[dict]:
    rows = []
    for shard in shards:
        with open(shard, newline="") as f:
            rows += list(csv.DictReader(f))
    return rows


class ShardWriter(BasePredictionWriter):
    """Appends each row to this rank's shard as soon as it is predicted (flushed), so a job
    killed midway loses at most the files in flight."""

    def __init__(self, folder: Path) -> None:
        super().__init__(write_interval="batch")
        self.folder = folder

    def write_on_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, prediction: Any, *_: Any
    ) -> None:
        shard = self.folder / f"rank-{trainer.global_rank}.csv"
        new = not shard.exists()
        with open(shard, "a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(prediction))
            if new:
                writer.writeheader()
            writer.writerow(prediction)


def write_output(rows: list[dict], output: Path, fields: Sequence[str]) -> None:
    """Rows sorted by path, as CSV or (`.parquet`) Parquet."""
    rows = sorted(rows, key=lambda r: r["path"])
    output.parent.mkdir(parents=True, exist_ok=True)
    if output.suffix.lower() == ".parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        pq.write_table(pa.Table.from_pylist(rows), output)
        return
    with open(output, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(fields))
        writer.writeheader()
        writer.writerows(rows)


def run(cfg: DictConfig) -> int:
    source, output = Path(cfg.input), Path(cfg.output)
    if not source.exists():
        log.error("Input not found: %s", source.resolve())
        return 2
    if error := checkpoint_error(cfg.ckpt):
        log.error(error)
        return 2
    try:  # a missing onnx= file or an unknown engine fails here, before any rank starts
        engine_file(cfg.ckpt, cfg.engine, torch.device("cpu"), cfg.onnx)
    except (FileNotFoundError, ValueError) as error:  # a missing file or an unknown engine
        log.error(error)
        return 2
    shards = output.with_name(f"{output.name}.shards")
    shards.mkdir(parents=True, exist_ok=True)
    done = {r["path"] for r in read_rows(sorted(shards.glob("rank-*.csv")))}
    paths = input_files(source)
    todo = [p for p in paths if p not in done]
    log.info("%d files, %d already in %s, %d to predict", len(paths), len(done), shards, len(todo))
    speech = SpeechConfig(**cfg.speech)
    module = FilePredictions(cfg, speech.shift_seconds)
    files = WindowedFiles(todo, module.classifier.sample_rate, speech)
    loader = DataLoader(files, batch_size=1, collate_fn=first_item, num_workers=cfg.num_workers)
    trainer = hydra.utils.instantiate(cfg.trainer, callbacks=[ShardWriter(shards)], logger=False)
    if todo:
        trainer.predict(module, loader, return_predictions=False)
    trainer.strategy.barrier()
    if trainer.is_global_zero:
        rows = read_rows(sorted(shards.glob("rank-*.csv")))
        names = module.classifier.class_names
        fields = columns(names)
        if cfg.adapt == "speaker":  # over every rank's rows: the answer of one process
            speakers = speakers_for(cfg.speakers, [r["path"] for r in rows], source)
            rows = adapt_rows(as_numbers(rows, names), speakers, names)
            fields = adapted_columns(names)
        write_output(rows, output, fields)
        log.info("Wrote %d rows to %s", len(rows), output)
    return 0


@hydra.main(version_base="1.3", config_path="../conf", config_name="batch_predict")
def main(cfg: DictConfig) -> None:
    sys.exit(run(cfg))


if __name__ == "__main__":
    check_arguments("batch_predict")
    main()
