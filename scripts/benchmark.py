"""Throughput of each stage on the current device; prints one table (clips per second).

python scripts/benchmark.py                       # full model, batch 8, fp32
python scripts/benchmark.py precision=bf16-mixed batch_size=64 model=default
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import hydra
import numpy as np
import soundfile as sf
import torch
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from scripts.export import export_onnx
from speech_emotion_recognition.data import EMOTIONS
from speech_emotion_recognition.inference import run
from speech_emotion_recognition.predictor import resolve_device
from speech_emotion_recognition.preprocessing import load_audio


def timed(step: Callable[[], object], warmup: int, steps: int, sync: Callable[[], None]) -> float:
    """Seconds per call, after warm-up calls that pay for allocation and kernel selection."""
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - start) / steps


def benchmark(cfg: DictConfig) -> list[tuple[str, float]]:
    device = resolve_device(cfg.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else lambda: None
    autocast = torch.autocast(device.type, torch.bfloat16, enabled="bf16" in cfg.precision)
    rows = []

    datamodule = hydra.utils.instantiate(cfg.data, batch_size=cfg.batch_size)
    datamodule.setup("fit")
    files = [c.path for c in datamodule.splits["train"][: cfg.decode_files]]
    start = time.perf_counter()
    for path in files:
        load_audio(path, cfg.data.sample_rate)
    rows.append(
        ("decode + resample from disk (1 process)", len(files) / (time.perf_counter() - start))
    )

    loader = iter(datamodule.train_dataloader())
    next(loader)  # workers start
    start = time.perf_counter()
    for _ in range(cfg.data_batches):
        next(loader)
    workers = cfg.data.num_workers
    rows.append(
        (
            f"DataLoader: crop + augment ({workers} workers)",
            cfg.data_batches * cfg.batch_size / (time.perf_counter() - start),
        )
    )

    model = hydra.utils.instantiate(cfg.model, class_names=list(EMOTIONS)).to(device)
    waveforms = torch.randn(cfg.batch_size, datamodule.n_samples, device=device) * 0.1
    labels = torch.randint(len(EMOTIONS), (cfg.batch_size,), device=device)

    with torch.inference_mode(), autocast:
        seconds = timed(lambda: model.features(waveforms), cfg.warmup_steps, cfg.steps, sync)
    rows.append(("log-mel features", cfg.batch_size / seconds))

    model.eval()
    with torch.inference_mode(), autocast:
        seconds = timed(lambda: model(waveforms), cfg.warmup_steps, cfg.steps, sync)
    rows.append((f"inference: features + model, batch {cfg.batch_size}", cfg.batch_size / seconds))

    model.train()
    optimizer = torch.optim.AdamW(model.parameters())

    def train_step() -> None:
        optimizer.zero_grad(set_to_none=True)
        with autocast:
            loss = model.criterion(model(waveforms), labels)
        loss.backward()
        optimizer.step()

    seconds = timed(train_step, cfg.warmup_steps, cfg.steps, sync)
    rows.append(
        (f"training step: features + model, batch {cfg.batch_size}", cfg.batch_size / seconds)
    )
    if cfg.inference_files:
        rows.extend(end_to_end_inference(model, cfg, datamodule.n_samples))
    return rows


def end_to_end_inference(model, cfg: DictConfig, n_samples: int) -> list[tuple[str, float]]:
    """inference.py on a folder of 5-second wav files, decode to CSV, torch and ONNX Runtime."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "clips"
        folder.mkdir()
        rng = np.random.default_rng(cfg.seed)
        rate = cfg.data.sample_rate
        for i in range(cfg.inference_files):
            sf.write(folder / f"{i:04d}.wav", 0.1 * rng.standard_normal(n_samples), rate)
        weights = model.cpu().save_weights(Path(tmp) / "model.safetensors")
        export_onnx(model.eval(), weights.with_suffix(".onnx"), cfg.onnx_opset)
        base = OmegaConf.load(Path(__file__).parents[1] / "conf" / "inference.yaml")
        base.pop("defaults")
        for engine in ("torch", "onnx"):
            run_cfg = OmegaConf.merge(
                base,
                {
                    "input": str(folder),
                    "ckpt": str(weights),
                    "output": f"{tmp}/{engine}.csv",
                    "engine": engine,
                    "onnx": None,
                    "device": cfg.device,
                    "batch_size": cfg.batch_size,
                    "num_workers": cfg.data.num_workers,
                },
            )
            start = time.perf_counter()
            run(run_cfg)
            files_per_s = cfg.inference_files / (time.perf_counter() - start)
            rows.append((f"inference.py end to end, {engine} (files/s, 5 s clips)", files_per_s))
    return rows


@hydra.main(version_base="1.3", config_path="../conf", config_name="benchmark")
def main(cfg: DictConfig) -> None:
    torch.manual_seed(cfg.seed)
    rows = benchmark(cfg)
    device = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    threads = torch.get_num_threads()
    table = Table(
        title=f"{device}, {threads} threads, {cfg.precision}, model n_mels="
        f"{cfg.model.features.n_mels} n_layers={cfg.model.net.n_layers}"
    )
    table.add_column("stage")
    table.add_column("clips/s", justify="right")
    for name, rate in rows:
        table.add_row(name, f"{rate:,.1f}")
    Console().print(table)


if __name__ == "__main__":
    main()
