"""Throughput on this machine in one table: clips/s per stage, model size, precision and compile.

python scripts/benchmark.py                        # full and small model, fp32/bf16, eager/compiled
python scripts/benchmark.py models=[small] compile=false inference_files=0

Rows: log-mel features, forward (features + network, inference mode) and training step
(features, network, focal loss, backward, AdamW) on random 5-second waveforms; then
`inference.py` end to end on a folder of 5-second wav files (decode to CSV) per engine and
precision (torch fp32/bf16, ONNX Runtime fp32, dynamic int8 and static int8, this one also with
one decoding worker instead of two); then the cold start of one `inference.py` process on one
file.

python scripts/benchmark.py models=[] releases=all   # the releases' files/s the README quotes

`releases`: each shipped release through `inference.py` at its default settings (engine, speech
detection, window scoring as conf/inference.yaml has them) on the first `release_files` RAVDESS
clips as recorded, model loading included; written to `release_report`/speed.{json,md} with
the machine it ran on. Every files/s in the docs is this figure.
"""

from __future__ import annotations

import copy
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import hydra
import numpy as np
import soundfile as sf
import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from scripts.export import calibration_features, export_onnx, quantize_onnx, quantize_static_onnx
from scripts.timing import TrainingStep, timed
from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.audio import crop_or_pad, load_audio
from speech_emotion_recognition.emotions import EMOTIONS
from speech_emotion_recognition.inference import run
from speech_emotion_recognition.predict.predictor import (
    engine_file,
    engine_name,
    load_classifier,
    resolve_device,
    resolve_precision,
)
from speech_emotion_recognition.predict.speech import SpeechConfig

Row = dict[str, object]


def row(model: str, stage: str, precision: str, compiled: str, rate: float) -> Row:
    return {"model": model, "stage": stage, "precision": precision, "compiled": compiled,
            "clips_per_s": rate}  # fmt: skip


def model_rows(name: str, model_cfg: DictConfig, cfg: DictConfig, device: torch.device) -> list:
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    module = hydra.utils.instantiate(model_cfg, class_names=list(EMOTIONS)).to(device)
    n_samples = int(module.hparams.features["sample_rate"] * 5.0)
    waveforms = 0.1 * torch.randn(cfg.batch_size, n_samples, device=device)
    labels = torch.randint(len(EMOTIONS), (cfg.batch_size,), device=device)
    rows: list[Row] = []

    with torch.inference_mode():
        seconds = timed(lambda: module.features(waveforms), cfg.warmup_steps, cfg.steps, sync)
    rows.append(row(name, "log-mel features", "fp32 (always)", "–", cfg.batch_size / seconds))

    for precision in cfg.precisions:
        bf16 = resolve_precision(precision, device) == torch.bfloat16
        for compiled in (False, True) if cfg.compile else (False,):
            variant = copy.deepcopy(module)
            if compiled:
                variant.net.compile()
            train_step = TrainingStep(variant, device, bf16)

            def forward(variant=variant, bf16=bf16) -> torch.Tensor:
                with (
                    torch.inference_mode(),
                    torch.autocast(device.type, torch.bfloat16, enabled=bf16),
                ):
                    return variant(waveforms)

            for stage, step in (
                ("forward", forward),
                ("training step", lambda step=train_step: step(waveforms, labels)),
            ):
                variant.train(stage == "training step")
                start = time.perf_counter()
                step()  # the first call compiles
                sync()
                first = time.perf_counter() - start
                seconds = timed(step, cfg.warmup_steps, cfg.steps, sync)
                how = f"yes ({first:.0f} s to compile)" if compiled else "no"
                rows.append(row(name, stage, precision, how, cfg.batch_size / seconds))
    return rows


