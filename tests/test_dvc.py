"""A fresh clone's plain `dvc pull` brings every corpus of the shared remote and exits 0."""

import subprocess
import sys
from pathlib import Path

import pytest

from speech_emotion_recognition import PROJECT_ROOT

REMOTE = PROJECT_ROOT.parent / "shared" / "dvc-storage"
EXPECTED = {"RAVDESS": ("*.wav", 1200), "TESS": ("*.flac", 2400), "URDU": ("*.flac", 400)}


@pytest.mark.slow
@pytest.mark.real_data
def test_plain_dvc_pull_on_a_fresh_clone(tmp_path):
    if not REMOTE.is_dir():
        pytest.fail(f"The project's DVC remote is missing: {REMOTE}")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(PROJECT_ROOT), str(clone)], check=True)
    dvc = [str(Path(sys.executable).with_name("dvc"))]
    subprocess.run([*dvc, "remote", "add", "--local", "-d", "-f", "shared", str(REMOTE)],
                   cwd=clone, check=True, capture_output=True)  # fmt: skip
    result = subprocess.run([*dvc, "pull"], cwd=clone, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    for corpus, (pattern, count) in EXPECTED.items():
        assert len(list((clone / "data" / corpus).rglob(pattern))) == count, corpus
