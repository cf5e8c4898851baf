"""The decoder against hostile files (tests/hostile_audio.py): each file decoded the way the
server decodes an upload, in a forked child with a memory cap and a time limit. The only
answers allowed are audio (finite, within full scale: a prediction follows) or an AudioError
(the server's 4xx with its message); a crash, a hang, any other exception or a peak of more
than 1 GiB above the child's start fails."""

from __future__ import annotations

import json
import os
import resource
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from speech_emotion_recognition.audio import AudioError, load_audio
from tests.hostile_audio import hostile_corpus, wav

PEAK_LIMIT = 1 << 30  # bytes above the child's resident memory at its start
CAP = 3 << 30  # address space a child may add: a runaway allocation fails instead of swapping
HANG_SECONDS = 120.0  # no file here decodes in more than a fraction of a second when it works


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def decode_in_child(path: Path) -> dict:
    """What `load_audio(path, 16000, 600)` gives in a forked child: its outcome, its peak
    memory above its start, or how it died."""
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: cap, reset the peak, decode, report, leave without cleanup
        os.close(read)
        outcome: dict
        try:
            limit = status_kib("VmSize") * 1024 + CAP
            resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
            Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
            start = status_kib("VmRSS")
            try:
                audio = load_audio(str(path), 16000, 600)
                outcome = {
                    "kind": "audio",
                    "samples": len(audio),
                    "finite": bool(np.isfinite(audio).all()),
                    "peak": float(np.abs(audio).max()),
                }
            except AudioError as error:
                outcome = {"kind": "refused", "message": str(error)}
            except BaseException as error:  # noqa: BLE001 - what the test is looking for
                outcome = {"kind": "error", "message": f"{type(error).__name__}: {error}"}
            outcome["peak_bytes"] = (status_kib("VmHWM") - start) * 1024
            os.write(write, json.dumps(outcome).encode())
        finally:
            os._exit(0)
    os.close(write)
    deadline = time.monotonic() + HANG_SECONDS
    while (done := os.waitpid(pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            os.waitpid(pid, 0)
            os.close(read)
            return {"kind": "hang"}
        time.sleep(0.01)
    with os.fdopen(read, "rb") as pipe:
        report = pipe.read()
    if os.WIFSIGNALED(done[1]):
        return {"kind": "crash", "message": signal.Signals(os.WTERMSIG(done[1])).name}
    return json.loads(report) if report else {"kind": "crash", "message": "no report"}


def problem(outcome: dict) -> str | None:
    """Why an outcome is not one the server may give, or None."""
    if outcome["kind"] in ("crash", "hang", "error"):
        return f"{outcome['kind']}: {outcome.get('message', '')}"
    if outcome["peak_bytes"] > PEAK_LIMIT:
        return f"peak memory {outcome['peak_bytes'] / 2**30:.1f} GiB"
    if outcome["kind"] == "audio" and not (outcome["finite"] and outcome["peak"] <= 1.01):
        return f"audio outside full scale (finite {outcome['finite']}, peak {outcome['peak']})"
    return None


def test_every_hostile_file_is_decoded_or_refused_in_bounded_memory(tmp_path):
    files = hostile_corpus(tmp_path)
    assert len(files) > 150, "the corpus lost its cases"
    outcomes = {path.name: decode_in_child(path) for path in files}
    problems = {name: p for name, o in outcomes.items() if (p := problem(o))}
    assert not problems, json.dumps(problems, indent=1)
    kinds = {o["kind"] for o in outcomes.values()}
    assert kinds == {"audio", "refused"}, "the corpus should hold both readable and broken files"


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("8 channels (crashed PyAV's conversion)", wav(8, 16000, 16)),
        ("15,999 Hz (a 5 GB resampling kernel)", wav(1, 15999, 16, n_frames=16000)),
        ("0 bits per sample (no decoder: a 500)", wav(1, 16000, 0)),
    ],
)
def test_the_reported_files_get_an_answer(tmp_path, case, data):
    path = tmp_path / "upload.wav"
    path.write_bytes(data)
    outcome = decode_in_child(path)
    assert problem(outcome) is None, (case, outcome)
