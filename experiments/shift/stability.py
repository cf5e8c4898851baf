"""How much where a window starts decides its label, scored once and with the test-time shift.

    python experiments/shift/stability.py [RELEASE ...] [--out DIR]
    (default: ser-mid-multi and ser-small-multi-v2 into reports/shift)

On the default rule's sets (the CREMA-D and RAVDESS validation speakers of the seed-42 split,
all of URDU), each clip's windows are cut as inference.py cuts them and scored as cut and moved
one detector frame (32 ms) later, each way once (speech.shift_seconds=0) and with the default
shift: the share of clips whose label that frame changes. Also the rule's score both ways (the
mean of the three accuracies) and a paired bootstrap interval of its difference, clips
resampled within each set. Writes DIR/stability.{json,md}. No test speaker is read.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.audio import shift_windows
from speech_emotion_recognition.evaluate import model_data
from speech_emotion_recognition.predict.predictor import (
    Predictor,
    clip_windows,
    grouped_probabilities,
    load_classifier,
    resolve_device,
    resolve_precision,
)
from speech_emotion_recognition.predict.speech import FRAME, SpeechConfig, weighted_mean

SPLITS = PROJECT_ROOT / "reports" / "ser-mid-multi" / "training" / "splits"
SETS = {  # the default rule's (experiments/default_rule/rule.py)
    "val CREMA-D": ("data=multi", "subset=val", "cremad"),
    "val RAVDESS": ("data=multi", "subset=val", "ravdess"),
    "URDU": ("data=urdu", "subset=all", "urdu"),
}
BOOTSTRAP = 2000


def labelled_sets(
    classifier, manifests: Path, names: tuple[str, ...] = tuple(SETS)
) -> dict[str, tuple[list[np.ndarray], np.ndarray]]:
    """The named sets' decoded clips and label indices, as the model's classes name them."""
    found = {}
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        for name in names:
            data, subset, corpus = SETS[name]
            splits = SPLITS if data == "data=multi" else manifests
            cfg = compose("evaluate", overrides=[data, subset, f"manifest_dir={splits}"])
            datamodule = model_data(cfg.data, classifier, cfg.manifest_dir)
            every = [c for part in ("train", "val", "test") for c in datamodule.splits[part]]
            clips = datamodule.splits["val"] if subset == "subset=val" else every
            clips = [c for c in clips if c.corpus == corpus]
            audio = [np.asarray(datamodule.cache.load(c.path), np.float32) for c in clips]
            labels = np.array([classifier.class_names.index(c.label) for c in clips])
            found[name] = (audio, labels)
    return found


def clip_labels(
    predictor: Predictor, windows: list, cuts: list, batch_size: int = 32
) -> np.ndarray:
    parts = grouped_probabilities(predictor, windows, batch_size)
    return np.array([weighted_mean(p, c).argmax() for p, c in zip(parts, cuts, strict=True)])


def release_weights(release: str) -> Path:
    return PROJECT_ROOT / "models" / f"{release}.safetensors"


def measure(weights: Path, speech: SpeechConfig, sets: dict) -> dict:
    """Each set's accuracy and the share of clips a 32 ms move relabels, once and shifted."""
    classifier = load_classifier(weights)
    device = resolve_device("auto")
    precision = resolve_precision("auto", device)
    ways = {
        "once": Predictor(classifier, device, precision),
        "shifted": Predictor(classifier, device, precision, shift_seconds=speech.shift_seconds),
    }
    correct = {way: {} for way in ways}
    changed = {way: [] for way in ways}
    for name, (audio, truth) in sets.items():
        windows, cuts, _ = clip_windows(audio, classifier.sample_rate, speech)
        later = [shift_windows(w, FRAME) for w in windows]
        for way, predictor in ways.items():
            as_cut = clip_labels(predictor, windows, cuts)
            correct[way][name] = (as_cut == truth).astype(float)
            changed[way].append(as_cut != clip_labels(predictor, later, cuts))
    rng = np.random.default_rng(0)
    gains = []
    for _ in range(BOOTSTRAP):
        per_set = []
        for name in sets:
            pick = rng.integers(0, len(sets[name][1]), len(sets[name][1]))
            per_set.append((correct["shifted"][name][pick] - correct["once"][name][pick]).mean())
        gains.append(np.mean(per_set))
    result = {
        way: {
            **{name: float(correct[way][name].mean()) for name in sets},
            "score": float(np.mean([correct[way][name].mean() for name in sets])),
            "label_changed_by_32ms": float(np.concatenate(changed[way]).mean()),
        }
        for way in ways
    }
    result["score_gain_95"] = [float(g) for g in np.percentile(gains, [2.5, 97.5])]
    return result


def markdown(results: dict, shift: float, clips: int) -> str:
    lines = [
        f"| release | windows | {' | '.join(SETS)} | score | label changed by 32 ms |",
        "|---|---|" + "---:|" * (len(SETS) + 2),
    ]
    for release, r in results.items():
        for way, words in (("once", "once"), ("shifted", f"±{1000 * shift:g} ms, averaged")):
            figures = " | ".join(f"{r[way][name]:.3f}" for name in SETS)
            lines.append(
                f"| `{release}` | {words} | {figures} | {r[way]['score']:.3f} "
                f"| {r[way]['label_changed_by_32ms']:.1%} |"
            )
    gains = "; ".join(
        f"`{release}` {r['shifted']['score'] - r['once']['score']:+.3f} "
        f"[{r['score_gain_95'][0]:+.3f}, {r['score_gain_95'][1]:+.3f}]"
        for release, r in results.items()
    )
    return "\n".join(lines) + (
        f"\n\n{clips} clips. Score gain of the shift, with its paired bootstrap 95 % interval "
        f"({BOOTSTRAP} resamples of the clips within each set): {gains}.\n"
    )


def main(releases: list[str], out: Path) -> dict:
    speech = SpeechConfig(**OmegaConf.load(PROJECT_ROOT / "conf" / "speech" / "default.yaml"))
    first = load_classifier(release_weights(releases[0]))
    with tempfile.TemporaryDirectory() as manifests:
        sets = labelled_sets(first, Path(manifests))
    results = {release: measure(release_weights(release), speech, sets) for release in releases}
    out.mkdir(parents=True, exist_ok=True)
    (out / "stability.json").write_text(json.dumps(results, indent=2) + "\n")
    text = markdown(results, speech.shift_seconds, sum(len(t) for _, t in sets.values()))
    (out / "stability.md").write_text(text)
    print(text)
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("releases", nargs="*", default=["ser-mid-multi", "ser-small-multi-v2"])
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "reports" / "shift")
    args = parser.parse_args()
    main(args.releases, args.out.resolve())