def speech_folder(folder: Path, n_files: int, sample_rate: int, seed: int) -> str:
    """`n_files` 5-second wav files of real speech (RAVDESS clips, padded), or of noise when the
    corpus is absent; returns what they hold, for the table."""
    folder.mkdir()
    sources = sorted((PROJECT_ROOT / "data" / "RAVDESS").rglob("*.wav"))[:n_files]
    rng = np.random.default_rng(seed)
    for i in range(n_files):
        if sources:
            audio = crop_or_pad(
                load_audio(str(sources[i % len(sources)]), sample_rate), 5 * sample_rate
            )
        else:
            audio = 0.1 * rng.standard_normal(5 * sample_rate)
        sf.write(folder / f"{i:04d}.wav", audio, sample_rate)
    return "RAVDESS speech" if sources else "noise, speech.vad=false"


def inference_rows(name: str, model_cfg: DictConfig, cfg: DictConfig) -> list[Row]:
    """inference.py on a folder of 5-second files, decode to CSV, per engine and precision."""
    module = hydra.utils.instantiate(model_cfg, class_names=list(EMOTIONS)).eval()
    sample_rate = module.hparams.features["sample_rate"]
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clips"
        holds = speech_folder(folder, cfg.inference_files, sample_rate, cfg.seed)
        weights = module.save_weights(Path(tmp) / "model.safetensors")
        classifier = load_classifier(weights)
        onnx = export_onnx(classifier, weights.with_suffix(".onnx"), cfg.onnx_opset)
        int8 = quantize_onnx(onnx, weights.with_suffix(".int8.onnx"))
        vad = "speech" in holds
        base = hydra.compose("inference", overrides=[f"input={folder}", f"speech.vad={vad}"])
        calibration = sorted(str(p) for p in folder.glob("*.wav"))[:16]
        qdq = quantize_static_onnx(
            onnx,
            weights.with_suffix(".qdq.onnx"),
            calibration_features(classifier, calibration, SpeechConfig(**base.speech)),
        )
        two = base.num_workers
        runs = [("torch", "32", None, vad, two), ("torch", "bf16", None, vad, two),
                ("torch", "bf16", None, False, two), ("onnx", "32", onnx, vad, two),
                ("onnx", "int8", int8, vad, two), ("onnx", "static int8", qdq, vad, two),
                ("onnx", "static int8", qdq, vad, 1)]  # fmt: skip
        for engine, precision, onnx_path, detect, n_workers in runs:
            run_cfg = OmegaConf.merge(base, {
                "ckpt": str(weights), "output": f"{tmp}/out.csv", "engine": engine,
                "onnx": str(onnx_path) if onnx_path else None, "speech": {"vad": detect},
                "precision": "32" if "int8" in precision else precision, "device": cfg.device,
                "batch_size": cfg.batch_size, "num_workers": n_workers,
            })  # fmt: skip
            start = time.perf_counter()
            run(run_cfg)
            files_per_s = cfg.inference_files / (time.perf_counter() - start)
            workers = f"{n_workers} decoding worker" + "s" * (n_workers > 1)
            stage = (f"inference.py, {engine}, {'with' if detect else 'no'} VAD, {workers} "
                     f"(files/s; {holds})")  # fmt: skip
            rows.append(row(name, stage, precision, "no", files_per_s))
        if cfg.cold_start:
            clip = folder / "0000.wav"
            script = PROJECT_ROOT / "speech_emotion_recognition" / "inference.py"
            command = [sys.executable, str(script), f"input={clip}", f"ckpt={weights}",
                       f"output={tmp}/one.csv", f"speech.vad={vad}"]  # fmt: skip
            start = time.perf_counter()
            subprocess.run(command, check=True, capture_output=True)
            seconds = time.perf_counter() - start
            rows.append(row(name, "cold start, one file (seconds)", "auto", "no", seconds))
    return rows


def machine() -> str:
    """This CPU in words, with the two instruction sets that change the engines' speed."""
    info = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    fields = [line.split(":", 1) for line in info.splitlines() if ":" in line]
    name = next((v.strip() for k, v in fields if k.strip() == "model name"), platform.processor())
    flags = next((v.split() for k, v in fields if k.strip() == "flags"), [])
    has = [f.upper().replace("_", "-") for f in ("avx512_bf16", "avx512_vnni") if f in flags]
    return f"{name}, {os.cpu_count()} cores, " + (" + ".join(has) if has else "no AVX512-BF16/VNNI")


