import csv
import json
import shutil
import subprocess
import sys

import numpy as np
import pytest
from omegaconf import OmegaConf

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.inference import run
from speech_emotion_recognition.predict.adapt import adapted_columns
from speech_emotion_recognition.predict.predictor import (
    columns,
    load_classifier,
    onnx_class_names,
    segment_columns,
)
from speech_emotion_recognition.predict.speech import spans
from speech_emotion_recognition.training.module import EmotionRecognitionModule
from tests.audio import CLASS_PITCH_HZ, tone, write
from tests.conftest import SEPARABLE

SCRIPT = PROJECT_ROOT / "speech_emotion_recognition" / "inference.py"


@pytest.fixture(scope="module")
def recordings(tmp_path_factory):
    """Real-world mess: every rate, stereo, very short and very long, broken files, sub-folders."""
    root = tmp_path_factory.mktemp("recordings")
    rng = np.random.default_rng(0)
    for rate in (8000, 16000, 22050, 44100, 48000):
        write(root / f"rate_{rate}.wav", tone(CLASS_PITCH_HZ[0], 2.0, rate, rng), rate)
    write(root / "nested" / "deeper" / "stereo.flac", tone(300, 3.0, 16000, rng, channels=2), 16000)
    write(root / "nested" / "short.ogg", tone(200, 0.2, 16000, rng), 16000)
    write(root / "nested" / "speech.mp3", tone(250, 2.5, 44100, rng), 44100)
    write(root / "long.wav", tone(150, 60.0, 16000, rng), 16000)
    (root / "empty.wav").write_bytes(b"")
    (root / "notes.wav").write_text("this is a text file, not audio\n")
    (root / "corrupt.wav").write_bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + rng.bytes(64))
    write(root / "silent.wav", np.zeros((16000, 1), np.float32), 16000)
    (root / "readme.txt").write_text("ignored: not an audio extension")
    return root


BAD = {"empty.wav", "notes.wav", "corrupt.wav", "silent.wav"}
N_FILES = 13


def config(**values):
    """conf/inference.yaml; the synthetic tones are not speech to silero-vad, so by default the
    tests predict whole files (speech.vad=false) and the speech tests switch it on."""
    base = OmegaConf.load(PROJECT_ROOT / "conf" / "inference.yaml")
    base.pop("defaults")
    base.speech = OmegaConf.load(PROJECT_ROOT / "conf" / "speech" / "default.yaml")
    base.speech.vad = False
    base.ckpt = None
    base.num_workers = 2
    return OmegaConf.merge(base, values)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_windows_cover_each_speech_region():
    short_file = spans([(20, 80)], n_samples=100, window=500, hop=250)
    assert [(s.start, s.speech_start, s.speech_end) for s in short_file] == [(0, 20, 80)]
    centred = spans([(1000, 1200)], n_samples=3000, window=500, hop=250)
    assert [(s.start, s.speech_start, s.speech_end) for s in centred] == [(850, 1000, 1200)]
    at_the_end = spans([(2900, 3000)], n_samples=3000, window=500, hop=250)
    assert at_the_end[0].start == 2500
    long_region = spans([(0, 1200)], n_samples=1200, window=500, hop=250)
    assert [s.start for s in long_region] == [0, 250, 500, 700]
    assert all(s.speech_samples == 500 for s in long_region)


@pytest.mark.slow
def test_folder_to_csv_with_errors_and_timeline(recordings, small_checkpoint, tmp_path):
    output = tmp_path / "predictions.csv"
    status = run(
        config(input=str(recordings), ckpt=str(small_checkpoint), output=str(output), segments=True)
    )
    assert status == 0
    rows = read_csv(output)
    assert tuple(rows[0].keys()) == columns(SEPARABLE)
    assert len(rows) == N_FILES
    by_name = {row["path"].rsplit("/", 1)[-1]: row for row in rows}
    for name, row in by_name.items():
        if name in BAD:
            assert row["error"] and not row["label"], name
            continue
        assert not row["error"], (name, row["error"])
        probabilities = [float(row[e]) for e in SEPARABLE]
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-5)
        assert row["label"] == SEPARABLE[int(np.argmax(probabilities))]
        assert float(row["confidence"]) == pytest.approx(max(probabilities))
    assert "no speech" in by_name["silent.wav"]["error"]
    assert "empty" in by_name["empty.wav"]["error"]

    timeline = read_csv(tmp_path / "predictions.segments.csv")
    assert tuple(timeline[0].keys()) == segment_columns(SEPARABLE)
    long_windows = [r for r in timeline if r["path"].endswith("long.wav")]
    # 60 s in 5 s windows every 2.5 s
    assert [float(r["start"]) for r in long_windows] == [2.5 * i for i in range(23)]
    assert float(long_windows[-1]["end"]) == 60.0


