"""Train the speech gate (speech_emotion_recognition/predict/gate.py) and measure it.

    python experiments/speech_gate/train.py [--out models/speech-gate.safetensors]

Speech: clips of CREMA-D, RAVDESS, TESS, URDU and nEMO (the decoded cache), a tenth of each
corpus's speakers held out for validation (all their clips), of the others at most
TRAIN_PER_CORPUS clips per corpus. Non-speech: UrbanSound8K fold 1 without its two classes
that may hold voices (children playing, street music), Speech Commands' background recordings
cut into 3 s pieces, and generated sounds (tones with harmonics, chirps, coloured noise, tone
clusters); a fifth of each (by recording) held out for validation. Every file is heard as
inference hears it: peak-normalised, silero's frame probabilities beside it. The threshold is
the highest that refuses at most MAX_REFUSED of the validation speakers' clips, chosen before
fold 2 is read. Then, once: UrbanSound8K fold 2 per class and the validation speakers' clips,
under each rule (silero at 0.5, the second look, the gate on the second look's files, the gate
on every file heard), and the corpora's clips that only the second look finds
(reports/corpora/*.json, scripts/audit_corpus.py), into reports/speech_gate/gate.{json,md}.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
from collections import Counter
from pathlib import Path

import hydra
import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf
from tqdm import tqdm

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.audio import AudioError, audio_files, load_audio
from speech_emotion_recognition.data.cache import AudioCache
from speech_emotion_recognition.predict.gate import RATE, GateFeatures, SpeechGate
from speech_emotion_recognition.predict.speech import (
    SpeechConfig,
    detector,
    frame_probabilities,
    normalise,
    segments,
)

NOISE = PROJECT_ROOT / "data" / "NOISE"
URBAN = ("air_conditioner", "car_horn", "children_playing", "dog_bark", "drilling",
         "engine_idling", "gun_shot", "jackhammer", "siren", "street_music")  # fmt: skip
VOICED = {2, 9}  # children playing, street music: may hold voices
CORPORA = ("cremad", "ravdess", "tess", "urdu", "nemo")
MAX_REFUSED = 0.005  # of the validation speakers' clips
TRAIN_PER_CORPUS = 700
RULES = {  # files taken for speech: (at 0.5, at the weak threshold, the gate says speech)
    "at 0.5": lambda strong, weak, gate: strong,
    "second look": lambda strong, weak, gate: strong or weak,
    "gate on the second look": lambda strong, weak, gate: strong or (weak and gate),
    "gate on every file heard": lambda strong, weak, gate: (strong or weak) and gate,
}


def held_out(key: str, share: float) -> bool:
    return int(hashlib.sha1(key.encode()).hexdigest(), 16) % 1000 < share * 1000


def speech_clips() -> list[tuple[str, str, str]]:
    """(path, corpus, speaker) of every clip of the training corpora."""
    clips = []
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        for data in CORPORA:
            cfg = compose("train", overrides=[f"data={data}"])
            parsed = hydra.utils.instantiate(cfg.data.corpus)(cfg.data.root)
            clips += [(c.path, c.corpus, c.speaker) for c in parsed]
    return clips


def generated(n: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Non-speech a microphone may hear: tones with harmonics, chirps, coloured noise and
    clusters of held notes, 2-4 s, at random levels."""
    sounds = []
    for i in range(n):
        t = np.arange(int(rng.uniform(2, 4) * RATE)) / RATE
        kind = i % 4
        if kind == 0:
            f0 = rng.uniform(80, 2000)
            wave = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, rng.integers(1, 6) + 1))
        elif kind == 1:
            f0, f1 = rng.uniform(100, 4000, 2)
            wave = np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * t[-1])))
        elif kind == 2:
            spectrum = np.fft.rfft(rng.standard_normal(len(t)))
            freqs = np.fft.rfftfreq(len(t), 1 / RATE)
            spectrum /= np.maximum(freqs, 1.0) ** (rng.uniform(0, 2) / 2)
            wave = np.fft.irfft(spectrum, len(t))
        else:
            notes = rng.uniform(110, 880, rng.integers(2, 5))
            wave = sum(np.sin(2 * np.pi * f * t) for f in notes)
            wave *= 0.5 + 0.5 * np.sign(np.sin(2 * np.pi * rng.uniform(1, 4) * t))
        wave = wave / (np.abs(wave).max() + 1e-9) * rng.uniform(0.05, 0.9)
        sounds.append(wave.astype(np.float32))
    return sounds


