"""Live latency on this machine: `listen.py` plays a recording in real time for each model, and
the time from the end of each window's audio to its event goes into one table.

    python scripts/stream_latency.py [OUT_DIR]     # default: reports/latency

The recording is scripts/recordings.py's `talk` for seeds 0 and 1 (about 98 s: short sentences,
pauses, a long region of overlapping windows). Windows that waited for the file rules (a
region's last window comes once the merge gap of silence has followed it) are counted apart
from those their own audio settled (detection, features and network only). Writes
OUT_DIR/<model>.csv (listen.py's events), latency.json and latency.md. Run it on an idle
machine.
"""

from __future__ import annotations

import csv
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from hydra import compose, initialize_config_dir

from scripts.recordings import RATE, talk
from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.listen import run
from speech_emotion_recognition.predict.predictor import (
    engine_file,
    engine_name,
    resolve_device,
    resolve_precision,
)

MODELS = ("ser-mid-multi", "ser-small-multi", "ser-full-multi")


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor()


def figures(csv_path: Path) -> dict:
    """Latency of every window, apart for those that waited for the pause rule."""
    with open(csv_path, newline="") as f:
        windows = [r for r in csv.DictReader(f) if r["type"] == "window"]
    latency = np.array([float(r["latency_ms"]) for r in windows])
    waited = np.array([float(r["waited_ms"]) for r in windows])
    rule = waited > 0
    return {
        "windows": len(windows),
        "median_ms": float(np.median(latency)),
        "p90_ms": float(np.percentile(latency, 90)),
        "max_ms": float(latency.max()),
        "own_audio_windows": int((~rule).sum()),
        "own_audio_median_ms": float(np.median(latency[~rule])),
        "own_audio_max_ms": float(latency[~rule].max()),
        "rule_windows": int(rule.sum()),
        "rule_latency_ms": [float(latency[rule].min()), float(latency[rule].max())]
        if rule.any() else None,
    }  # fmt: skip


def markdown(results: dict) -> str:
    lines = [
        "| model | engine | windows | median | 90th pct | max | "
        "settled by their own audio: n, median / max | waiting for the pause rule: n, range |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for model, r in results["models"].items():
        rule = r["rule_latency_ms"]
        rule = f"{r['rule_windows']}, {rule[0]:.0f}–{rule[1]:.0f} ms" if rule else "0"
        lines.append(
            f"| {model} | {r['engine']} | {r['windows']} | {r['median_ms']:.0f} ms | "
            f"{r['p90_ms']:.0f} ms | "
            f"{r['max_ms']:.0f} ms | {r['own_audio_windows']}, {r['own_audio_median_ms']:.0f} / "
            f"{r['own_audio_max_ms']:.0f} ms | {rule} |"
        )
    return "\n".join(lines) + f"\n\n{results['machine']}; {results['recording']}.\n"


def main(out_dir: Path) -> dict:
    out_dir.mkdir(parents=True, exist_ok=True)
    results = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores, engine and precision auto",
        "recording": "scripts/recordings.py talk(0) + talk(1), played in real time "
        "in 100 ms chunks",
        "models": {},
    }
    with tempfile.TemporaryDirectory() as folder:
        wav = Path(folder) / "talk.wav"
        sf.write(wav, np.concatenate([talk(0), talk(1)]), RATE, subtype="FLOAT")
        with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
            for model in MODELS:
                events = out_dir / f"{model}.csv"
                ckpt = PROJECT_ROOT / "models" / f"{model}.safetensors"
                overrides = [f"input={wav}", f"csv={events}", "realtime=true", f"ckpt={ckpt}"]
                cfg = compose("listen", [*overrides, "chunk_seconds=0.1"])
                if run(cfg) != 0:
                    sys.exit(f"listen.py failed for {model}")
                device = resolve_device(cfg.device)  # listen.py's engine, named
                engine = engine_name(
                    engine_file(ckpt, cfg.engine, device, cfg.onnx),
                    resolve_precision(cfg.precision, device),
                )
                results["models"][model] = {"engine": engine, **figures(events)}
    (out_dir / "latency.json").write_text(json.dumps(results, indent=2) + "\n")
    (out_dir / "latency.md").write_text(markdown(results))
    return results


if __name__ == "__main__":
    if len(sys.argv) > 2:
        sys.exit("usage: python scripts/stream_latency.py [OUT_DIR]")
    print(markdown(main(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/latency"))))