def test_a_png_timeline_for_a_folder_is_refused(recordings, small_checkpoint, tmp_path):
    png = tmp_path / "x.png"
    status = run(config(input=str(recordings), ckpt=str(small_checkpoint), timeline=str(png)))
    assert status == 2 and not png.exists()


@pytest.mark.slow
def test_json_output_and_single_file(recordings, small_checkpoint, tmp_path):
    output = tmp_path / "one.json"
    target = recordings / "rate_44100.wav"
    assert run(config(input=str(target), ckpt=str(small_checkpoint), output=str(output))) == 0
    (row,) = json.loads(output.read_text())
    assert list(row) == list(columns(SEPARABLE))
    assert row["path"] == str(target)
    assert sum(row[e] for e in SEPARABLE) == pytest.approx(1.0, abs=1e-5)


@pytest.mark.slow
def test_released_weights_match_the_checkpoint(recordings, small_checkpoint, tmp_path):
    module = EmotionRecognitionModule.load_from_checkpoint(small_checkpoint, map_location="cpu")
    released = module.save_weights(tmp_path / "small.safetensors")
    assert released.stat().st_size < small_checkpoint.stat().st_size / 2
    outputs = {}
    for name, ckpt in (("ckpt", small_checkpoint), ("released", released)):
        out = tmp_path / f"{name}.csv"
        cfg = config(input=str(recordings / "nested"), ckpt=str(ckpt), output=str(out))
        assert run(OmegaConf.merge(cfg, {"precision": "32"})) == 0
        outputs[name] = np.array([[float(r[e]) for e in SEPARABLE] for r in read_csv(out)])
    # fp16 weights move probabilities by about 2e-4; labels must not change
    np.testing.assert_allclose(outputs["released"], outputs["ckpt"], atol=1e-3)
    assert (outputs["released"].argmax(1) == outputs["ckpt"].argmax(1)).all()


