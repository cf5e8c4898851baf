"""Evaluate a checkpoint on a corpus's held-out speakers or any labelled folder, clean and in noise.

python speech_emotion_recognition/evaluate.py ckpt=FILE data=ravdess hydra.run.dir=reports/NAME
writes metrics.json, report.md and the figures into the run folder.
"""

from __future__ import annotations

import json
import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import hydra
import numpy as np
from omegaconf import DictConfig

from speech_emotion_recognition.cli import check_arguments
from speech_emotion_recognition.data.clips import SPLITS, Clip, repo_relative
from speech_emotion_recognition.metrics import classification_report, reliability
from speech_emotion_recognition.noise import (
    babble,
    coloured_noise,
    mix_at_snr,
    recorded_noise,
    recording_crop,
)
from speech_emotion_recognition.plots import (
    confusion_matrix_figure,
    noise_figure,
    per_class_figure,
    reliability_figure,
    save,
)
from speech_emotion_recognition.predict.predictor import (
    EmotionClassifier,
    Predictor,
    checkpoint_error,
    clip_probabilities,
    load_classifier,
    resolve_device,
    resolve_precision,
    scoring,
)
from speech_emotion_recognition.predict.speech import SpeechConfig

if TYPE_CHECKING:  # Lightning loads only when a data option is instantiated
    from speech_emotion_recognition.data.datamodule import EmotionDataModule

log = logging.getLogger(__name__)


def noisy_versions(
    clips: list[Clip],
    audio: list[np.ndarray],
    voices: dict[str, list],
    noise_type: str,
    snr_db: float,
    cfg: DictConfig,
    condition: int,
    recordings: np.ndarray | None = None,
) -> list[np.ndarray]:
    """Each whole clip mixed with its own noise draw at exactly `snr_db` over the clip.

    Seeds depend on (seed, condition, clip), so every run and every SNR sweep is reproducible.
    """
    mixed = []
    for i, (clip, signal) in enumerate(zip(clips, audio, strict=True)):
        rng = np.random.default_rng([cfg.seed, condition, i])
        if noise_type == "babble":
            others = [v for speaker, vs in voices.items() if speaker != clip.speaker for v in vs]
            noise = babble(len(signal), others, rng, cfg.noise.babble_talkers)
        elif noise_type == "recorded":
            noise = recording_crop(recordings, len(signal), rng)
        else:
            noise = coloured_noise(len(signal), noise_type, rng)
        mixed.append(mix_at_snr(signal, noise, snr_db))
    return mixed


def snr_label(snr_db: float | None) -> str:
    return "∞ (clean)" if snr_db is None else f"{snr_db:g}"


def write_report(out: Path, report: dict, noise_rows: list[dict], cfg: DictConfig) -> None:
    lines = [
        f"# Evaluation of `{repo_relative(cfg.ckpt)}`",
        "",
        f"Data: `{repo_relative(cfg.data.root)}` ({Path(cfg.data.corpus._target_).suffix[1:]}), "
        f"subset `{cfg.subset}`, {report['n_clips']} clips, split `{cfg.split.kind}`, "
        f"seed {cfg.seed}; speakers: {', '.join(report['per_speaker'])}; "
        f"{scoring(cfg.speech.shift_seconds)}.",
        "",
        "| accuracy | UA (macro recall) | macro-F1 | ECE |",
        "|---:|---:|---:|---:|",
        f"| {report['accuracy']:.3f} | {report['ua']:.3f} | {report['macro_f1']:.3f} "
        f"| {report['ece']:.3f} |",
        "",
        "## Per class",
        "",
        "| emotion | precision | recall | F1 | clips |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {name} | {m['precision']:.3f} | {m['recall']:.3f} | {m['f1']:.3f} "
            f"| {m['support']} |"
            for name, m in report["per_class"].items()
        ),
        "",
        "![confusion matrix](confusion_matrix.png) "
        "![row-normalised confusion matrix](confusion_matrix_normalised.png)",
        "",
        "![per-class scores](per_class.png)",
        "",
        *(
            [
                "## Per corpus",
                "",
                "| corpus | clips | accuracy | UA | macro-F1 |",
                "|---|---:|---:|---:|---:|",
                *(
                    f"| {c} | {m['n_clips']} | {m['accuracy']:.3f} | {m['ua']:.3f} "
                    f"| {m['macro_f1']:.3f} |"
                    for c, m in report["per_corpus"].items()
                ),
                "",
            ]
            if "per_corpus" in report
            else []
        ),
        "## Per speaker",
        "",
        "| speaker | accuracy |",
        "|---|---:|",
        *(f"| {s} | {a:.3f} |" for s, a in report["per_speaker"].items()),
        "",
        "## Calibration",
        "",
        "![reliability diagram](reliability.png)",
        "",
        "## Noise robustness",
        "",
        "Each clip mixed with noise at the given SNR (measured over the clip); babble is a sum of "
        f"{cfg.noise.babble_talkers} clips of other speakers of the same corpus; recorded is a "
        "random stretch of recorded background sounds (NOISE: UrbanSound8K fold 2, never used in "
        "training). Windows are cut "
        "from the speech silero-vad finds, as in `inference.py`; a clip where it finds none is "
        "scored from its whole length (last column).",
        "",
        "| noise | SNR (dB) | accuracy | macro-F1 | clips without speech found |",
        "|---|---:|---:|---:|---:|",
        *(
            f"| {r['noise']} | {snr_label(r['snr_db'])} | {r['accuracy']:.3f} "
            f"| {r['macro_f1']:.3f} | {r['no_speech_found']} |"
            for r in noise_rows
        ),
        "",
        "![noise robustness](noise_robustness.png)",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))


