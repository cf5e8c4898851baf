"""The Dataset and the Lightning DataModule: corpus -> cache -> split manifests -> loaders."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from speech_emotion_recognition.audio import crop_or_pad
from speech_emotion_recognition.data.cache import AudioCache
from speech_emotion_recognition.data.clips import SPLITS, Clip, read_manifest, write_manifest
from speech_emotion_recognition.data.duplicates import drop_duplicates
from speech_emotion_recognition.data.labels import select_labels
from speech_emotion_recognition.data.splits import split_corpora
from speech_emotion_recognition.data.teacher import teacher_rows
from speech_emotion_recognition.emotions import EMOTIONS

log = logging.getLogger(__name__)


class EmotionDataset(Dataset):
    """Fixed-length clips: a random window plus augmentations in training, the start otherwise."""

    def __init__(
        self,
        clips: Sequence[Clip],
        cache: AudioCache,
        n_samples: int,
        train: bool,
        augment: Callable[..., np.ndarray] | None = None,
        corpora: Sequence[str] = (),
        class_names: Sequence[str] = EMOTIONS,
        teacher: np.ndarray | None = None,
        copypaste_p: float = 0.0,
        speakers: Sequence[str] = (),
    ) -> None:
        self.clips = list(clips)
        self.teacher = teacher
        self.class_index = {name: i for i, name in enumerate(class_names)}
        self.cache = cache
        self.n_samples = n_samples
        self.train = train
        self.augment = augment
        self.corpus_index = {name: i for i, name in enumerate(corpora)}
        self.speaker_index = {name: i for i, name in enumerate(speakers)}
        self.copypaste_p = copypaste_p if train else 0.0
        self.neutral_of: dict[tuple[str, str], list[int]] = defaultdict(list)
        for i, clip in enumerate(self.clips if self.copypaste_p > 0 else ()):
            if clip.label == "neutral":
                self.neutral_of[clip.corpus, clip.speaker].append(i)

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple:
        """(waveform, index of its label in `class_names`, index of its corpus in `corpora` and
        of its speaker in `speakers` (`speaker_key`), -1 when not listed) and, with a teacher,
        the teacher's logits of the clip (NaN: none)."""
        clip = self.clips[index]
        audio = self.cache.load(clip.path)
        if self.copypaste_p > 0:
            audio = self._copypaste(index, audio)
        offset = 0
        if self.train and len(audio) > self.n_samples:
            offset = int(torch.randint(len(audio) - self.n_samples + 1, ()).item())
        segment = crop_or_pad(audio, self.n_samples, offset).astype(np.float32)
        if self.train and self.augment is not None:
            segment = self.augment(samples=segment, sample_rate=self.cache.sample_rate)
        waveform = torch.from_numpy(np.ascontiguousarray(segment, dtype=np.float32))
        item = (
            waveform,
            self.class_index[clip.label],
            self.corpus_index.get(clip.corpus, -1),
            self.speaker_index.get(speaker_key(clip), -1),
        )
        return item if self.teacher is None else (*item, torch.from_numpy(self.teacher[index]))

    def _copypaste(self, index: int, audio: np.ndarray) -> np.ndarray:
        """CopyPaste (Pappagari et al., ICASSP 2021): with probability `copypaste_p` the clip
        joined, in random order, with a neutral clip of its speaker (at most half the window),
        keeping its own label: an emotion is still heard beside neutral speech."""
        clip = self.clips[index]
        others = [i for i in self.neutral_of.get((clip.corpus, clip.speaker), []) if i != index]
        if not others or torch.rand(()).item() >= self.copypaste_p:
            return audio
        pick = others[int(torch.randint(len(others), ()).item())]
        neutral = _random_part(self.cache.load(self.clips[pick].path), self.n_samples // 2)
        audio = _random_part(audio, self.n_samples - len(neutral))
        parts = (audio, neutral) if torch.rand(()).item() < 0.5 else (neutral, audio)
        return np.concatenate(parts)


def speaker_key(clip: Clip) -> str:
    """A speaker's name across corpora (two corpora may both have an actor "01")."""
    return f"{clip.corpus}/{clip.speaker}"


def _random_part(audio: np.ndarray, length: int) -> np.ndarray:
    """At most `length` samples of `audio`, from a random start."""
    if len(audio) <= length:
        return audio
    offset = int(torch.randint(len(audio) - length + 1, ()).item())
    return audio[offset : offset + length]


class EmotionDataModule(L.LightningDataModule):
    """Corpus parser(root) -> decoded cache -> split manifests in the run folder -> DataLoaders.

    Manifests already present in `manifest_dir` are reused (a resumed run, or `dvc repro`'s
    prepare stage), so a split is made once and every later step reads the same one.
    """

    def __init__(
        self,
        corpus: Callable[[str], list[Clip]],
        root: str,
        split: dict,
        cache_dir: str,
        manifest_dir: str,
        sample_rate: int,
        max_seconds: float,
        min_rms: float,
        batch_size: int,
        num_workers: int,
        pin_memory: bool,
        seed: int,
        augment: Callable[..., np.ndarray] | None = None,
        label: str | None = None,
        train_only: Sequence[str] = (),
        test_only: Sequence[str] = (),
        in_memory: bool = False,
        corpus_weights: Mapping[str, float] | None = None,
        balance_corpora: bool = False,
        labels: Sequence[str] | None = None,
        require_labels: bool = True,
        teacher_logits: str | None = None,
        teacher_root: str | None = None,
        copypaste_p: float = 0.0,
    ) -> None:
        super().__init__()
        self.corpus = corpus
        self.root = root
        self.label = label
        self.split = dict(split)
        self.cache = AudioCache(cache_dir, sample_rate, min_rms)
        self.manifest_dir = Path(manifest_dir)
        self.n_samples = int(sample_rate * max_seconds)
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.pin_memory = pin_memory
        self.seed = seed
        self.augment = augment
        self.train_only = list(train_only)
        self.test_only = list(test_only)
        self.in_memory = in_memory
        self.corpus_weights = dict(corpus_weights or {})
        self.balance_corpora = balance_corpora
        self.labels = list(labels or EMOTIONS)
        self.require_labels = require_labels
        self.teacher_logits = teacher_logits
        self.teacher_root = teacher_root or root
        self.copypaste_p = copypaste_p
        self.splits: dict[str, list[Clip]] = {}

    def clips(self) -> list[Clip]:
        """The corpus; `label` picks a labelling where a corpus has several (CREMA-D: perceived)."""
        return (
            self.corpus(self.root)
            if self.label is None
            else self.corpus(self.root, label=self.label)
        )

    def _manifests(self) -> dict[str, Path]:
        return {name: self.manifest_dir / f"{name}.csv" for name in SPLITS}

    def prepare_data(self) -> None:
        """Decode every clip once, drop repeated audio (duplicates.py) and write the split
        manifests (rank 0 only under DDP)."""
        manifests = self._manifests()
        if all(p.exists() for p in manifests.values()):
            return
        clips = select_labels(self.clips(), self.labels, self.test_only, self.require_labels)
        clips = drop_duplicates(self.cache.filter(clips, self.num_workers), self.cache.load)
        if not clips:
            raise RuntimeError("No usable audio left after skipping unreadable or silent files.")
        splits = split_corpora(clips, self.split, self.seed, self.train_only, self.test_only)
        for name, path in manifests.items():
            write_manifest(splits[name], path)
        sizes = ", ".join(f"{n} {len(splits[n])}" for n in SPLITS)
        log.info(
            "Wrote %s split manifests to %s (%s clips)",
            self.split["kind"],
            self.manifest_dir,
            sizes,
        )

    def setup(self, stage: str | None = None) -> None:
        if self.splits:
            return
        self.prepare_data()
        self.splits = {
            name: self.cache.filter(read_manifest(path), self.num_workers)
            for name, path in self._manifests().items()
        }
        if self.in_memory:
            self.cache.keep_in_memory(c.path for part in self.splits.values() for c in part)

    def train_labels(self) -> list[int]:
        """The training clips' labels as indices into `labels`."""
        return [self.labels.index(c.label) for c in self.splits["train"]]

    def corpora(self) -> list[str]:
        """The corpora of all splits, sorted: batches carry an index into this list."""
        return sorted({c.corpus for part in self.splits.values() for c in part})

    def speakers(self) -> list[str]:
        """Every speaker of all splits (`speaker_key`), sorted: batches carry an index into it."""
        return sorted({speaker_key(c) for part in self.splits.values() for c in part})

    def _loader(self, name: str) -> DataLoader:
        train = name == "train"
        dataset = EmotionDataset(
            self.splits[name],
            self.cache,
            self.n_samples,
            train,
            self.augment,
            self.corpora(),
            self.labels,
            self._teacher() if train else None,
            self.copypaste_p,
            self.speakers(),
        )
        weighted = self.corpus_weights or self.balance_corpora
        sampler = self._weighted_sampler(dataset) if train and weighted else None
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=train and sampler is None,
            sampler=sampler,
            drop_last=train and len(dataset) > self.batch_size,
            num_workers=self.num_workers,
            pin_memory=self.pin_memory,
            persistent_workers=self.num_workers > 0,
        )

    def _teacher(self) -> np.ndarray | None:
        """The teacher's logits of each training clip, when distilling."""
        if self.teacher_logits is None:
            return None
        return teacher_rows(
            self.teacher_logits, self.teacher_root, self.splits["train"], self.labels
        )

    def _weighted_sampler(self, dataset: EmotionDataset) -> WeightedRandomSampler:
        """Each corpus's share of an epoch scaled by its weight (default 1), clips drawn with
        replacement, so a large easy corpus does not drown a small hard one; with
        `balance_corpora` the shares start equal instead of proportional to corpus size."""
        sizes = Counter(c.corpus for c in dataset.clips) if self.balance_corpora else Counter()
        weights = [
            self.corpus_weights.get(c.corpus, 1.0) / sizes.get(c.corpus, 1) for c in dataset.clips
        ]
        generator = torch.Generator().manual_seed(self.seed)
        return WeightedRandomSampler(weights, len(weights), replacement=True, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
