"""Per-speaker statistics for speaker normalisation (model.speaker_norm): each speaker's mean
log-mel band levels over the voiced frames of all their clips, from clean audio (no
augmentation, each clip's first window as evaluation cuts it). No labels are read, so the
speakers of a corpus left out get theirs from their own clips, as a user's would."""

from __future__ import annotations

import torch
from torch.utils.data import DataLoader

from speech_emotion_recognition.data.datamodule import EmotionDataModule, EmotionDataset
from speech_emotion_recognition.features import LogMelFeatures, voiced_band_means


@torch.inference_mode()
def speaker_band_means(
    features: LogMelFeatures, datamodule: EmotionDataModule, batch_size: int = 64
) -> torch.Tensor:
    """(n_speakers, n_mels), rows in `datamodule.speakers()` order; each clip weighs by its
    voiced frames."""
    speakers = datamodule.speakers()
    clips = [c for part in datamodule.splits.values() for c in part]
    dataset = EmotionDataset(clips, datamodule.cache, datamodule.n_samples, train=False,
                             class_names=datamodule.labels, speakers=speakers)  # fmt: skip
    sums = torch.zeros(len(speakers), features.mel.n_mels)
    frames = torch.zeros(len(speakers))
    for waveforms, _, _, speaker in DataLoader(dataset, batch_size=batch_size):
        means, count = voiced_band_means(features.trimmed_db(waveforms))
        count = count.flatten().float()
        sums.index_add_(0, speaker, means.squeeze(1).squeeze(-1) * count[:, None])
        frames.index_add_(0, speaker, count)
    return sums / frames.clamp(min=1)[:, None]
