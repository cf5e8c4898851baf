"""Lever 5's second figure: how many URDU labels a 32 ms move changes, `antialias` scored once
against `base` scored three times (README.md beside this file).

    python experiments/generalisation/stability.py [LOG_DIR] [OUT_DIR]
    # defaults: logs/generalisation reports/generalisation

Every finished run of the two arms is measured with experiments/shift/stability.py's measure on
all of URDU (never trained on); OUT_DIR/stability.{json,md} holds each run's figures and the
verdict of the protocol's stability half.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
from pathlib import Path

from omegaconf import OmegaConf

from experiments.shift.stability import labelled_sets, measure
from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.predict.predictor import load_classifier
from speech_emotion_recognition.predict.speech import SpeechConfig

ARMS = {"base": "shifted", "antialias": "once"}  # arm -> how the protocol scores it
SET = "URDU"


def main(logs: Path, out: Path) -> dict:
    speech = SpeechConfig(**OmegaConf.load(PROJECT_ROOT / "conf" / "speech" / "default.yaml"))
    runs = {arm: sorted(logs.glob(f"{arm}/*_seed*/model.safetensors")) for arm in ARMS}
    if not all(runs.values()):
        sys.exit(f"{logs}: needs finished runs of both {' and '.join(ARMS)}")
    with tempfile.TemporaryDirectory() as manifests:
        sets = labelled_sets(load_classifier(runs["base"][0]), Path(manifests), (SET,))
    result: dict = {"clips": len(sets[SET][1]), "shift_seconds": speech.shift_seconds, "arms": {}}
    for arm, way in ARMS.items():
        figures = {w.parent.name: measure(w, speech, sets)[way] for w in runs[arm]}
        changed = [f["label_changed_by_32ms"] for f in figures.values()]
        result["arms"][arm] = {"scored": way, "runs": figures,
                               "label_changed_by_32ms": statistics.fmean(changed)}  # fmt: skip
    arms = result["arms"]
    result["stable_enough"] = (
        arms["antialias"]["label_changed_by_32ms"] <= arms["base"]["label_changed_by_32ms"]
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "stability.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["| arm | scored | runs | URDU accuracy | URDU labels changed by 32 ms |",
             "|---|---|---:|---:|---:|"]  # fmt: skip
    for arm, a in arms.items():
        accuracy = statistics.fmean(f[SET] for f in a["runs"].values())
        shifted = f"±{1000 * speech.shift_seconds:g} ms, averaged"
        words = "once" if a["scored"] == "once" else shifted
        lines.append(f"| `{arm}` | {words} | {len(a['runs'])} | {accuracy:.3f} "
                     f"| {a['label_changed_by_32ms']:.1%} |")  # fmt: skip
    verdict = "meets" if result["stable_enough"] else "misses"
    text = "\n".join(lines) + (
        f"\n\n{result['clips']} URDU clips, every run of each arm (mean over runs). `antialias` "
        f"{verdict} the stability half of its keep rule (once ≤ base shifted).\n"
    )
    (out / "stability.md").write_text(text)
    print(text)
    return result


if __name__ == "__main__":
    args = sys.argv[1:]
    main(Path(args[0] if args else "logs/generalisation"),
         Path(args[1] if len(args) > 1 else "reports/generalisation"))  # fmt: skip
