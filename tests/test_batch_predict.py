"""batch_predict.py: two CPU processes (DDP, gloo) give inference.py's rows, and a restart
skips what is already written."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys

import pyarrow.parquet as pq
import pytest

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.emotions import EMOTIONS
from tests.test_speech import RAVDESS

pytestmark = [pytest.mark.slow, pytest.mark.real_data]
SCRIPT = PROJECT_ROOT / "speech_emotion_recognition" / "batch_predict.py"


def rows_of(path) -> list[dict]:
    with open(path, newline="") as f:
        return sorted(csv.DictReader(f), key=lambda r: r["path"])


def run(*overrides: str, tmp_path) -> subprocess.CompletedProcess:
    command = [sys.executable, str(SCRIPT), *overrides, "precision=32", "num_workers=0",
               f"hydra.run.dir={tmp_path / 'hydra'}"]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600)


def test_two_processes_give_the_rows_of_inference_and_resume(tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for clip in sorted((RAVDESS / "Actor_08").glob("*.wav"))[:12]:
        shutil.copy(clip, folder / clip.name)
    (folder / "broken.wav").write_text("not audio")
    single = tmp_path / "single.csv"
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "speech_emotion_recognition" / "inference.py"),
         f"input={folder}", f"output={single}", "precision=32",
         f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    output = tmp_path / "out" / "emotions.parquet"
    ddp = ("trainer.accelerator=cpu", "trainer.devices=2", "trainer.strategy=ddp")
    result = run(f"input={folder}", f"output={output}", *ddp, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    shards = sorted((tmp_path / "out" / "emotions.parquet.shards").glob("rank-*.csv"))
    assert [s.name for s in shards] == ["rank-0.csv", "rank-1.csv"]
    assert all(rows_of(s) for s in shards), "each process predicted some files"
    theirs = rows_of(single)
    mine = pq.read_table(output).to_pylist()
    assert [r["path"] for r in mine] == [r["path"] for r in theirs] and len(mine) == 13
    for a, b in zip(mine, theirs, strict=True):
        assert (a["label"], a["error"]) == (b["label"], b["error"]), a["path"]
        for column in ("confidence", *EMOTIONS):
            if b[column]:
                assert float(a[column]) == pytest.approx(float(b[column]), abs=1e-5), column

    # adapt=speaker over both ranks' rows equals inference.py's in one process
    adapted = tmp_path / "adapted.csv"
    done = subprocess.run(
        [sys.executable, str(PROJECT_ROOT / "speech_emotion_recognition" / "inference.py"),
         f"input={folder}", f"output={adapted}", "precision=32", "adapt=speaker",
         f"hydra.run.dir={tmp_path}"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    spread = tmp_path / "out" / "adapted.csv"
    result = run(f"input={folder}", f"output={spread}", "adapt=speaker", *ddp, tmp_path=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    one, two = rows_of(adapted), rows_of(spread)
    assert list(two[0]) == list(one[0]) and "unadapted_label" in two[0]
    for a, b in zip(two, one, strict=True):
        assert (a["label"], a["unadapted_label"], a["adapt_note"]) == (
            b["label"], b["unadapted_label"], b["adapt_note"])  # fmt: skip
        for column in EMOTIONS:
            if b[column]:
                assert float(a[column]) == pytest.approx(float(b[column]), abs=1e-5), column

    # a restart predicts only what no shard holds yet and ends with the same rows
    kept = rows_of(shards[0])
    shards[1].unlink()
    again = run(f"input={folder}", f"output={output}", tmp_path=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"13 files, {len(kept)} already in" in again.stderr
    assert pq.read_table(output).to_pylist() == mine
