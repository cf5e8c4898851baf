"""Stage what a bare GPU machine needs for scripts/gpu_run.sh into .gpu/ (git-ignored).

python scripts/gpu_stage.py            # needs `dvc pull` (RAVDESS, TESS, URDU) and pip

A device call carries at most 64 MiB, so the inputs come in two folders, one per call:
- .gpu/base: Python 3.12 wheels of what the GPU image lacks (versions from requirements.lock),
  RAVDESS's six emotions re-encoded losslessly as FLAC, and URDU;
- .gpu/tess: TESS, whole words (all six emotions of both speakers) in sorted order, as many as
  fit under `--tess-mib`; the words left out are listed in .gpu/tess/left_out.txt.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
from collections import defaultdict
from pathlib import Path

import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]
# Missing from the GPU image (or needed at the lock's version); their needs that it lacks too.
WHEELS = [
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


def ravdess_flac(source: Path, target: Path) -> None:
    """The six emotions of this project (calm and surprised are never used), lossless FLAC."""
    from speech_emotion_recognition.data.corpora import ravdess
    from speech_emotion_recognition.emotions import EMOTIONS

    for clip in ravdess(source):
        if clip.label not in EMOTIONS:
            continue
        path = Path(clip.path)
        out = target / path.parent.name / f"{path.stem}.flac"
        out.parent.mkdir(parents=True, exist_ok=True)
        audio, rate = sf.read(path, dtype="int16")
        sf.write(out, audio, rate, format="FLAC", subtype="PCM_16")


def tess_subset(source: Path, target: Path, limit_mib: float) -> None:
    by_word: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(source.rglob("*.flac")):
        by_word[path.stem.split("_")[1]].append(path)
    used, left_out = 0, []
    for word, paths in sorted(by_word.items()):
        size = sum(p.stat().st_size for p in paths)
        if used + size > limit_mib * MIB:
            left_out.append(word)
            continue
        used += size
        for path in paths:
            out = target / "TESS" / path.relative_to(source)
            out.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(path, out)
    (target / "left_out.txt").write_text("".join(f"{w}\n" for w in left_out))
    print(f"TESS: {len(by_word) - len(left_out)} of {len(by_word)} words, {used / MIB:.1f} MiB")


def size_mib(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file()) / MIB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT / "data")
    parser.add_argument("--out", type=Path, default=ROOT / ".gpu")
    parser.add_argument("--tess-mib", type=float, default=56.0, help="TESS size limit (MiB)")
    args = parser.parse_args()
    for folder in ("base", "tess"):
        shutil.rmtree(args.out / folder, ignore_errors=True)
    base = args.out / "base"
    wheels(base / "wheels")
    ravdess_flac(args.data / "RAVDESS", base / "RAVDESS")
    shutil.copytree(args.data / "URDU", base / "URDU")
    tess_subset(args.data / "TESS", args.out / "tess", args.tess_mib)
    for folder in ("base", "tess"):
        print(f".gpu/{folder}: {size_mib(args.out / folder):.1f} MiB")


if __name__ == "__main__":
    main()