def release_speed(cfg: DictConfig) -> dict:
    """Files/s of each release through inference.py at its default settings."""
    sources = sorted((PROJECT_ROOT / "data" / "RAVDESS").rglob("*.wav"))[: cfg.release_files]
    if not sources:
        raise FileNotFoundError("The release benchmark reads RAVDESS: `dvc pull data/RAVDESS.dvc`.")
    wanted = [cfg.releases] if isinstance(cfg.releases, str) else list(cfg.releases)
    shipped = sorted(p.stem for p in (PROJECT_ROOT / "models").glob("*.md"))  # a card each
    names = shipped if wanted == ["all"] else wanted
    unknown = [n for n in names if n not in shipped]
    if unknown:
        raise FileNotFoundError(f"No release {', '.join(unknown)} in models/; shipped: {shipped}")
    seconds_each = statistics.fmean(sf.info(str(p)).duration for p in sources)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        for source in sources:
            (folder / source.name).symlink_to(source)
        for name in names:
            weights = PROJECT_ROOT / "models" / f"{name}.safetensors"
            run_cfg = hydra.compose("inference", overrides=[
                f"input={folder}", f"ckpt={weights}", f"output={tmp}/{name}.csv"])  # fmt: skip
            start = time.perf_counter()
            run(run_cfg)
            seconds = time.perf_counter() - start
            onnx = engine_file(weights, run_cfg.engine, resolve_device(run_cfg.device))
            precision = resolve_precision(run_cfg.precision, resolve_device(run_cfg.device))
            results[name] = {"files_per_s": len(sources) / seconds, "seconds": seconds,
                             "engine": engine_name(onnx, precision)}  # fmt: skip
    return {
        "machine": machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "files": len(sources),
        "clips": f"the first {len(sources)} RAVDESS clips by name, as recorded "
        f"({seconds_each:.1f} s each on average)",
        "settings": "inference.py defaults (conf/inference.yaml), model loading included",
        "releases": results,
    }


def write_speed(report: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "speed.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# Prediction speed of the releases",
        "",
        f"`python scripts/benchmark.py models=[] releases=all` on {report['machine']}, "
        f"{report['threads']} threads, torch {report['torch']}: {report['clips']}, "
        f"{report['settings']}.",
        "",
        "| release | engine | files/s | seconds |",
        "|---|---|---:|---:|",
        *(
            f"| {name} | {r['engine']} | {r['files_per_s']:.1f} | {r['seconds']:.1f} |"
            for name, r in report["releases"].items()
        ),  # fmt: skip
        "",
    ]
    (out / "speed.md").write_text("\n".join(lines))


@hydra.main(version_base="1.3", config_path="../conf", config_name="benchmark")
def main(cfg: DictConfig) -> None:
    torch.manual_seed(cfg.seed)
    device = resolve_device(cfg.device)
    if cfg.releases:
        write_speed(release_speed(cfg), Path(cfg.release_report))
        Console().print((Path(cfg.release_report) / "speed.md").read_text())
    rows: list[Row] = []
    for name in cfg.models:
        model_cfg = hydra.compose("benchmark", overrides=[f"model={name}"]).model
        rows.extend(model_rows(name, model_cfg, cfg, device))
        if cfg.inference_files and name in cfg.inference_models:
            rows.extend(inference_rows(name, model_cfg, cfg))
    processor = torch.cuda.get_device_name() if device.type == "cuda" else "CPU"
    table = Table(
        title=f"{processor}, {torch.get_num_threads()} threads, batch {cfg.batch_size}, "
        f"torch {torch.__version__}"
    )
    for column in ("model", "stage", "precision", "compiled", "clips/s"):
        table.add_column(column, justify="right" if column == "clips/s" else "left")
    for row in rows:
        table.add_row(*(str(row[k]) for k in ("model", "stage", "precision", "compiled")),
                      f"{row['clips_per_s']:,.1f}")  # fmt: skip
    if rows:
        Console(width=140).print(table)


if __name__ == "__main__":
    main()
