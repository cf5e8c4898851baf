"""adapt=speaker: each speaker's mean log-probability removed before the argmax."""

import numpy as np
import pytest

from speech_emotion_recognition.predict.adapt import (
    RunningCentre,
    SpeakerMemory,
    adapt_rows,
    adapted_columns,
    centred,
    speakers_from_csv,
)

NAMES = ("angry", "happy", "sad")


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def row(path: str, probabilities) -> dict:
    best = int(np.argmax(probabilities))
    return {"path": path, "label": NAMES[best], "confidence": float(probabilities[best]),
            **dict(zip(NAMES, map(float, probabilities), strict=True)), "error": ""}  # fmt: skip


def test_centring_removes_a_speaker_offset_exactly():
    logits = np.array([[2.0, 0.0, -1.0], [-1.0, 1.5, 0.0], [0.0, -0.5, 1.0]])
    logits -= logits.mean(axis=0)  # what the files say apart from the speaker
    offset = np.array([0.0, -1.0, 3.0])  # this voice sounds sad to the model
    seen = softmax(logits + offset)
    assert [NAMES[i] for i in seen.argmax(1)] == ["sad", "sad", "sad"]
    assert np.allclose(centred(seen), softmax(logits), atol=1e-9)


def test_rows_keep_the_model_own_answer_and_note_what_cannot_be_adapted():
    probabilities = softmax(np.array([[1.0, 0, 2.5], [0, 1.2, 2.6], [0.5, 0, 2.0], [0, 2, 0]]))
    rows = [row(f"a/{i}.wav", p) for i, p in enumerate(probabilities[:3])]
    failed = {**row("a/x.wav", probabilities[0]), "label": "", "confidence": "",
              **dict.fromkeys(NAMES, ""), "error": "no speech"}  # fmt: skip
    rows += [row("b/0.wav", probabilities[3]), failed]
    speakers = {f"a/{i}.wav": "a" for i in range(3)} | {"b/0.wav": "b", "a/x.wav": "a"}
    out = adapt_rows(rows, speakers, NAMES)
    assert [list(r) for r in out[:1]] == [[*rows[0], "speaker", "adapt_note", "unadapted_label",
                                          *(f"unadapted_{n}" for n in NAMES)]]  # fmt: skip
    for before, after in zip(rows, out, strict=True):
        assert after["unadapted_label"] == before["label"]
        assert all(after[f"unadapted_{n}"] == before[n] for n in NAMES)
    assert [r["label"] for r in out[:3]] == ["angry", "happy", "angry"]  # was sad, sad, sad
    assert "3 of 3 files of this speaker were sad" in out[0]["adapt_note"]
    assert out[3]["label"] == "happy" and out[3]["adapt_note"].startswith("one file")
    assert out[4]["error"] == "no speech" and out[4]["label"] == ""
    assert set(adapted_columns(NAMES)) == set(out[0])


def test_speakers_from_a_csv_with_relative_and_absolute_paths(tmp_path):
    table = tmp_path / "speakers.csv"
    table.write_text(f"path,speaker\nx/1.wav,ann\n{tmp_path / 'y' / '2.wav'},bob\n")
    paths = [str(tmp_path / "x" / "1.wav"), str(tmp_path / "y" / "2.wav"), str(tmp_path / "z.wav")]
    assert speakers_from_csv(table, paths, tmp_path) == {paths[0]: "ann", paths[1]: "bob"}
    (tmp_path / "bad.csv").write_text("file,who\n")
    with pytest.raises(ValueError, match="path,speaker"):
        speakers_from_csv(tmp_path / "bad.csv", paths, tmp_path)


def test_a_stream_adapts_after_its_warm_up_on_the_mean_so_far():
    rng = np.random.default_rng(0)
    probabilities = softmax(rng.normal(size=(7, 3)) + np.array([0.0, 0.0, 2.0]))
    centre = RunningCentre(warmup=3)
    first, flags_first = centre(probabilities[:2])  # windows arrive a few at a time
    rest, flags_rest = centre(probabilities[2:])
    answers, flags = np.vstack([first, rest]), flags_first + flags_rest
    assert flags == [False, False, False, True, True, True, True]
    assert np.allclose(answers[:3], probabilities[:3])
    logs = np.log(probabilities)
    for k in range(3, 7):
        assert np.allclose(answers[k], softmax(logs[k] - logs[: k + 1].mean(axis=0)))


def test_the_server_remembers_a_bounded_number_of_speakers():
    memory = SpeakerMemory(max_speakers=2, warmup=1)
    p = softmax(np.array([0.0, 1.0, 2.0]))
    assert memory("ann", p) == (pytest.approx(p), False)  # the first file: the model's answer
    memory("bob", p)
    memory("ann", p)  # heard again: the most recent
    memory("cy", p)
    assert len(memory) == 2 and "bob" not in memory
    assert "ann" in memory and "cy" in memory
    answer, adapted = memory("ann", softmax(np.array([2.0, 1.0, 0.0])))  # ann's third file
    assert adapted and answer.argmax() == 0