def background_pieces() -> list[tuple[str, np.ndarray]]:
    pieces = []
    for path in audio_files(NOISE / "speech_commands"):
        audio = load_audio(str(path), RATE)
        for start in range(0, len(audio) - 3 * RATE, 3 * RATE):
            pieces.append((f"{path.stem}@{start}", audio[start : start + 3 * RATE]))
    return pieces


def hard_positives(clips: list[tuple[str, str, str]]) -> dict[str, tuple[str, int]]:
    """Round three's extra speech: the training speakers' clips that silero hears only at the
    weak threshold (scripts/audit_corpus.py's lists), path -> (corpus, the speaker's fold of 5)."""
    speaker_of = {str(Path(p).resolve()): speaker for p, _, speaker in clips}
    found = {}
    for data in CORPORA:
        audit = json.loads((PROJECT_ROOT / "reports" / "corpora" / f"{data}.json").read_text())
        for name in audit["speech_only_at_weak_threshold"]:
            path = str((PROJECT_ROOT / audit["root"] / name).resolve())
            speaker = speaker_of[path]
            if not held_out(speaker, 0.1):
                fold = int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % 5
                found[path] = (data, fold)
    return found


def urban_class(path: Path) -> int:
    return int(path.stem.split("-")[1])


def fit(features: np.ndarray, labels: np.ndarray, weights: np.ndarray, seed: int = 0) -> SpeechGate:
    """The perceptron on the training rows, each row's loss times its weight."""
    torch.manual_seed(seed)
    gate = SpeechGate()
    x, y = torch.as_tensor(features), torch.as_tensor(labels, dtype=torch.float32)
    w = torch.as_tensor(weights, dtype=torch.float32)
    gate.mean.copy_(x.mean(0))
    gate.std.copy_(x.std(0) + 1e-6)
    optimizer = torch.optim.AdamW(gate.net.parameters(), lr=3e-3, weight_decay=1e-3)
    loss = torch.nn.BCEWithLogitsLoss(weight=w, pos_weight=(1 - y).sum() / y.sum())
    for _ in range(300):  # full batch: a few thousand rows of 256 numbers
        optimizer.zero_grad()
        loss(gate(x), y).backward()
        optimizer.step()
    return gate.eval()


def fit_with_threshold(features, labels, weights, train) -> SpeechGate:
    """A gate fitted on the training rows, its threshold the highest that refuses at most
    MAX_REFUSED of the validation speakers' clips."""
    gate = fit(features[train], labels[train], weights[train])
    speech = np.sort(scores(gate, features[~train & (labels == 1)]))
    gate.threshold = float(speech[int(np.floor(MAX_REFUSED * len(speech)))])
    return gate


def scores(gate: SpeechGate, features: np.ndarray) -> np.ndarray:
    with torch.inference_mode():
        return torch.sigmoid(gate(torch.as_tensor(features))).numpy()


def heard(audio: np.ndarray, config: SpeechConfig) -> tuple[np.ndarray, list[float]] | None:
    """The file as inference hears it: peak-normalised, and silero's frame probabilities
    (None for digital silence)."""
    try:
        level = normalise(np.asarray(audio, dtype=np.float32), config)
    except AudioError:
        return None
    return level, frame_probabilities(level, detector())


def outcomes(level, probabilities, config, gate, extract) -> dict[str, bool]:
    """Whether each rule takes the file for speech."""
    strong = bool(segments(probabilities, len(level), config))
    weak = bool(segments(probabilities, len(level), config, config.weak_threshold))
    says = bool(scores(gate, extract(level, probabilities)[None])[0] >= gate.threshold)
    return {name: bool(rule(strong, weak, says)) for name, rule in RULES.items()}


def counted(counts: Counter) -> dict[str, int]:
    return {"clips": counts["clips"], **{rule: counts[rule] for rule in RULES}}


