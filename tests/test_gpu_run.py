"""scripts/gpu_run.sh dry-runs on the CPU with the file layout of the GPU machine."""

import json
import os
import shutil
import subprocess
import sys
import tarfile

import pytest

from speech_emotion_recognition import PROJECT_ROOT
from tests.audio import named_corpora

SCRIPT = PROJECT_ROOT / "scripts" / "gpu_run.sh"


@pytest.mark.slow
def test_gpu_run_dry_run_benchmarks_trains_and_packs(tmp_path):
    corpora = named_corpora(tmp_path / "corpora")
    stage, out = tmp_path / "stage", tmp_path / "out"
    for name, part in (("RAVDESS", "base"), ("URDU", "base"), ("TESS", "tess")):
        shutil.copytree(corpora / name, stage / part / name)
    env = {
        **os.environ,
        "DRY_RUN": "1",
        "GPU_STAGE": str(stage),
        "OUT": str(out),
        "PYTHON": sys.executable,
        "TRAIN_SECONDS": "30",
    }
    for mode in ("bench", "train"):
        if mode == "train":  # a feed that needs no lever must work too (an empty override list)
            path = stage / "runs" / "throughput" / "throughput.json"
            bench = json.loads(path.read_text())
            bench["best"]["overrides"] = []
            path.write_text(json.dumps(bench))
        result = subprocess.run(
            ["bash", str(SCRIPT), mode], env=env, capture_output=True, text=True, timeout=600
        )
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    bench = json.loads((out / "throughput.json").read_text())
    assert {r["feed"] for r in bench["rows"]} >= {"network only", "DataLoader (as configured)"}
    assert all(r["clips_per_s"] > 0 for r in bench["rows"])
    assert bench["train_clips"] > 0
    parts = sorted(out.glob("model.safetensors.part-*"))
    assert parts and all(p.stat().st_size < 16 * 2**20 for p in parts)
    with tarfile.open(out / "run.tar.gz") as tar:
        names = set(tar.getnames())
    assert {"metrics.json", "splits/train.csv", "csv/metrics.csv", "throughput"} <= names
    assert "Training for" in (out / "train.log").read_text()
