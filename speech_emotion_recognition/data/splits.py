"""Speaker-independent splits: whole speakers per split, balanced by sex, corpus by corpus."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Mapping, Sequence

from speech_emotion_recognition.data.clips import SPLITS, Clip


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


def split_leave_corpus_out(
    clips: Sequence[Clip], held_out: str, val: float, seed: int
) -> dict[str, list[Clip]]:
    """Cross-corpus: the corpus `held_out` is the whole test set; any other corpus trains, with
    a fraction `val` of its speakers (drawn per sex) for validation, so model selection never
    sees the held-out corpus."""
    if clips[0].corpus == held_out:
        return {"train": [], "val": [], "test": list(clips)}
    rng = random.Random(seed)
    assignment: dict[str, str] = {}
    for _, speakers in sorted(_speakers_by_sex(clips).items()):
        rng.shuffle(speakers)
        train, validation = _take(speakers, (val,))
        assignment.update(dict.fromkeys(train, "train"))
        assignment.update(dict.fromkeys(validation, "val"))
    return _assign(clips, assignment)


SPLITTERS = {
    "speaker": split_by_speaker,
    "kfold": split_kfold,
    "random": split_random,
    "leave_corpus_out": split_leave_corpus_out,
}


def split_corpora(
    clips: Sequence[Clip],
    split: Mapping,
    seed: int,
    train_only: Sequence[str] = (),
    test_only: Sequence[str] = (),
) -> dict[str, list[Clip]]:
    """Split each corpus on its own, so mixing corpora never moves one corpus's test speakers.

    `split` is the split config: `kind` picks the splitter, the other keys are its arguments.
    Corpora named in `train_only` (e.g. TESS, with two speakers) go to training whole, unless
    a leave-corpus-out split holds them out; corpora in `test_only` go to the test set whole
    (an unseen corpus measured beside the others' own test speakers, as the ablation does).
    """
    kind, params = split["kind"], {k: v for k, v in split.items() if k != "kind"}
    corpora = sorted({c.corpus for c in clips})
    if kind == "leave_corpus_out" and params["held_out"] not in corpora:
        raise ValueError(
            f"split.held_out={params['held_out']} is not a corpus of this data option; "
            f"it has {', '.join(corpora)}."
        )
    parts: dict[str, list[Clip]] = {name: [] for name in SPLITS}
    for corpus in corpora:
        members = [c for c in clips if c.corpus == corpus]
        if corpus in test_only:
            parts["test"].extend(members)
            continue
        if corpus in train_only and split.get("held_out") != corpus:
            parts["train"].extend(members)
            continue
        if all(c.split for c in members):  # the corpus fixes its own split
            for c in members:
                parts[c.split].append(c)
            continue
        for name, part in SPLITTERS[kind](members, seed=seed, **params).items():
            parts[name].extend(part)
    return parts