def markdown(report: dict, protocol: str) -> str:
    """The measurement as tables, from gate.json; `protocol` links the README from it."""
    fold2 = report["fold2"]
    voiceless = [k for i, k in enumerate(URBAN) if i not in VOICED]

    def share(counts: list[dict], key: str) -> str:
        taken, clips = sum(c[key] for c in counts), sum(c["clips"] for c in counts)
        return f"{taken} of {clips} ({100 * taken / clips:.1f} %)"

    val = report["validation"]
    speakers = report["validation_speakers"]
    lines = [
        "# The speech gate, measured once",
        "",
        f"Generated by `python experiments/speech_gate/train.py{report['options']}` (protocol: "
        f"[experiments/speech_gate]({protocol})). Threshold "
        f"{report['threshold']:.4f}, chosen on validation: validation speakers' clips refused "
        f"by the gate {100 * (1 - val['speech_recall']):.2f} %, validation non-speech accepted "
        f"{100 * val['non_speech_accepted']:.1f} %.",
        "",
        "UrbanSound8K fold 2, files taken for speech under each rule:",
        "",
        "| class | clips | " + " | ".join(RULES) + " |",
        "|---|---:|" + "---:|" * len(RULES),
        *(
            f"| {k.replace('_', ' ')}{' (may hold voices)' if i in VOICED else ''} | "
            f"{fold2[k]['clips']} | " + " | ".join(str(fold2[k][r]) for r in RULES) + " |"
            for i, k in enumerate(URBAN)
        ),
        f"| **the eight without voices** | {sum(fold2[k]['clips'] for k in voiceless)} | "
        + " | ".join(share([fold2[k] for k in voiceless], r) for r in RULES) + " |",
        "",
        "The validation speakers' clips (speakers no gate trained on), refused as no speech "
        "under each rule:",
        "",
        "| corpus | clips | " + " | ".join(RULES) + " |",
        "|---|---:|" + "---:|" * len(RULES),
        *(
            f"| {k} | {c['clips']} | " + " | ".join(str(c["clips"] - c[r]) for r in RULES) + " |"
            for k, c in speakers.items()
        ),
        "",
        "The training corpora: clips that only the second look finds, and how many the gate "
        "keeps.",
        "",
        "| corpus | clips | no speech even at the weak threshold | found only by the second look "
        "| kept by the gate |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {k} | {c['clips']} | {c['no_speech']} | {c['weak_only']} | {c['weak_only_kept']} |"
            for k, c in report["corpora"].items()
        ),  # fmt: skip
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--out", type=Path, default=PROJECT_ROOT / "models" / "speech-gate.safetensors"
    )
    parser.add_argument("--report", type=Path, default=PROJECT_ROOT / "reports" / "speech_gate")
    parser.add_argument("--hard-positives", type=float, default=0.0, metavar="WEIGHT",
                        help="round three: the training speakers' clips that only the second "
                        "look finds train the gate, each weighing this much")  # fmt: skip
    args = parser.parse_args()
    with initialize_config_dir(str(PROJECT_ROOT / "conf"), version_base="1.3"):
        config = SpeechConfig(
            **OmegaConf.to_container(compose("inference", overrides=["input=x"]).speech)
        )
    extract = GateFeatures()
    cache = AudioCache(PROJECT_ROOT / "data" / "cache", RATE, 1e-4)
    rng = np.random.default_rng(0)
    clips = speech_clips()
    hard = hard_positives(clips) if args.hard_positives else {}
    chosen, per_corpus = [], Counter()
    for i in rng.permutation(len(clips)):
        path, corpus, speaker = clips[i]
        validation = held_out(speaker, 0.1)
        if str(Path(path).resolve()) in hard:
            continue  # added below, with its weight
        if validation or per_corpus[corpus] < TRAIN_PER_CORPUS:
            per_corpus[corpus] += not validation
            chosen.append((path, corpus, "val" if validation else "train"))
    rows = []  # (features, label, split, group, level, probabilities)
    for path, corpus, split in tqdm(sorted(chosen), desc="speech", unit="clip"):
        if cache.ensure(path) is None and (found := heard(cache.load(path), config)):
            rows.append((extract(*found), 1, split, corpus, *found))
    for path in tqdm(audio_files(NOISE / "urbansound8k" / "fold1"), desc="fold 1", unit="clip"):
        if urban_class(path) in VOICED:
            continue
        if found := heard(load_audio(str(path), RATE), config):
            split = "val" if held_out(path.stem.split("-")[0], 0.2) else "train"
            rows.append((extract(*found), 0, split, "urbansound8k", *found))
    for name, audio in background_pieces():
        if found := heard(audio, config):
            split = "val" if held_out(name.split("@")[0], 0.2) else "train"
            rows.append((extract(*found), 0, split, "backgrounds", *found))
    for i, audio in enumerate(generated(800, np.random.default_rng(0))):
        if found := heard(audio, config):
            rows.append((extract(*found), 0, "val" if i % 5 == 0 else "train", "generated", *found))
    folds = [-1] * len(rows)  # a hard positive's speaker fold; -1 for every other row
    for path, (corpus, fold) in sorted(hard.items()):
        if cache.ensure(path) is None and (found := heard(cache.load(path), config)):
            rows.append((extract(*found), 1, "train", corpus, *found))
            folds.append(fold)
    features = np.stack([r[0] for r in rows]).astype(np.float32)
    labels = np.array([r[1] for r in rows])
    train = np.array([r[2] == "train" for r in rows])
    folds = np.array(folds)
    weights = np.where(folds >= 0, args.hard_positives, 1.0)
    gate = fit_with_threshold(features, labels, weights, train)
    val_scores = scores(gate, features[~train])
    val_labels = labels[~train]
    val_recall = float((val_scores[val_labels == 1] >= gate.threshold).mean())
    val_accepted = float((val_scores[val_labels == 0] >= gate.threshold).mean())
    counts = Counter((r[3], r[2], r[1]) for r in rows)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    gate.save(args.out, {"trained_on": {f"{k[0]}/{k[1]}/{'speech' if k[2] else 'other'}": v
                                        for k, v in sorted(counts.items())},
                         "validation": {"speech_recall": val_recall,
                                        "non_speech_accepted": val_accepted}})  # fmt: skip

    # once, with the threshold fixed: UrbanSound8K fold 2, the validation speakers' clips under
    # each rule, and the corpora's weak-only clips
    per_class: dict[str, Counter] = {name: Counter() for name in URBAN}
    for path in tqdm(audio_files(NOISE / "urbansound8k" / "fold2"), desc="fold 2", unit="clip"):
        c = per_class[URBAN[urban_class(path)]]
        c["clips"] += 1
        if found := heard(load_audio(str(path), RATE), config):
            c.update(outcomes(*found, config, gate, extract))
    speakers: dict[str, Counter] = {}
    for _, label, split, corpus, level, probabilities in rows:
        if label == 1 and split == "val":
            c = speakers.setdefault(corpus, Counter())
            c["clips"] += 1
            c.update(outcomes(level, probabilities, config, gate, extract))
    # a hard positive is scored by a gate that trained on no shout of its speaker's fold
    hard_fold = {path: fold for path, (_, fold) in hard.items()}
    fold_gates = {
        k: fit_with_threshold(features, labels, weights, train & (folds != k))
        for k in sorted(set(hard_fold.values()))
    }
    corpora = {}
    for data in CORPORA:
        audit = json.loads((PROJECT_ROOT / "reports" / "corpora" / f"{data}.json").read_text())
        root = PROJECT_ROOT / audit["root"]
        weak = audit["speech_only_at_weak_threshold"]
        kept = 0
        for name in weak:
            path = str((root / name).resolve())
            judge = fold_gates[hard_fold[path]] if path in hard_fold else gate
            found = heard(cache.load(path), config)
            kept += outcomes(*found, config, judge, extract)["gate on the second look"]
        corpora[data] = {"clips": audit["clips"], "no_speech": len(audit["no_speech"]),
                         "weak_only": len(weak), "weak_only_kept": int(kept)}  # fmt: skip
    report = {
        "threshold": gate.threshold,
        "validation": {"speech_recall": val_recall, "non_speech_accepted": val_accepted},
        "fold2": {k: counted(v) for k, v in per_class.items()},
        "validation_speakers": {k: counted(v) for k, v in speakers.items()},
        "corpora": corpora,
        "options": f" --hard-positives {args.hard_positives:g}" if args.hard_positives else "",
    }  # fmt: skip
    args.report.mkdir(parents=True, exist_ok=True)
    (args.report / "gate.json").write_text(json.dumps(report, indent=2) + "\n")
    readme = PROJECT_ROOT / "experiments" / "speech_gate" / "README.md"
    text = markdown(report, os.path.relpath(readme, args.report.resolve()))
    (args.report / "gate.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