@pytest.mark.slow
def test_nothing_to_predict_fails_with_a_message(tmp_path):
    (tmp_path / "empty_folder").mkdir()
    ckpt = tmp_path / "none.ckpt"
    assert run(config(input=str(tmp_path / "absent"), ckpt=str(ckpt))) == 2
    result = subprocess.run(
        [
            sys.executable,
            str(SCRIPT),
            f"input={tmp_path}",
            f"ckpt={ckpt}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2
    assert "Checkpoint not found" in result.stderr
    assert "train.py" in result.stderr


@pytest.mark.slow
def test_cli_from_inside_the_package_prints_a_table(recordings, small_checkpoint, tmp_path):
    result = subprocess.run(
        [
            sys.executable,
            "inference.py",
            f"input={recordings / 'nested'}",
            f"ckpt={small_checkpoint}",
            f"hydra.run.dir={tmp_path / 'run'}",
            "speech.vad=false",
        ],
        cwd=SCRIPT.parent,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "stereo.flac" in result.stdout
    assert "short.ogg" in result.stdout


@pytest.mark.slow
def test_onnx_runtime_agrees_with_pytorch(recordings, small_checkpoint, tmp_path):
    from scripts.export import export_onnx

    onnx_path = export_onnx(load_classifier(small_checkpoint), tmp_path / "small.onnx", opset=17)
    assert onnx_class_names(str(onnx_path)) == list(SEPARABLE)  # the labels travel with it
    outputs = {}
    for engine in ("torch", "onnx"):
        out = tmp_path / f"{engine}.csv"
        cfg = config(
            input=str(recordings),
            ckpt=str(small_checkpoint),
            output=str(out),
            engine=engine,
            onnx=str(onnx_path),
            precision="32",  # ONNX Runtime runs fp32: compare it with fp32 torch
        )
        assert run(cfg) == 0
        outputs[engine] = read_csv(out)
    assert [r["path"] for r in outputs["onnx"]] == [r["path"] for r in outputs["torch"]]
    for torch_row, onnx_row in zip(outputs["torch"], outputs["onnx"], strict=True):
        assert onnx_row["error"] == torch_row["error"]
        if not torch_row["error"]:
            for emotion in SEPARABLE:
                assert abs(float(onnx_row[emotion]) - float(torch_row[emotion])) < 1e-4


@pytest.mark.slow
def test_engine_auto_runs_the_onnx_file_a_release_ships(
    recordings, small_checkpoint, tmp_path, monkeypatch
):
    """A release names its preferred CPU engine by shipping <name>.qdq.onnx beside its weights;
    without one, or on a CPU whose int8 products saturate, engine=auto is torch."""
    from scripts.export import export_onnx

    release = tmp_path / "release" / "small.ckpt"
    release.parent.mkdir()
    shutil.copy(small_checkpoint, release)
    outputs = {}
    for name, engine in (
        ("torch", "torch"), ("auto_alone", "auto"), ("auto_avx2", "auto"), ("auto_shipped", "auto")
    ):  # fmt: skip
        vnni = name == "auto_shipped"  # only auto_shipped runs on a CPU whose int8 matches fp32
        monkeypatch.setattr(
            "speech_emotion_recognition.predict.predictor.int8_matches_fp32", lambda v=vnni: v
        )
        if name == "auto_avx2":  # any ONNX of the model will do to see which one runs
            export_onnx(load_classifier(release), release.with_suffix(".qdq.onnx"), opset=17)
        out = tmp_path / f"{name}.csv"
        cfg = config(input=str(recordings), ckpt=str(release), output=str(out), engine=engine,
                     precision="32")  # fmt: skip
        assert run(cfg) == 0
        outputs[name] = read_csv(out)
    assert outputs["auto_alone"] == outputs["torch"] == outputs["auto_avx2"]
    differ = [row != torch_row for row, torch_row in zip(outputs["auto_shipped"],
              outputs["torch"], strict=True) if not row["error"]]  # fmt: skip
    assert any(differ)  # ONNX Runtime's fp32 differs from torch's in the last digits


@pytest.mark.slow
def test_paths_are_reported_as_given(recordings, small_checkpoint, tmp_path, monkeypatch):
    monkeypatch.chdir(recordings.parent)
    output = tmp_path / "relative.csv"
    cfg = config(input=recordings.name + "/nested", ckpt=str(small_checkpoint), output=str(output))
    assert run(cfg) == 0
    assert all(row["path"].startswith(f"{recordings.name}/nested/") for row in read_csv(output))


@pytest.mark.slow
def test_export_fails_when_onnx_and_torch_disagree(small_checkpoint, tmp_path, monkeypatch):
    import scripts.export as export

    monkeypatch.setattr(export, "MAX_LOGIT_DIFFERENCE", -1.0)  # any difference is too much
    with pytest.raises(RuntimeError, match="differ from torch"):
        export.export_onnx(load_classifier(small_checkpoint), tmp_path / "bad.onnx", opset=17)


@pytest.mark.slow
def test_empty_or_all_broken_folders_exit_1_with_a_message(small_checkpoint, tmp_path, caplog):
    (tmp_path / "empty").mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "a.wav").write_bytes(b"")
    (broken / "b.flac").write_text("not audio")
    assert run(config(input=str(tmp_path / "empty"), ckpt=str(small_checkpoint))) == 1
    assert "No wav, flac, ogg or mp3 files" in caplog.text
    out = tmp_path / "broken.csv"
    assert run(config(input=str(broken), ckpt=str(small_checkpoint), output=str(out))) == 1
    assert "No file could be predicted" in caplog.text
    assert all(row["error"] for row in read_csv(out))


@pytest.mark.slow
def test_a_bad_engine_choice_exits_2_with_a_message(recordings, small_checkpoint, tmp_path, caplog):
    given = {"input": str(recordings), "ckpt": str(small_checkpoint)}
    assert run(config(**given, engine="tensorrt")) == 2
    assert "engine=tensorrt: choose auto, torch or onnx" in caplog.text
    assert run(config(**given, engine="onnx", onnx=str(tmp_path / "none.onnx"))) == 2
    assert "none.onnx. Run `python scripts/export.py" in caplog.text


def test_inference_adapt_speaker_writes_both_answers(recordings, small_checkpoint, tmp_path):
    plain, adapted = tmp_path / "plain.csv", tmp_path / "adapted.csv"
    common = {"input": str(recordings), "ckpt": str(small_checkpoint)}
    assert run(config(**common, output=str(plain))) == 0
    assert run(config(**common, output=str(adapted), adapt="speaker")) == 0
    before, after = read_csv(plain), read_csv(adapted)
    assert tuple(after[0]) == adapted_columns(SEPARABLE)
    for b, a in zip(before, after, strict=True):
        assert a["unadapted_label"] == b["label"] and a["error"] == b["error"]
        assert all(a[f"unadapted_{n}"] == b[n] for n in SEPARABLE)
    assert any(a["label"] != a["unadapted_label"] for a in after if not a["error"])
