"""Corpus parsers: a folder (or CSV) in, labelled clips out. Each parser knows its corpus's
file names, label codes and speaker and sex rules; `conf/data/<name>.yaml` points at it, so a
new corpus is one function here and one config file. Clips carry every emotion their corpus
has, by name; the run's label set (conf/labels/) picks the ones it trains on."""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Mapping
from pathlib import Path

from speech_emotion_recognition.audio import audio_files
from speech_emotion_recognition.data.clips import SPLITS, Clip
from speech_emotion_recognition.emotions import EMOTIONS

log = logging.getLogger(__name__)

DATA_HINT = "Run `dvc pull` in the repository root (RAVDESS), or see README.md > Data."


def download_hint(corpus: str) -> str:
    """How to get a corpus that is not on the DVC remote (scripts/download_corpus.py)."""
    command = f"python scripts/download_corpus.py corpus={corpus}"
    return (
        f"Get it with `{command}`, or import a copy already on this machine with "
        f"`{command} source_dir=DIR` (README.md > Data)."
    )


def _require_dir(root: str | Path, hint: str = DATA_HINT) -> Path:
    """The corpus folder, absolute, so clip paths mean the same from any working directory."""
    root = Path(root).resolve()
    if not root.is_dir():
        raise FileNotFoundError(f"Dataset folder not found: {root}. {hint}")
    return root


RAVDESS_CODES = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fear",
    "07": "disgust",
    "08": "surprised",
}
CREMAD_CODES = {"ANG": "angry", "DIS": "disgust", "FEA": "fear", "HAP": "happy",
                "NEU": "neutral", "SAD": "sad"}  # fmt: skip
CREMAD_VOTES = {code[0]: name for code, name in CREMAD_CODES.items()}
EMODB_CODES = {"W": "angry", "E": "disgust", "A": "fear", "F": "happy", "N": "neutral",
               "T": "sad", "L": "boredom"}  # fmt: skip
EMODB_FEMALE = {"08", "09", "13", "14", "16"}


def ravdess(root: str | Path) -> list[Clip]:
    """RAVDESS `03-01-EE-II-SS-RR-AA.wav`: eight emotions (calm and surprised beside the six)."""
    clips = []
    for path in audio_files(_require_dir(root)):
        parts = path.stem.split("-")
        if len(parts) != 7 or parts[2] not in RAVDESS_CODES:
            continue
        actor = parts[6]
        sex = "M" if int(actor) % 2 else "F"
        clips.append(Clip(str(path), RAVDESS_CODES[parts[2]], f"ravdess_{actor}", "ravdess", sex))
    return clips


def perceived_labels(votes: str | Path, id_prefix: str) -> dict[str, str]:
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
    """CREMA-D `ActorID_Sentence_EMO_Level.wav`; the actors' sex from VideoDemographics.csv.

    The metadata CSVs are looked for in `root` and the folder above it (CREMA-D/ holds them
    beside AudioWAV/) unless given. `label="perceived"` uses the crowd's majority vote instead
    of the acted emotion.
    """
    root = _require_dir(root, download_hint("cremad"))
    demographics = demographics or _beside(root, "VideoDemographics.csv")
    votes = votes or _beside(root, "tabulatedVotes.csv")
    sexes: dict[str, str] = {}
    if demographics and Path(demographics).is_file():
        with open(demographics, newline="") as f:
            sexes = {row["ActorID"]: row["Sex"][:1].upper() for row in csv.DictReader(f)}
    else:
        log.warning("No VideoDemographics.csv beside %s: CREMA-D splits ignore sex", root)
    perceived = None
    if label == "perceived":
        if not votes or not Path(votes).is_file():
            raise FileNotFoundError(
                f"data.label=perceived needs tabulatedVotes.csv beside {root}. "
                + download_hint("cremad")
            )
        perceived = perceived_labels(votes, votes_id_prefix)
    clips = []
    for path in audio_files(root):
        parts = path.stem.split("_")
        if len(parts) != 4 or parts[2] not in CREMAD_CODES:
            continue
        emotion = CREMAD_CODES[parts[2]] if perceived is None else perceived.get(path.stem)
        if emotion is None:
            continue
        actor = parts[0]
        clips.append(Clip(str(path), emotion, f"cremad_{actor}", "cremad", sexes.get(actor, "")))
    return clips


