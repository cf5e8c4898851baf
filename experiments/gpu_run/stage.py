"""Stage what a bare GPU machine needs for experiments/gpu_run/run.sh into .gpu/ (git-ignored).

python experiments/gpu_run/stage.py              # needs `make data-multi` and nEMO (docs/data.md)
python experiments/gpu_run/stage.py --check 200  # and what the transport changes, on 200 clips
python experiments/gpu_run/stage.py --check 200 --check-only  # the measurement alone

A device call carries at most 64 MiB, so everything is packed into .gpu/part1, part2, …, each
under --part-mib, carried one per call in order: part1 starts with the Python 3.12 wheels of
what the GPU image lacks (versions from requirements.lock); the parts hold `data/<corpus>/…` in
the corpora's own layout, which gpu_run.sh merges into one data folder as they arrive.

The audio of data=multi_nemo (CREMA-D, RAVDESS's six emotions, TESS, nEMO's five: `labels=six`
leaves its surprised out) and of augmentation=batch's
recorded noise travels as Ogg Opus at 16 kHz, --opus-level 0.8 (about 60 kbit/s; 0.85 and up
switch to a narrower coding that changes the log-mel four times as much): for transport only,
the GPU machine's data cache decodes it like any file. `--check` measures the change on a
sample: the default release's predictions and log-mel features, original vs transported.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import soundfile as sf
import torch

from speech_emotion_recognition.audio import audio_files, crop_or_pad, load_audio
from speech_emotion_recognition.data.corpora import cremad, nemo, ravdess, tess
from speech_emotion_recognition.emotions import EMOTIONS
from speech_emotion_recognition.predict.predictor import load_classifier

ROOT = Path(__file__).resolve().parents[2]
# Missing from the GPU image (or needed at the lock's version); their needs that it lacks too.
WHEELS = [
    "av",  # FFmpeg, the project's decoder (preprocessing.decode): 34 MB of part1
    "hydra-core",
    "omegaconf",
    "antlr4-python3-runtime",
    "audiomentations",
    "numpy-minmax",
    "numpy-rms",
    "python-stretch",
    "soxr",
    "librosa",
    "audioread",
    "decorator",
    "pooch",
    "platformdirs",
    "soundfile",
    "cffi",
    "pycparser",
]
PLATFORMS = [
    "manylinux_2_28_x86_64",
    "manylinux_2_27_x86_64",
    "manylinux_2_24_x86_64",
    "manylinux_2_17_x86_64",
    "manylinux2014_x86_64",
    "manylinux1_x86_64",
    "any",
]
MIB = 2**20
RATE = 16000
RELEASE = "ser-small-multi-v2.safetensors"  # whose predictions --check compares (the default then)
NOISE_DIRS = ("NOISE/urbansound8k/fold1", "NOISE/speech_commands")  # conf/augmentation/batch.yaml
ORDER = ("NOISE", "RAVDESS", "TESS", "nEMO", "CREMA-D")  # what travels first: the largest last
SEX_FILES = ("CREMA-D/VideoDemographics.csv", "nEMO/data.tsv")  # for the speaker splits


def locked_versions() -> dict[str, str]:
    text = (ROOT / "requirements.lock").read_text()
    return {m[1].lower(): m[2] for m in re.finditer(r"^([A-Za-z0-9_.-]+)==(\S+)", text, re.M)}


def wheels(target: Path) -> None:
    """Binary wheels for CPython 3.12 on x86-64 Linux; a source-only package is built here."""
    target.mkdir(parents=True, exist_ok=True)
    versions = locked_versions()
    pip = ["python3", "-m", "pip", "--disable-pip-version-check", "-q"]  # uv venvs have no pip
    for name in WHEELS:
        spec = f"{name}=={versions[name]}"
        platforms = [arg for p in PLATFORMS for arg in ("--platform", p)]
        download = [*pip, "download", "--no-deps", "--only-binary=:all:", "-d", str(target)]
        tags = ["--python-version", "3.12", "--implementation", "cp", *platforms]
        if subprocess.run([*download, *tags, spec], capture_output=True).returncode != 0:
            subprocess.run([*pip, "wheel", "--no-deps", "-w", str(target), spec], check=True)


def speech_files(data: Path) -> list[Path]:
    """The clips data=multi_nemo trains on with labels=six."""
    return [
        *sorted(Path(c.path) for c in ravdess(data / "RAVDESS") if c.label in EMOTIONS),
        *sorted(Path(c.path) for c in tess(data / "TESS")),
        *sorted(Path(c.path) for c in nemo(data / "nEMO" / "samples") if c.label in EMOTIONS),
        *sorted(Path(c.path) for c in cremad(data / "CREMA-D" / "AudioWAV")),
    ]


def noise_files(data: Path) -> list[Path]:
    """The recorded noise augmentation=batch mixes in."""
    return [p for folder in NOISE_DIRS for p in audio_files(data / folder)]


def opus(source: Path, target: Path, level: float) -> None:
    """Decoded as the data cache decodes it (mono, 16 kHz), then Ogg Opus."""
    target.parent.mkdir(parents=True, exist_ok=True)
    sf.write(target, load_audio(str(source), RATE), RATE, format="OGG", subtype="OPUS",
             compression_level=level)  # fmt: skip


def pack(data: Path, out: Path, level: float, part_mib: float) -> list[Path]:
    """Encode, then fill part1, part2, … in order, each under `part_mib` (wheels included):
    the noise first, CREMA-D last. Each part's PART file says `n total` on its first line,
    then the folders (ORDER) whose last file it holds: gpu_run.sh
    trains on all of them only once every part has come, and benchmarks on what is whole."""
    encoded = out / "encoded"
    files: list[tuple[Path, Path]] = []  # (file to move, its path below data/)
    for source in [*noise_files(data), *speech_files(data)]:
        relative = source.relative_to(data).with_suffix(".ogg")
        opus(source, encoded / relative, level)
        files.append((encoded / relative, relative))
    csvs = [(data / name, Path(name)) for name in SEX_FILES if (data / name).is_file()]
    files = sorted(csvs + files, key=lambda f: ORDER.index(f[1].parts[0]))  # stable
    parts, whole = [out / "part1"], [[]]
    used = size_mib(parts[0])  # the wheels
    for i, (path, relative) in enumerate(files):
        size = path.stat().st_size / MIB
        if used + size > part_mib:
            parts.append(out / f"part{len(parts) + 1}")
            whole.append([])
            used = 0.0
        target = parts[-1] / "data" / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        (shutil.copy2 if path.is_relative_to(data) else shutil.move)(path, target)
        used += size
        folder = relative.parts[0]
        if i + 1 == len(files) or files[i + 1][1].parts[0] != folder:
            whole[-1].append(folder)
    shutil.rmtree(encoded)
    for n, (part, folders) in enumerate(zip(parts, whole, strict=True), 1):
        (part / "PART").write_text("".join(f"{line}\n" for line in [f"{n} {len(parts)}", *folders]))
    return parts


@torch.inference_mode()
def check(data: Path, scratch: Path, level: float, n: int, release: Path) -> dict:
    """The release's probabilities and log-mel features on `n` clips, original vs transported."""
    model = load_classifier(release)
    carried = scratch / "check.ogg"
    features, probabilities = ([], []), ([], [])
    for path in random.Random(0).sample(speech_files(data), n):
        opus(path, carried, level)
        for i, source in enumerate((path, carried)):
            audio = crop_or_pad(load_audio(str(source), RATE), 5 * RATE)
            features[i].append(model.features(torch.from_numpy(audio)[None]))
            probabilities[i].append(torch.softmax(model.net(features[i][-1]), -1))
    carried.unlink()
    p0, p1 = (torch.cat(p) for p in probabilities)
    f0, f1 = (torch.cat(f) for f in features)
    difference = (p1 - p0).abs().max(dim=1).values
    return {
        "clips": n,
        "opus_level": level,
        "release": release.name,
        "top1_agreement": round((p0.argmax(1) == p1.argmax(1)).float().mean().item(), 4),
        "max_probability_difference_mean": round(difference.mean().item(), 4),
        "max_probability_difference_p95": round(difference.quantile(0.95).item(), 4),
        "log_mel_mean_abs_difference": round((f1 - f0).abs().mean().item(), 4),
        "log_mel_sd": round(f0.std().item(), 4),
    }


def size_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / MIB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu")
    parser.add_argument("--part-mib", type=float, default=60.0, help="size limit of a part")
    parser.add_argument("--opus-level", type=float, default=0.8)
    parser.add_argument("--no-wheels", action="store_true", help="(tests) skip pip")
    parser.add_argument("--check", type=int, default=0, metavar="N", help="measure on N clips")
    parser.add_argument("--check-only", action="store_true", help="measure, pack nothing")
    parser.add_argument("--release", type=Path, default=ROOT / "models" / RELEASE)
    args = parser.parse_args()
    if not args.check_only:
        for old in args.out.glob("part*"):
            shutil.rmtree(old)
        if not args.no_wheels:
            wheels(args.out / "part1" / "wheels")
        for part in pack(args.data, args.out, args.opus_level, args.part_mib):
            print(f"{part}: {size_mib(part):.1f} MiB")
    if args.check:
        args.out.mkdir(parents=True, exist_ok=True)
        result = check(args.data, args.out, args.opus_level, args.check, args.release)
        (args.out / "transport_check.json").write_text(json.dumps(result, indent=2) + "\n")
        print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
