"""Make the README's timeline figure: one minute of room noise with two RAVDESS sentences.

python scripts/timeline_example.py      # writes docs/timeline.png (needs `dvc pull`)
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.audio import load_audio

# Actor 08 is a test actor of both releases: an angry and a sad sentence.
SENTENCES = {10.0: "03-01-05-02-01-01-08.wav", 38.0: "03-01-04-02-02-01-08.wav"}


def main() -> None:
    rate = 16000
    recording = 0.0005 * np.random.default_rng(0).standard_normal(60 * rate)
    for start, name in SENTENCES.items():
        clip = load_audio(str(PROJECT_ROOT / "data" / "RAVDESS" / "Actor_08" / name), rate)
        recording[int(start * rate) : int(start * rate) + len(clip)] += clip
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "one_minute.wav"
        sf.write(path, recording.astype(np.float32), rate)
        script = PROJECT_ROOT / "speech_emotion_recognition" / "inference.py"
        target = PROJECT_ROOT / "docs" / "timeline.png"
        subprocess.run(
            [sys.executable, str(script), f"input={path}", f"timeline={target}", "segments=true",
             f"hydra.run.dir={tmp}/run"],
            check=True,
        )  # fmt: skip
        print(f"Wrote {target}")


if __name__ == "__main__":
    main()
