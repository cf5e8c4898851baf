"""Training clips/s: the network alone vs fed by the real DataLoader, and the model FLOPs use.

python scripts/train_throughput.py                               # full model, this device
python scripts/train_throughput.py data=multi model=small       # any train.py data/model
python scripts/train_throughput.py hydra.run.dir=DIR            # throughput.{json,md} in DIR

Network-only steps train on random waveforms already on the device (features, network, focal
loss, backward, AdamW). End-to-end steps take the training DataLoader's batches (cached audio,
random crops, augmentations) to the device first. When end-to-end falls below `target_ratio` of
network-only, the levers of conf/throughput.yaml are tried, each on top of the ones before;
`compile_modes=[reduce-overhead]` also times the network under torch.compile, and feeds the
fastest mode last when it beats eager.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table
from torch.utils.flop_counter import FlopCounterMode

from scripts.timing import TrainingStep, timed
from speech_emotion_recognition.emotions import EMOTIONS
from speech_emotion_recognition.predict.predictor import resolve_device
from speech_emotion_recognition.training.module import EmotionRecognitionModule

OmegaConf.register_new_resolver("cpus", lambda: max(1, (os.cpu_count() or 2) - 1), replace=True)

# Dense bf16 tensor-core peaks (TFLOP/s) by device name, for the MFU when peak_tflops is null.
KNOWN_PEAKS = {"H100": 989.0, "H200": 989.0}


def forward_flops(model: EmotionRecognitionModule, n_samples: int) -> int:
    """FLOPs of one clip's forward pass through the network (matmuls and convolutions)."""
    features = model.features(torch.zeros(1, n_samples))
    with FlopCounterMode(display=False) as counter:
        model.net(features)
    return counter.get_total_flops()


def peak_tflops(cfg: DictConfig, device: torch.device) -> float | None:
    if cfg.peak_tflops is not None:
        return float(cfg.peak_tflops)
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    return next((peak for key, peak in KNOWN_PEAKS.items() if key in name), None)


def build(cfg: DictConfig) -> EmotionRecognitionModule:
    """The configured model, its network compiled when the config's `compile` says so."""
    model = hydra.utils.instantiate(cfg.model, class_names=list(EMOTIONS))
    if cfg.get("compile"):
        model.compile_network(cfg.compile)
    return model


def network_only(cfg: DictConfig, device: torch.device, batch: int, precision: str) -> float:
    model = build(cfg)
    stepper = TrainingStep(model, device, "bf16" in precision)
    n_samples = int(cfg.data.sample_rate * cfg.data.max_seconds)
    waveforms = 0.1 * torch.randn(batch, n_samples, device=device)
    labels = torch.randint(len(EMOTIONS), (batch,), device=device)
    seconds = timed(lambda: stepper(waveforms, labels), cfg.warmup_steps, cfg.steps, stepper.sync)
    return batch / seconds


def end_to_end(cfg: DictConfig, device: torch.device, batch: int, precision: str) -> dict:
    """Real batches through the DataLoader to the device, then the same training step."""
    datamodule = hydra.utils.instantiate(cfg.data, batch_size=batch)
    datamodule.setup("fit")
    model = build(cfg)
    stepper = TrainingStep(model, device, "bf16" in precision)
    augment = model.batch_augment
    pin = device.type == "cuda"

    loader = datamodule.train_dataloader()  # persistent workers: later epochs reuse them

    def epochs():
        while True:
            yield from loader

    batches = epochs()

    def step() -> None:
        waveforms, labels, *_ = next(batches)
        waveforms = waveforms.to(device, non_blocking=pin)
        labels = labels.to(device, non_blocking=pin)
        if augment is not None:
            waveforms = augment(waveforms)
        stepper(waveforms, labels)

    seconds = timed(step, cfg.warmup_steps, cfg.loader_batches, stepper.sync)
    return {"clips_per_s": batch / seconds, "train_clips": len(datamodule.splits["train"])}


def compose_with(overrides: list[str]) -> DictConfig:
    """The run's own config (its CLI overrides) plus a lever's overrides."""
    own = list(HydraConfig.get().overrides.task)
    return hydra.compose("throughput", overrides=[*own, *overrides])