def model_data(
    data: DictConfig, classifier: EmotionClassifier, manifest_dir: str
) -> EmotionDataModule:
    """The data option's splits as the model sees them: at its sample rate, its clips those of
    its own classes (a corpus may have fewer), no augmentation; `manifest_dir` reuses a run's."""
    datamodule = hydra.utils.instantiate(
        data,
        sample_rate=classifier.sample_rate,
        manifest_dir=manifest_dir,
        augment=None,
        labels=classifier.class_names,
        require_labels=False,
    )
    datamodule.setup()
    return datamodule


def evaluate(cfg: DictConfig) -> dict:
    classifier = load_classifier(cfg.ckpt)
    device = resolve_device(cfg.device)
    speech = SpeechConfig(**cfg.speech)
    predictor = Predictor(
        classifier,
        device,
        resolve_precision(cfg.precision, device),
        shift_seconds=speech.shift_seconds,
    )
    datamodule = model_data(cfg.data, classifier, cfg.manifest_dir)
    everything = [c for name in SPLITS for c in datamodule.splits[name]]
    clips = everything if cfg.subset == "all" else datamodule.splits[cfg.subset]
    if not clips:
        raise RuntimeError(f"The {cfg.subset} subset is empty.")
    cache = datamodule.cache
    # Whole clips: the speech detector picks the model's windows, as in inference.py.
    audio = [np.asarray(cache.load(c.path), dtype=np.float32) for c in clips]
    # Babble sums other speakers of the corpus: opened only when asked for, the evaluated
    # clips reused rather than read again.
    voices: dict[str, list] = defaultdict(list)
    if "babble" in cfg.noise.types:
        loaded = dict(zip((c.path for c in clips), audio, strict=True))
        for clip in everything:
            own = loaded.get(clip.path)
            voices[clip.speaker].append(own if own is not None else cache.load(clip.path))

    recordings = None
    if "recorded" in cfg.noise.types:
        recordings = recorded_noise(cfg.noise.recorded_dirs, predictor.sample_rate, cache.directory)

    names = classifier.class_names
    labels = [names.index(c.label) for c in clips]
    speakers = [c.speaker for c in clips]
    probabilities, whole = clip_probabilities(predictor, audio, speech, cfg.batch_size)
    report = classification_report(probabilities, labels, speakers, names, cfg.ece_bins)
    corpora = sorted({c.corpus for c in clips})
    if len(corpora) > 1:
        report["per_corpus"] = {}
        for corpus in corpora:
            mine = np.array([c.corpus == corpus for c in clips])
            part = classification_report(
                probabilities[mine], np.array(labels)[mine], np.array(speakers)[mine],
                names, cfg.ece_bins,
            )  # fmt: skip
            report["per_corpus"][corpus] = {
                k: part[k] for k in ("n_clips", "accuracy", "ua", "macro_f1")
            }
    noise_rows = [
        {
            "noise": "clean",
            "snr_db": None,
            "accuracy": report["accuracy"],
            "macro_f1": report["macro_f1"],
            "no_speech_found": whole,
        }
    ]
    condition = 0
    for noise_type in cfg.noise.types:
        for snr_db in cfg.noise.snr_db:
            condition += 1
            noisy = noisy_versions(
                clips, audio, voices, noise_type, snr_db, cfg, condition, recordings
            )
            noisy_probabilities, whole = clip_probabilities(
                predictor, noisy, speech, cfg.batch_size
            )
            scores = classification_report(
                noisy_probabilities,
                labels,
                speakers,
                names,
                cfg.ece_bins,
            )
            noise_rows.append(
                {
                    "noise": noise_type,
                    "snr_db": float(snr_db),
                    "accuracy": scores["accuracy"],
                    "macro_f1": scores["macro_f1"],
                    "no_speech_found": whole,
                }
            )
            log.info("%s at %g dB: accuracy %.3f", noise_type, snr_db, scores["accuracy"])

    out = Path(cfg.paths.output_dir)
    matrix = np.array(report["confusion_matrix"])
    save(
        confusion_matrix_figure(matrix, names, "Confusion matrix (clips)"),
        out / "confusion_matrix.png",
    )
    save(
        confusion_matrix_figure(matrix, names, "Confusion matrix (recall per row)", True),
        out / "confusion_matrix_normalised.png",
    )
    save(per_class_figure(report["per_class"]), out / "per_class.png")
    save(
        reliability_figure(*reliability(probabilities, labels, cfg.ece_bins), report["ece"]),
        out / "reliability.png",
    )
    present = len(set(labels))
    save(noise_figure(noise_rows, chance=1 / present), out / "noise_robustness.png")
    results = {
        **report,
        "noise": noise_rows,
        "checkpoint": repo_relative(cfg.ckpt),
        "subset": cfg.subset,
        "shift_seconds": cfg.speech.shift_seconds,
    }
    (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
    write_report(out, report, noise_rows, cfg)
    log.info("Report written to %s", out / "report.md")
    return results


@hydra.main(version_base="1.3", config_path="../conf", config_name="evaluate")
def main(cfg: DictConfig) -> None:
    if error := checkpoint_error(cfg.ckpt):
        log.error(error)
        sys.exit(2)
    evaluate(cfg)


if __name__ == "__main__":
    check_arguments("evaluate")
    main()