def _beside(root: Path, name: str) -> Path | None:
    return next((p for p in (root / name, root.parent / name) if p.is_file()), None)


def emodb(root: str | Path) -> list[Clip]:
    """EmoDB `03a01Wa.wav`: speaker in the first two digits, emotion as 6th letter."""
    clips = []
    for path in audio_files(_require_dir(root)):
        name = path.stem
        if len(name) < 6 or name[5] not in EMODB_CODES:
            continue
        speaker = name[:2]
        sex = "F" if speaker in EMODB_FEMALE else "M"
        clips.append(Clip(str(path), EMODB_CODES[name[5]], f"emodb_{speaker}", "emodb", sex))
    return clips


TESS_EMOTIONS = {**{name: name for name in EMOTIONS}, "ps": "surprised"}  # pleasant surprise
URDU_CODES = {"A": "angry", "H": "happy", "N": "neutral", "S": "sad"}


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


NEMO_EMOTIONS = {"anger": "angry", "fear": "fear", "happiness": "happy", "neutral": "neutral",
                 "sadness": "sad", "surprised": "surprised"}  # fmt: skip


def nemo(root: str | Path, metadata: str | Path | None = None) -> list[Clip]:
    """nEMO `samples/{speaker}_{emotion}_{n}.wav` (Polish, nine actors); each speaker's sex
    from `data.tsv` (found in `root` or the folder above it unless given). Its "surprised" is
    the same class as RAVDESS's and TESS's."""
    root = _require_dir(root, download_hint("nemo"))
    metadata = metadata or _beside(root, "data.tsv")
    sexes: dict[str, str] = {}
    if metadata and Path(metadata).is_file():
        with open(metadata, newline="", encoding="utf-8") as f:
            sexes = {row["speaker_id"].strip(): row["gender"].strip()[:1].upper()
                     for row in csv.DictReader(f, delimiter="\t")}  # fmt: skip
    else:
        log.warning("No data.tsv beside %s: nEMO splits ignore sex", root)
    clips = []
    for path in audio_files(root):
        parts = path.stem.split("_")
        if len(parts) != 3 or parts[1] not in NEMO_EMOTIONS:
            continue
        speaker, emotion = parts[0].upper(), NEMO_EMOTIONS[parts[1]]
        clips.append(Clip(str(path), emotion, f"nemo_{speaker}", "nemo", sexes.get(speaker, "")))
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
    """Your own CSV `path,label,speaker[,sex][,split]`: paths relative to the CSV, labels by name
    (any names: the run's label set says which it trains on).

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
        if not r["label"].strip()
    ] + [
        f"line {i}: split {r['split']!r}"
        for i, r in enumerate(rows, start=2)
        if "split" in columns and r["split"].strip() not in SPLITS
    ]
    if problems:
        raise ValueError(
            f"{csv_path}: {len(problems)} unknown value(s) ({'; '.join(problems[:5])}"
            f"{'; …' if len(problems) > 5 else ''}). Labels are emotion names; "
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
                row["label"].strip().lower(),
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
    """`root/<emotion>/**/file`, any emotion names; the speaker is the sub-folder below the
    emotion when there is one. Without speaker sub-folders every file is its own speaker, so
    the split is per file.
    """
    root = _require_dir(root)
    clips = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir()):
        for path in audio_files(class_dir):
            relative = path.relative_to(class_dir)
            speaker = relative.parts[0] if len(relative.parts) > 1 else path.stem
            clips.append(Clip(str(path), class_dir.name.lower(), f"folder_{speaker}", "folder"))
    if not clips:
        raise FileNotFoundError(
            f"No audio in {root.resolve()}/<emotion>/ (one folder per emotion, e.g. "
            f"{', '.join(EMOTIONS)})."
        )
    if all(Path(c.path).parent.parent == root for c in clips):
        log.warning(
            "%s has no speaker folders (<emotion>/<speaker>/file): every file counts as its own "
            "speaker, so validation and test hold recordings of the people training heard, and "
            "a split of few files may miss classes. Put each speaker's files in a folder of "
            "their own, or give data=manifest a CSV with a speaker column.",
            root,
        )
    return clips
