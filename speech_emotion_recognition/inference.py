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
from collections.abc import Sequence
from pathlib import Path

import hydra
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from speech_emotion_recognition.audio import input_files
from speech_emotion_recognition.cli import check_arguments
from speech_emotion_recognition.predict.adapt import (
    adapt_rows,
    adapted_columns,
    speakers_for,
)
from speech_emotion_recognition.predict.predictor import (
    Predictor,
    Windows,
    checkpoint_error,
    columns,
    engine_file,
    file_row,
    load_classifier,
    predict_files,
    resolve_device,
    resolve_precision,
    segment_columns,
    segment_rows,
)
from speech_emotion_recognition.predict.speech import SpeechConfig

log = logging.getLogger(__name__)

TABLE_MIN_WIDTH = 120  # columns; rich assumes 80 when stdout is not a terminal


def draw_timeline(
    item: Windows,
    segments: list[dict],
    sample_rate: int,
    names: Sequence[str],
    target: Path,
    many: bool,
) -> None:
    """`timeline=FILE.png` for one input file; for a folder, one PNG per file inside `timeline`."""
    from speech_emotion_recognition.plots import save, timeline_figure

    duration = item.n_samples / sample_rate
    path = target / f"{Path(item.path).stem}.png" if many or target.suffix != ".png" else target
    save(timeline_figure(Path(item.path).name, duration, segments, names), path)


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


def run(cfg: DictConfig) -> int:
    """The whole command; returns the exit status (0 when at least one file was predicted)."""
    source, ckpt = Path(cfg.input), Path(cfg.ckpt)
    if not source.exists():
        log.error("Input not found: %s", source.resolve())
        return 2
    if error := checkpoint_error(ckpt):
        log.error(error)
        return 2
    paths = input_files(source)
    if not paths:
        log.error("No wav, flac, ogg or mp3 files in %s", source.resolve())
        return 1
    if cfg.adapt not in ("none", "speaker"):
        log.error("adapt=%s: choose none or speaker", cfg.adapt)
        return 2
    if cfg.adapt == "speaker" and cfg.speakers != "folder" and not Path(cfg.speakers).is_file():
        log.error("speakers=%s: no such CSV (columns path,speaker), or speakers=folder",
                  cfg.speakers)  # fmt: skip
        return 2
    if cfg.timeline and len(paths) > 1 and Path(cfg.timeline).suffix.lower() == ".png":
        log.error("input=%s holds %d files: timeline= takes a folder for their PNGs, one per "
                  "file, not %s", source, len(paths), cfg.timeline)  # fmt: skip
        return 2
    device = resolve_device(cfg.device)
    try:
        onnx_path = engine_file(ckpt, cfg.engine, device, cfg.onnx)
    except (FileNotFoundError, ValueError) as error:  # a missing file or an unknown engine
        log.error(error)
        return 2
    precision = resolve_precision(cfg.precision, device)
    speech = SpeechConfig(**cfg.speech)
    predictor = Predictor(load_classifier(ckpt), device, precision, onnx_path, speech.shift_seconds)
    log.info("Predicting on %s, network: %s", device, predictor.engine)
    rate, names = predictor.sample_rate, predictor.class_names
    rows, segments = [], []
    for item, probabilities in predict_files(
        paths, predictor, speech, cfg.batch_size, cfg.num_workers
    ):
        rows.append(file_row(item, probabilities, names))
        if probabilities is None or not (cfg.segments or cfg.timeline):
            continue
        item_segments = segment_rows(item, probabilities, rate, names)
        if cfg.segments:
            segments.extend(item_segments)
        if cfg.timeline:
            draw_timeline(item, item_segments, rate, names, Path(cfg.timeline), len(paths) > 1)
    row_columns = columns(names)
    if cfg.adapt == "speaker":
        rows = adapt_rows(rows, speakers_for(cfg.speakers, paths, source), names)
        row_columns = adapted_columns(names)
    if cfg.output:
        output = Path(cfg.output)
        write_rows(rows, row_columns, output)
        if cfg.segments:
            segments_path = output.with_name(f"{output.stem}.segments.csv")
            write_rows(segments, segment_columns(names), segments_path)
        log.info("Wrote %d rows to %s", len(rows), output)
    else:
        root = source if source.is_dir() else source.parent
        print_rows(rows, row_columns, f"{ckpt.name} on {source}", root)
        if cfg.segments:
            print_rows(segments, segment_columns(names), "speech windows", root)
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
    check_arguments("inference")
    main()
