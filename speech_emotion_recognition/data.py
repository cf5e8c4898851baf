"""Corpora, the decoded-audio cache, speaker-independent splits, datasets and the DataModule."""

from __future__ import annotations

import csv
import hashlib
import logging
import os
import random
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, WeightedRandomSampler

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.emotions import EMOTIONS
from speech_emotion_recognition.preprocessing import (
    AudioError,
    audio_files,
    crop_or_pad,
    load_audio,
)

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
DATA_HINT = "Run `dvc pull` in the repository root (RAVDESS), or see README.md > Data."


@dataclass(frozen=True)
class Clip:
    """One labelled recording; `sex` (M/F, empty when unknown) balances speaker splits.

    `split` is empty unless the corpus itself fixes it (a manifest CSV with a split column).
    """

    path: str
    label: int
    speaker: str
    corpus: str
    sex: str = ""
    split: str = ""


def _require_dir(root: str | Path) -> Path:
    """The corpus folder, absolute, so clip paths mean the same from any working directory."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"Dataset folder not found: {root}. {DATA_HINT}")
    return root


RAVDESS_CODES = {"05": 0, "07": 1, "06": 2, "03": 3, "01": 4, "04": 5}
CREMAD_CODES = {"ANG": 0, "DIS": 1, "FEA": 2, "HAP": 3, "NEU": 4, "SAD": 5}
CREMAD_VOTES = {"A": 0, "D": 1, "F": 2, "H": 3, "N": 4, "S": 5}
EMODB_CODES = {"W": 0, "E": 1, "A": 2, "F": 3, "N": 4, "T": 5}
EMODB_FEMALE = {"08", "09", "13", "14", "16"}


def ravdess(root: str | Path) -> list[Clip]:
    """RAVDESS `03-01-EE-II-SS-RR-AA.wav`; calm (02) and surprised (08) are left out."""
    clips = []
    for path in audio_files(_require_dir(root)):
        parts = path.stem.split("-")
        if len(parts) != 7 or parts[2] not in RAVDESS_CODES:
            continue
        actor = parts[6]
        sex = "M" if int(actor) % 2 else "F"
        clips.append(Clip(str(path), RAVDESS_CODES[parts[2]], f"ravdess_{actor}", "ravdess", sex))
    return clips


def perceived_labels(votes: str | Path, id_prefix: str) -> dict[str, int]:
    """Majority crowd vote per clip from tabulatedVotes.csv; ties ("A:N") are left out.

    The file has one row per clip and rating modality; `id_prefix` picks the modality by the
    first digit of the row id (1: voice only, the ratings of what the audio conveys).
    """
    with open(votes, newline="") as f:
        rows = [r for r in csv.DictReader(f) if r[""].startswith(id_prefix)]
    return {r["fileName"]: CREMAD_VOTES[r["emoVote"]] for r in rows if r["emoVote"] in CREMAD_VOTES}


def cremad(
    root: str | Path,
    demographics: str | Path | None = None,
    label: str = "acted",
    votes: str | Path | None = None,
    votes_id_prefix: str = "1",
) -> list[Clip]:
    """CREMA-D `ActorID_Sentence_EMO_Level.wav`; sex from VideoDemographics.csv when given.

    `label="perceived"` uses the crowd's majority vote instead of the acted emotion.
    """
    sexes: dict[str, str] = {}
    if demographics and Path(demographics).is_file():
        with open(demographics, newline="") as f:
            sexes = {row["ActorID"]: row["Sex"][:1].upper() for row in csv.DictReader(f)}
    perceived = None
    if label == "perceived":
        if not votes or not Path(votes).is_file():
            raise FileNotFoundError(
                f"data.label=perceived needs {votes}: run `python scripts/download_cremad.py`"
            )
        perceived = perceived_labels(votes, votes_id_prefix)
    clips = []
    for path in audio_files(_require_dir(root)):
        parts = path.stem.split("_")
        if len(parts) != 4 or parts[2] not in CREMAD_CODES:
            continue
        emotion = CREMAD_CODES[parts[2]] if perceived is None else perceived.get(path.stem)
        if emotion is None:
            continue
        actor = parts[0]
        clips.append(Clip(str(path), emotion, f"cremad_{actor}", "cremad", sexes.get(actor, "")))
    return clips


def emodb(root: str | Path) -> list[Clip]:
    """EmoDB `03a01Wa.wav`: speaker in the first two digits, emotion as 6th letter (no boredom)."""
    clips = []
    for path in audio_files(_require_dir(root)):
        name = path.stem
        if len(name) < 6 or name[5] not in EMODB_CODES:
            continue
        speaker = name[:2]
        sex = "F" if speaker in EMODB_FEMALE else "M"
        clips.append(Clip(str(path), EMODB_CODES[name[5]], f"emodb_{speaker}", "emodb", sex))
    return clips


TESS_EMOTIONS = {name: label for label, name in enumerate(EMOTIONS)}
URDU_CODES = {"A": 0, "H": 3, "N": 4, "S": 5}


def tess(root: str | Path) -> list[Clip]:
    """TESS `<SPK>_<emotion>/<SPK>_<word>_<emotion>.flac`; both speakers (OAF, YAF) are female."""
    clips = []
    for path in audio_files(_require_dir(root)):
        parts = path.stem.split("_")
        emotion = parts[-1].lower()
        if len(parts) < 3 or emotion not in TESS_EMOTIONS:
            continue
        speaker = parts[0].upper()
        clips.append(Clip(str(path), TESS_EMOTIONS[emotion], f"tess_{speaker}", "tess", "F"))
    return clips


def urdu(root: str | Path) -> list[Clip]:
    """URDU `<Emotion>/S<sex><id>_F<n>_<E><n>.flac`: speaker `S<sex><id>`, emotion letter E."""
    clips = []
    for path in audio_files(_require_dir(root)):
        parts = path.stem.split("_")
        if len(parts) != 3 or len(parts[0]) < 3 or parts[2][:1] not in URDU_CODES:
            continue
        speaker = parts[0].upper()
        sex = speaker[1] if speaker[1] in "MF" else ""
        clips.append(Clip(str(path), URDU_CODES[parts[2][0]], f"urdu_{speaker}", "urdu", sex))
    return clips


def combine(
    root: str | Path, parts: Mapping[str, Callable[[str], list[Clip]] | None]
) -> list[Clip]:
    """Several corpora in one run: `parts` maps a folder below `root` to the parser of that folder.

    A part set to None is left out, so configs can drop one with `data.corpus.parts.TESS=null`.
    """
    root = _require_dir(root)
    return [c for name, parse in parts.items() if parse is not None for c in parse(root / name)]


MANIFEST_COLUMNS = ("path", "label", "speaker")


def manifest(root: str | Path) -> list[Clip]:
    """Your own CSV `path,label,speaker[,sex][,split]`: paths relative to the CSV, labels by name.

    A `split` column (train/val/test) is used as it is; without it the speaker split applies.
    Files that do not exist are listed in one warning and left out.
    """
    csv_path = Path(root).resolve()
    if not csv_path.is_file():
        raise FileNotFoundError(f"Manifest not found: {csv_path}. Give it as data.root=FILE.csv")
    with open(csv_path, newline="") as f:
        reader = csv.DictReader(f)
        columns = reader.fieldnames or []
        rows = list(reader)
    missing_columns = [c for c in MANIFEST_COLUMNS if c not in columns]
    if missing_columns:
        raise ValueError(
            f"{csv_path} lacks the column(s) {', '.join(missing_columns)}; it needs "
            f"{','.join(MANIFEST_COLUMNS)}[,sex][,split] (has {','.join(columns) or 'none'})."
        )
    problems = [
        f"line {i}: label {r['label']!r}"
        for i, r in enumerate(rows, start=2)
        if r["label"].strip().lower() not in EMOTIONS
    ] + [
        f"line {i}: split {r['split']!r}"
        for i, r in enumerate(rows, start=2)
        if "split" in columns and r["split"].strip() not in SPLITS
    ]
    if problems:
        raise ValueError(
            f"{csv_path}: {len(problems)} unknown value(s) ({'; '.join(problems[:5])}"
            f"{'; …' if len(problems) > 5 else ''}). Labels: {', '.join(EMOTIONS)}; "
            f"splits: {', '.join(SPLITS)}."
        )
    clips, absent = [], []
    for row in rows:
        path = (csv_path.parent / row["path"]).resolve()
        if not path.is_file():
            absent.append(str(path))
            continue
        clips.append(
            Clip(
                str(path),
                EMOTIONS.index(row["label"].strip().lower()),
                f"manifest_{row['speaker'].strip()}",
                "manifest",
                (row.get("sex") or "").strip().upper()[:1],
                (row.get("split") or "").strip(),
            )
        )
    if absent:
        log.warning("Skipped %d files listed in %s that do not exist:\n  %s", len(absent),
                    csv_path, "\n  ".join(absent))  # fmt: skip
    if not clips:
        raise FileNotFoundError(f"None of the files listed in {csv_path} exist.")
    return clips


def folder(root: str | Path) -> list[Clip]:
    """`root/<emotion>/**/file`; the speaker is the sub-folder below the emotion when there is one.

    Without speaker sub-folders every file is its own speaker, so the split is per file.
    """
    root = _require_dir(root)
    clips = []
    for label, name in enumerate(EMOTIONS):
        class_dir = root / name
        if not class_dir.is_dir():
            continue
        for path in audio_files(class_dir):
            relative = path.relative_to(class_dir)
            speaker = relative.parts[0] if len(relative.parts) > 1 else path.stem
            clips.append(Clip(str(path), label, f"folder_{speaker}", "folder"))
    if not clips:
        raise FileNotFoundError(
            f"No audio in {root.resolve()}/<emotion>/ for any of {', '.join(EMOTIONS)}."
        )
    return clips


def _save_npy(path: Path, audio: np.ndarray) -> None:
    with open(path, "wb") as f:  # a file object, so numpy does not append ".npy" to the name
        np.save(f, audio.astype(np.float32), allow_pickle=False)


class AudioCache:
    """Decodes and resamples each file once per machine; later epochs and runs read .npy files.

    A file that fails is remembered as `<key>.bad` holding the reason, so it is reported once
    per run and never retried mid-epoch.
    """

    def __init__(self, directory: str | Path, sample_rate: int, min_rms: float) -> None:
        self.directory = Path(directory)
        self.sample_rate = sample_rate
        self.min_rms = min_rms
        self.memory: dict[str, np.ndarray] = {}

    def _key(self, path: str) -> Path:
        stat = os.stat(path)
        token = f"{Path(path).resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{self.sample_rate}"
        digest = hashlib.sha1(token.encode()).hexdigest()
        return self.directory / digest[:2] / digest

    def _write(self, target: Path, write: Callable[[Path], None]) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
        write(tmp)
        os.replace(tmp, target)

    def ensure(self, path: str) -> str | None:
        """Decode `path` into the cache if needed; returns the reason it is unusable, or None."""
        key = self._key(path)
        good, bad = key.with_suffix(".npy"), key.with_suffix(".bad")
        if good.exists():
            return None
        if bad.exists():
            return bad.read_text()
        try:
            audio = load_audio(path, self.sample_rate)
            rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
            if rms < self.min_rms:
                raise AudioError(f"near-silent (RMS {rms:.2e} < {self.min_rms:.0e})")
        except AudioError as error:
            reason = str(error)
            self._write(bad, lambda p: p.write_text(reason))
            return reason
        self._write(good, lambda p: _save_npy(p, audio))
        return None

    def load(self, path: str) -> np.ndarray:
        if path in self.memory:
            return self.memory[path]
        return np.load(self._key(path).with_suffix(".npy"), mmap_mode="r")

    def keep_in_memory(self, paths: Iterable[str]) -> None:
        """Read these clips into RAM once: DataLoader workers then share them without file I/O."""
        for path in paths:
            self.memory[path] = np.array(self.load(path))

    def filter(self, clips: Sequence[Clip], workers: int) -> list[Clip]:
        """Keep the clips that decode; one warning counts and lists the ones skipped."""
        with ThreadPoolExecutor(max(1, workers)) as pool:
            reasons = list(pool.map(self.ensure, (c.path for c in clips)))
        skipped = [(c.path, r) for c, r in zip(clips, reasons, strict=True) if r is not None]
        if skipped:
            listing = "\n".join(f"  {p}: {r}" for p, r in skipped)
            log.warning("Skipped %d of %d files:\n%s", len(skipped), len(clips), listing)
        return [c for c, r in zip(clips, reasons, strict=True) if r is None]


def _take(items: list, fractions: Sequence[float]) -> list[list]:
    """Cut a shuffled list into len(fractions) + 1 parts; each fraction gets at least one item."""
    cuts, start = [], 0
    for fraction in fractions:
        n = max(1, round(fraction * len(items))) if len(items) > len(fractions) else 0
        cuts.append(items[start : start + n])
        start += n
    return [items[start:], *cuts]


def _speakers_by_sex(clips: Sequence[Clip]) -> dict[str, list[str]]:
    by_sex: dict[str, list[str]] = defaultdict(list)
    for speaker, sex in sorted({(c.speaker, c.sex) for c in clips}):
        by_sex[sex].append(speaker)
    return by_sex


def _assign(clips: Sequence[Clip], assignment: Mapping[str, str]) -> dict[str, list[Clip]]:
    return {name: [c for c in clips if assignment[c.speaker] == name] for name in SPLITS}


def split_by_speaker(
    clips: Sequence[Clip], val: float, test: float, seed: int
) -> dict[str, list[Clip]]:
    """Whole speakers per split, drawn separately from each sex so every split stays balanced."""
    by_sex = _speakers_by_sex(clips)
    if sum(len(s) for s in by_sex.values()) < 3:
        raise ValueError(
            f"Corpus {clips[0].corpus} has fewer than 3 speakers, too few for speaker-independent "
            "validation and test: add it to data.train_only or use split=random."
        )
    rng = random.Random(seed)
    assignment: dict[str, str] = {}
    for _, speakers in sorted(by_sex.items()):
        rng.shuffle(speakers)
        for name, part in zip(SPLITS, _take(speakers, (val, test)), strict=True):
            assignment.update(dict.fromkeys(part, name))
    return _assign(clips, assignment)


def split_kfold(
    clips: Sequence[Clip], folds: int, fold: int, val: float, seed: int
) -> dict[str, list[Clip]]:
    """Speaker k-fold: fold `fold` of `folds` is the test set, validation speakers come from
    the other folds. Speakers are dealt to folds sex by sex, so folds stay balanced by sex,
    and the folds of one seed partition the speakers: every speaker is tested exactly once."""
    if not 0 <= fold < folds:
        raise ValueError(f"split.fold={fold} is outside 0..{folds - 1} (split.folds={folds}).")
    by_sex = _speakers_by_sex(clips)
    n_speakers = sum(len(s) for s in by_sex.values())
    if n_speakers < folds + 1:
        raise ValueError(
            f"Corpus {clips[0].corpus} has {n_speakers} speakers, too few for {folds} folds plus "
            "validation: lower split.folds or add it to data.train_only."
        )
    rng = random.Random(seed)
    assignment: dict[str, str] = {}
    dealt = 0
    for _, speakers in sorted(by_sex.items()):
        rng.shuffle(speakers)
        rest = []
        for speaker in speakers:
            if (dealt % folds) == fold:
                assignment[speaker] = "test"
            else:
                rest.append(speaker)
            dealt += 1
        train, validation = _take(rest, (val,))
        assignment.update(dict.fromkeys(train, "train"))
        assignment.update(dict.fromkeys(validation, "val"))
    return _assign(clips, assignment)


def split_random(
    clips: Sequence[Clip], val: float, test: float, seed: int
) -> dict[str, list[Clip]]:
    """Per-class random split that ignores speakers: only for comparison with older papers."""
    rng = random.Random(seed)
    parts: dict[str, list[Clip]] = {name: [] for name in SPLITS}
    for label in sorted({c.label for c in clips}):
        members = [c for c in clips if c.label == label]
        rng.shuffle(members)
        for name, part in zip(SPLITS, _take(members, (val, test)), strict=True):
            parts[name].extend(part)
    return {name: sorted(part, key=lambda c: c.path) for name, part in parts.items()}


SPLITTERS = {"speaker": split_by_speaker, "kfold": split_kfold, "random": split_random}


def split_corpora(
    clips: Sequence[Clip], split: Mapping, seed: int, train_only: Sequence[str] = ()
) -> dict[str, list[Clip]]:
    """Split each corpus on its own, so mixing corpora never moves one corpus's test speakers.

    `split` is the split config: `kind` picks the splitter, the other keys are its arguments.
    Corpora named in `train_only` (e.g. TESS, with two speakers) go to training whole.
    """
    kind, params = split["kind"], {k: v for k, v in split.items() if k != "kind"}
    parts: dict[str, list[Clip]] = {name: [] for name in SPLITS}
    for corpus in sorted({c.corpus for c in clips}):
        members = [c for c in clips if c.corpus == corpus]
        if corpus in train_only:
            parts["train"].extend(members)
            continue
        if all(c.split for c in members):  # the corpus fixes its own split
            for c in members:
                parts[c.split].append(c)
            continue
        for name, part in SPLITTERS[kind](members, seed=seed, **params).items():
            parts[name].extend(part)
    return parts


def repo_relative(path: str) -> str:
    """Paths inside the repository relative to it, so manifests, their DVC hashes and reports
    do not depend on where the repository is checked out."""
    resolved = Path(path).resolve()
    return str(resolved.relative_to(PROJECT_ROOT)) if PROJECT_ROOT in resolved.parents else path


def write_manifest(clips: Iterable[Clip], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[field.name for field in fields(Clip)])
        writer.writeheader()
        writer.writerows({**asdict(c), "path": repo_relative(c.path)} for c in clips)
    os.replace(tmp, path)


def read_manifest(path: Path) -> list[Clip]:
    with open(path, newline="") as f:
        return [
            Clip(**{**row, "path": str(PROJECT_ROOT / row["path"]), "label": int(row["label"])})
            for row in csv.DictReader(f)
        ]


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
    ) -> None:
        self.clips = list(clips)
        self.cache = cache
        self.n_samples = n_samples
        self.train = train
        self.augment = augment
        self.corpus_index = {name: i for i, name in enumerate(corpora)}

    def __len__(self) -> int:
        return len(self.clips)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        """(waveform, label, index of the clip's corpus in `corpora`, -1 when not listed)."""
        clip = self.clips[index]
        audio = self.cache.load(clip.path)
        offset = 0
        if self.train and len(audio) > self.n_samples:
            offset = int(torch.randint(len(audio) - self.n_samples + 1, ()).item())
        segment = crop_or_pad(audio, self.n_samples, offset).astype(np.float32)
        if self.train and self.augment is not None:
            segment = self.augment(samples=segment, sample_rate=self.cache.sample_rate)
        waveform = torch.from_numpy(np.ascontiguousarray(segment, dtype=np.float32))
        return waveform, clip.label, self.corpus_index.get(clip.corpus, -1)


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
        in_memory: bool = False,
        corpus_weights: Mapping[str, float] | None = None,
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
        self.in_memory = in_memory
        self.corpus_weights = dict(corpus_weights or {})
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
        """Decode every clip once and write the split manifests (rank 0 only under DDP)."""
        manifests = self._manifests()
        if all(p.exists() for p in manifests.values()):
            return
        clips = self.cache.filter(self.clips(), self.num_workers)
        if not clips:
            raise RuntimeError("No usable audio left after skipping unreadable or silent files.")
        splits = split_corpora(clips, self.split, self.seed, self.train_only)
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
        return [c.label for c in self.splits["train"]]

    def corpora(self) -> list[str]:
        """The corpora of all splits, sorted: batches carry an index into this list."""
        return sorted({c.corpus for part in self.splits.values() for c in part})

    def _loader(self, name: str) -> DataLoader:
        train = name == "train"
        dataset = EmotionDataset(
            self.splits[name], self.cache, self.n_samples, train, self.augment, self.corpora()
        )
        sampler = self._weighted_sampler(dataset) if train and self.corpus_weights else None
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

    def _weighted_sampler(self, dataset: EmotionDataset) -> WeightedRandomSampler:
        """Each corpus's share of an epoch scaled by its weight (default 1), clips drawn with
        replacement, so a large easy corpus does not drown a small hard one."""
        weights = [self.corpus_weights.get(c.corpus, 1.0) for c in dataset.clips]
        generator = torch.Generator().manual_seed(self.seed)
        return WeightedRandomSampler(weights, len(weights), replacement=True, generator=generator)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train")

    def val_dataloader(self) -> DataLoader:
        return self._loader("val")

    def test_dataloader(self) -> DataLoader:
        return self._loader("test")
