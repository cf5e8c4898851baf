"""What the speech gate costs a folder of speech: inference.py's files/s without the gate, with
it on the second look's files, and with it on every file, rounds alternated so that a busy
machine slows each setting alike.

    python experiments/speech_gate/cost.py [--files 200] [--rounds 2]
    # -> reports/speech_gate/cost.{json,md}
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_dir

from scripts.benchmark import machine
from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.inference import run

GATE = "models/speech-gate.safetensors"
SETTINGS = {
    "no gate": ["speech.gate=null"],
    "gate on the second look": [f"speech.gate={GATE}", "speech.gate_reviews=weak"],
    "gate on every file heard": [f"speech.gate={GATE}", "speech.gate_reviews=all"],
}


def main(files: int, rounds: int, out: Path) -> dict:
    sources = sorted((PROJECT_ROOT / "data" / "RAVDESS").rglob("*.wav"))[:files]
    speeds: dict[str, list[float]] = {name: [] for name in SETTINGS}
    with (
        tempfile.TemporaryDirectory() as tmp,
        initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"),
    ):
        folder = Path(tmp) / "clips"
        folder.mkdir()
        for source in sources:
            (folder / source.name).symlink_to(source)
        for _ in range(rounds):
            for name, overrides in SETTINGS.items():
                where = [f"input={folder}", f"output={tmp}/out.csv"]
                cfg = compose("inference", overrides=[*where, *overrides])
                start = time.perf_counter()
                run(cfg)
                speeds[name].append(len(sources) / (time.perf_counter() - start))
    report = {"machine": machine(), "files": len(sources), "rounds": rounds,
              "files_per_s": {k: {"mean": statistics.fmean(v), "runs": v}
                              for k, v in speeds.items()}}  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "cost.json").write_text(json.dumps(report, indent=2) + "\n")
    lines = [
        "# What the speech gate costs",
        "",
        f"`python experiments/speech_gate/cost.py`: inference.py at its defaults but the gate, "
        f"on the first {len(sources)} RAVDESS clips, {rounds} rounds alternated, model loading "
        f"included; {report['machine']}.",
        "",
        "| setting | files/s (mean) | per round |",
        "|---|---:|---|",
        *(
            f"| {k} | {v['mean']:.1f} | {', '.join(f'{x:.1f}' for x in v['runs'])} |"
            for k, v in report["files_per_s"].items()
        ),
        "",
    ]
    (out / "cost.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return report


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "reports" / "speech_gate")
    args = parser.parse_args()
    main(args.files, args.rounds, args.out)
