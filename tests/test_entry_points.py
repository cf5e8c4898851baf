"""Entry points run as a user runs them: exit status and the message that says what to do."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from speech_emotion_recognition import PROJECT_ROOT
from tests.audio import named_corpora, write

pytestmark = pytest.mark.slow


def run_script(script: str, *overrides: str, tmp_path) -> subprocess.CompletedProcess:
    """As from a user's shell: without the PROJECT_ROOT this test process has set."""
    command = [sys.executable, str(PROJECT_ROOT / script), *overrides,
               f"hydra.run.dir={tmp_path / 'run'}"]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if k != "PROJECT_ROOT"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.parametrize(
    "script",
    ["speech_emotion_recognition/evaluate.py", "scripts/export.py",
     "speech_emotion_recognition/serve.py"],
)  # fmt: skip
def test_a_missing_checkpoint_exits_2_and_says_how_to_get_one(script, tmp_path):
    result = run_script(script, f"ckpt={tmp_path / 'absent.safetensors'}", tmp_path=tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert f"Checkpoint not found: {tmp_path / 'absent.safetensors'}" in result.stderr
    assert "dvc pull" in result.stderr and "Traceback" not in result.stderr


def test_evaluate_without_the_corpus_names_it_and_the_command(small_checkpoint, tmp_path):
    result = run_script("speech_emotion_recognition/evaluate.py", f"ckpt={small_checkpoint}",
                        f"data.root={tmp_path / 'no_corpus'}", tmp_path=tmp_path)  # fmt: skip
    assert result.returncode == 1
    assert str(tmp_path / "no_corpus") in result.stderr and "dvc pull" in result.stderr


@pytest.mark.real_data  # static int8 calibrates on RAVDESS speech
def test_export_writes_onnx_and_int8_and_exits_0(small_checkpoint, tmp_path):
    onnx = tmp_path / "small.onnx"
    result = run_script("scripts/export.py", f"ckpt={small_checkpoint}", f"onnx={onnx}",
                        "int8=true", "static_int8=true", "calibration.clips=8",
                        tmp_path=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert onnx.is_file() and onnx.with_suffix(".int8.onnx").is_file()
    assert onnx.with_suffix(".qdq.onnx").is_file()
    assert "max |logit difference|" in result.stderr and "Static int8" in result.stderr


def test_download_from_a_dead_source_exits_1_with_what_to_do(tmp_path):
    dead = "http://127.0.0.1:9"
    result = run_script("scripts/download_corpus.py", "corpus=nemo",
                        f"corpus.target={tmp_path / 'nEMO'}", f"corpus.sources=[{{name: dead, "
                        f"raw_url: '{dead}'}}]", "attempts=1", tmp_path=tmp_path)  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert "dead failed: cannot fetch" in result.stderr
    assert "Rerun to resume" in result.stderr and "corpus=nemo source_dir=DIR" in result.stderr
    assert not list((tmp_path / "nEMO").glob("samples/*.wav"))


def test_importing_a_corpus_from_a_folder_runs_from_a_plain_shell(tmp_path):
    """The command `make data-multi` prints must work without the package imported first
    (it sets PROJECT_ROOT, which the configs resolve every path from)."""
    empty = tmp_path / "empty"
    empty.mkdir()
    result = run_script("scripts/download_corpus.py", "corpus=cremad", f"source_dir={empty}",
                        f"corpus.target={tmp_path / 'CREMA-D'}", tmp_path=tmp_path)  # fmt: skip
    assert result.returncode == 1, result.stderr[-2000:]
    assert "PROJECT_ROOT" not in result.stderr and "Traceback" not in result.stderr
    assert "missing from the source folder" in result.stderr


TRAINING_ONLY = ("lightning", "pytorch_lightning", "wandb", "audiomentations", "librosa",
                 "speech_emotion_recognition.data.datamodule")  # fmt: skip


def imported(importtime_log: str) -> set[str]:
    """Module names from `python -X importtime`'s lines (`import time: self | total | name`)."""
    names = set()
    for line in importtime_log.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


@pytest.mark.parametrize(("script", "output"), [("inference.py", "output"), ("listen.py", "csv")])
def test_a_prediction_never_loads_training_machinery(script, output, tmp_path):
    """The cold start of `inference.py` on one file (README: about 3.5 s) stays fast only while
    nothing of training's stack is imported, through a module or a shared Hydra config; the
    same for `listen.py`."""
    clip = PROJECT_ROOT / "data" / "RAVDESS" / "Actor_08" / "03-01-05-01-01-01-08.wav"
    script = PROJECT_ROOT / "speech_emotion_recognition" / script
    command = [sys.executable, "-X", "importtime", str(script), f"input={clip}",
               f"{output}={tmp_path / 'out.csv'}", f"hydra.run.dir={tmp_path}"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    modules = imported(result.stderr)
    assert "speech_emotion_recognition.predict.predictor" in modules
    loaded = sorted(m for m in modules if m.split(".")[0] in TRAINING_ONLY or m in TRAINING_ONLY)
    assert not loaded, f"{script.name} imported training-only modules: {loaded[:10]}"


def test_the_server_never_loads_training_machinery(tmp_path):
    from scripts.load_test import predict, running_server

    clip = PROJECT_ROOT / "data" / "RAVDESS" / "Actor_08" / "03-01-05-01-01-01-08.wav"
    with running_server(env={"PYTHONPROFILEIMPORTTIME": "1"}) as server:
        assert predict(server.url, clip).status_code == 200
        modules = imported(server.log.read_text())
    assert "speech_emotion_recognition.serving.service" in modules
    loaded = sorted(m for m in modules if m.split(".")[0] in TRAINING_ONLY or m in TRAINING_ONLY)
    assert not loaded, f"serve.py imported training-only modules: {loaded[:10]}"


def test_corpus_audit_names_broken_repeated_and_speechless_files(tmp_path):
    """scripts/audit_corpus.py as a user runs it, on a tiny nEMO with three defects added."""
    samples = named_corpora(tmp_path / "corpora", speakers_per_sex=2) / "nEMO" / "samples"
    (samples / "M10_anger_1.wav").rename(samples / "M10_anger_9.wav")
    (samples / "F10_sadness_7.wav").write_bytes((samples / "M10_anger_9.wav").read_bytes())
    (samples / "F20_fear_8.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    noise = np.random.default_rng(0).normal(0, 0.3, 48000).astype(np.float32)
    write(samples / "M20_neutral_7.wav", noise, 24000)
    out = tmp_path / "reports"
    result = run_script("scripts/audit_corpus.py", "data=nemo", f"data.root={samples}",
                        f"paths.cache_dir={tmp_path / 'cache'}", f"out_dir={out}",
                        tmp_path=tmp_path)  # fmt: skip
    assert result.returncode == 0, result.stderr
    report = json.loads((out / "nemo.json").read_text())
    assert report["clips"] == 4 * 6 + 3 and report["speakers_by_sex"] == {"F": 2, "M": 2}
    assert list(report["unreadable"]) == ["F20_fear_8.wav"]
    assert report["repeated"] == [
        {"labels": ["angry", "sad"], "paths": ["F10_sadness_7.wav", "M10_anger_9.wav"]}
    ]
    assert "M20_neutral_7.wav" in report["no_speech"]
    assert str(tmp_path) not in (out / "nemo.json").read_text() + (out / "nemo.md").read_text()


@pytest.mark.parametrize(
    ("args", "said"),
    [(["inptu=a.wav"], "no option 'inptu'; did you mean input=…?"),
     (["a.wav"], "'a.wav' is not key=value: options are given as key=value. To predict it: "
                 "input=a.wav"),
     ([], "input=… is required")],
)  # fmt: skip
def test_the_commonest_command_line_mistakes_are_named_in_words(args, said, tmp_path):
    result = run_script("speech_emotion_recognition/inference.py", *args, tmp_path=tmp_path)
    assert result.returncode == 2 and said in result.stderr
    assert "Traceback" not in result.stderr and "+inptu" not in result.stderr
