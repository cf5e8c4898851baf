"""experiments/gpu_run/stage.py packs the corpora into parts, and experiments/gpu_run/run.sh
dry-runs on the
CPU with them arriving one call at a time, as on the GPU machine."""

import csv
import json
import os
import shutil
import subprocess
import sys
import tarfile

import numpy as np
import pytest

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.audio import audio_files
from speech_emotion_recognition.data.clips import read_manifest
from speech_emotion_recognition.data.teacher import clip_keys
from tests.audio import named_corpora, write

SCRIPT = PROJECT_ROOT / "experiments" / "gpu_run" / "run.sh"


def corpora_with_noise(root):
    corpora = named_corpora(root)
    rng = np.random.default_rng(0)
    for folder in ("urbansound8k/fold1", "speech_commands"):
        sound = 0.1 * rng.standard_normal(3 * 16000).astype(np.float32)  # 6 s: over a window
        write(corpora / "NOISE" / folder / "sound.wav", sound, 16000)
    return corpora


@pytest.fixture(scope="module")
def packed(tmp_path_factory):
    """Tiny corpora and what gpu_stage.py packs of them in parts of 0.1 MiB (read-only)."""
    root = tmp_path_factory.mktemp("stage")
    corpora = corpora_with_noise(root / "corpora")
    stage = PROJECT_ROOT / "experiments" / "gpu_run" / "stage.py"
    command = [sys.executable, str(stage), "--no-wheels"]
    result = subprocess.run(
        [*command, "--data", str(corpora), "--out", str(root / "packed"), "--part-mib", "0.1"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    return corpora, sorted((root / "packed").glob("part*"))


@pytest.mark.slow
def test_gpu_run_dry_run_takes_the_parts_in_turn_trains_and_packs(packed, tmp_path):
    corpora, parts = packed
    assert len(parts) >= 3
    machine, out = tmp_path / "machine", tmp_path / "out"
    env = {
        **os.environ,
        "DRY_RUN": "1",
        "GPU_STAGE": str(machine),
        "OUT": str(out),
        "PYTHON": sys.executable,
        "TRAIN_SECONDS": "30",
    }

    def call(mode, part):
        shutil.copytree(part, machine / part.name)  # what the device tool carries
        return subprocess.run(
            ["bash", str(SCRIPT), mode], env=env, capture_output=True, text=True, timeout=600
        )

    # The benchmark runs once the noise and RAVDESS have come whole, and not before.
    bench_at = next(i for i, p in enumerate(parts) if "RAVDESS" in (p / "PART").read_text())
    assert bench_at > 0
    result = call("bench", parts[0])
    assert result.returncode == 2 and "bench needs NOISE and RAVDESS whole" in result.stderr
    for part in parts[1:bench_at]:
        assert call("carry", part).returncode == 0
    result = call("bench", parts[bench_at])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "whole so far: NOISE RAVDESS;" in result.stdout  # CREMA-D is left out
    result = call("train", parts[bench_at + 1])  # too early: later parts have not come
    assert result.returncode == 2
    assert f"not arrived: {' '.join(p.name for p in parts[bench_at + 2 :])}" in result.stderr
    for part in parts[bench_at + 2 : -1]:
        assert call("carry", part).returncode == 0
    path = machine / "runs" / "throughput" / "throughput.json"
    bench = json.loads(path.read_text())  # no data lever, and a compiled network, must work too
    bench["best"]["overrides"] = ["compile=reduce-overhead"]
    path.write_text(json.dumps(bench))
    result = call("train", parts[-1])
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    bench = json.loads((out / "throughput.json").read_text())
    feeds = {r["feed"] for r in bench["rows"]}
    compiled = "network only, compile=reduce-overhead"
    assert feeds >= {"network only", compiled, "DataLoader (as configured)"}
    # only workers, memory and compile: a lever that swapped augmentations would change the recipe
    assert feeds <= {"network only", compiled, "DataLoader (as configured)", "+ more_workers",
                     "+ in_memory", "+ compile=reduce-overhead"}  # fmt: skip
    # the compiled network is fed only when it beat eager
    rate = {r["feed"]: r["clips_per_s"] for r in bench["rows"] if r["batch"] == 8}
    assert ("+ compile=reduce-overhead" in feeds) == (rate[compiled] > rate["network only"])
    assert all(r["clips_per_s"] > 0 for r in bench["rows"])
    assert "compile=reduce-overhead" in (out / "train.log").read_text()
    weights = sorted(out.glob("model.safetensors.part-*"))
    assert weights and all(p.stat().st_size < 16 * 2**20 for p in weights)
    with tarfile.open(out / "run.tar.gz") as tar:
        names = set(tar.getnames())
        logits = list(
            csv.DictReader(tar.extractfile("teacher_logits.csv").read().decode().splitlines())
        )
    assert {"metrics.json", "splits/train.csv", "csv/metrics.csv", "throughput"} <= names
    assert "Training for" in (out / "train.log").read_text()
    # The teacher's logits: every training clip of all three corpora, keyed as the originals here.
    train = read_manifest(machine / "runs" / "train" / "splits" / "train.csv")
    assert {c.corpus for c in train} == {"cremad", "ravdess", "tess", "nemo"}
    keys = sorted(row["key"] for row in logits)
    assert keys == sorted(clip_keys([c.path for c in train], machine / "data"))
    assert set(keys) <= set(clip_keys(audio_files(corpora), corpora))
    assert all(np.isfinite(float(row["sad"])) for row in logits)


@pytest.mark.slow
def test_the_parts_keep_under_their_limit_and_hold_every_file(packed):
    corpora, parts = packed
    carried = sorted(
        str(p.relative_to(part / "data").with_suffix(""))
        for part in parts
        for p in (part / "data").rglob("*.ogg")
    )
    # data=multi_nemo's corpora with labels=six and the recorded noise; not URDU, nor surprise
    audio = [p for p in audio_files(corpora) if "URDU" not in p.parts and "surprised" not in p.name]
    assert carried == sorted(clip_keys(audio, corpora))
    assert any("NOISE" in key for key in carried)
    whole = []  # (part number, folder that part completes)
    for n, part in enumerate(parts, 1):
        first, *folders = (part / "PART").read_text().splitlines()
        assert first == f"{n} {len(parts)}"
        whole += [(n, folder) for folder in folders]
        size = sum(p.stat().st_size for p in (part / "data").rglob("*") if p.is_file())
        assert size <= 0.1 * 2**20  # a part closes before the file that would overflow it
    assert [f for _, f in whole] == ["NOISE", "RAVDESS", "TESS", "nEMO", "CREMA-D"]
    assert any((part / "data" / "nEMO" / "data.tsv").is_file() for part in parts)  # the sexes
    for m, folder in whole:  # no file of a folder travels after the part that says it is whole
        assert not any((p / "data" / folder).exists() for p in parts[m:])
    assert any((p / "data" / "CREMA-D" / "VideoDemographics.csv").is_file() for p in parts)