def measure(cfg: DictConfig) -> dict:
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    model = hydra.utils.instantiate(cfg.model, class_names=list(EMOTIONS))
    flops = forward_flops(model, int(cfg.data.sample_rate * cfg.data.max_seconds))
    peak = peak_tflops(cfg, device)

    def mfu(clips_per_s: float) -> float | None:
        return None if peak is None else 3 * flops * clips_per_s / (peak * 1e12)

    rows = []
    for precision in cfg.precisions:
        for batch in cfg.batch_sizes:
            rate = network_only(cfg, device, batch, precision)
            rows.append(dict(feed="network only", precision=precision, batch=batch,
                             clips_per_s=rate, mfu=mfu(rate), overrides=[]))  # fmt: skip
    # torch.compile's modes change no maths: each is timed at the last precision (bf16) and every
    # batch size; the compile time falls in the warm-up steps.
    compiled = {}
    for mode in cfg.compile_modes:
        for batch in cfg.batch_sizes:
            precision, lever = cfg.precisions[-1], [f"compile={mode}"]
            rate = network_only(compose_with(lever), device, batch, precision)
            compiled[mode, batch] = rate
            rows.append(dict(feed=f"network only, compile={mode}", precision=precision,
                             batch=batch, clips_per_s=rate, mfu=mfu(rate),
                             overrides=lever))  # fmt: skip
    for precision in cfg.precisions:
        for batch in cfg.batch_sizes:
            run = end_to_end(cfg, device, batch, precision)
            rows.append(dict(feed="DataLoader (as configured)", precision=precision, batch=batch,
                             clips_per_s=run["clips_per_s"], mfu=mfu(run["clips_per_s"]),
                             overrides=[]))  # fmt: skip

    # The levers are judged at the last precision and batch size listed (bf16, the largest).
    precision, batch = cfg.precisions[-1], cfg.batch_sizes[-1]
    ceiling, fed = (
        next(
            r["clips_per_s"]
            for r in rows
            if r["feed"] == feed and r["precision"] == precision and r["batch"] == batch
        )
        for feed in ("network only", "DataLoader (as configured)")
    )
    overrides: list[str] = []
    if fed < cfg.target_ratio * ceiling:
        for name, lever in cfg.levers.items():
            overrides = [*overrides, *lever]  # reading the config resolves ${cpus:}
            result = end_to_end(compose_with(overrides), device, batch, precision)
            rows.append(dict(feed=f"+ {name}", precision=precision, batch=batch,
                             clips_per_s=result["clips_per_s"], mfu=mfu(result["clips_per_s"]),
                             overrides=overrides))  # fmt: skip
    # The fastest compile mode at this batch, fed as the levers left it, when it beat eager.
    faster = {mode: rate for (mode, b), rate in compiled.items() if b == batch and rate > ceiling}
    if faster:
        overrides = [*overrides, f"compile={max(faster, key=faster.__getitem__)}"]
        result = end_to_end(compose_with(overrides), device, batch, precision)
        rows.append(dict(feed=f"+ {overrides[-1]}", precision=precision, batch=batch,
                         clips_per_s=result["clips_per_s"], mfu=mfu(result["clips_per_s"]),
                         overrides=overrides))  # fmt: skip
    fed_rows = [r for r in rows if not r["feed"].startswith("network only") and r["batch"] == batch]
    best = max((r for r in fed_rows if r["precision"] == precision), key=lambda r: r["clips_per_s"])
    return {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU",
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "model": {"n_mels": cfg.model.features.n_mels, "n_layers": cfg.model.net.n_layers},
        "forward_gflops_per_clip": flops / 1e9,
        "peak_tflops": peak,
        "network_only_clips_per_s": ceiling,
        "train_clips": run["train_clips"],
        "end_to_end_ratio": fed / ceiling,
        "best": best,
        "rows": rows,
    }


def markdown(result: dict) -> str:
    lines = [
        f"{result['device']}, {result['cpus']} CPUs, torch {result['torch']}; forward "
        f"{result['forward_gflops_per_clip']:.1f} GFLOP per clip, MFU = 3 × that × clips/s / "
        f"{result['peak_tflops']} TFLOP/s.",
        "",
        "| feed | precision | batch | clips/s | MFU |",
        "|---|---|---:|---:|---:|",
    ]
    for r in result["rows"]:
        mfu = "–" if r["mfu"] is None else f"{100 * r['mfu']:.1f} %"
        lines.append(
            f"| {r['feed']} | {r['precision']} | {r['batch']} | {r['clips_per_s']:,.1f} | {mfu} |"
        )
    return "\n".join(lines) + "\n"


@hydra.main(version_base="1.3", config_path="../conf", config_name="throughput")
def main(cfg: DictConfig) -> None:
    result = measure(cfg)
    out = Path(cfg.paths.output_dir)
    (out / "throughput.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "throughput.md").write_text(markdown(result))
    table = Table(
        title=f"{result['device']}, forward {result['forward_gflops_per_clip']:.1f} GFLOP"
    )
    for column in ("feed", "precision", "batch", "clips/s", "MFU"):
        table.add_column(column, justify="right" if column in ("batch", "clips/s", "MFU") else None)
    for r in result["rows"]:
        mfu = "–" if r["mfu"] is None else f"{100 * r['mfu']:.1f} %"
        table.add_row(r["feed"], r["precision"], str(r["batch"]), f"{r['clips_per_s']:,.1f}", mfu)
    Console().print(table)
    print(f"Fastest feed: {result['best']['feed']} {result['best']['overrides']}")


if __name__ == "__main__":
    main()
