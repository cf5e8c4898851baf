import logging
import re
import zlib
from collections import Counter
from pathlib import Path

import hydra
import numpy as np
import pytest
import soundfile as sf

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.audio import crop_or_pad
from speech_emotion_recognition.data import cache as data_cache
from speech_emotion_recognition.data import corpora, datamodule
from speech_emotion_recognition.data.cache import AudioCache
from speech_emotion_recognition.data.clips import SPLITS, Clip, read_manifest, write_manifest
from speech_emotion_recognition.data.corpora import cremad, emodb, folder, nemo, ravdess, tess, urdu
from speech_emotion_recognition.data.splits import (
    split_by_speaker,
    split_corpora,
    split_kfold,
    split_random,
)
from speech_emotion_recognition.emotions import EMOTIONS
from tests.audio import named_corpora, tone, write
from tests.conftest import SEPARABLE_LABELS

RATE = 16000


def speech(path: Path, seconds: float = 0.5, rate: int = RATE, channels: int = 1) -> Path:
    """A tone of its own per file name (identical files would be dropped as duplicates)."""
    rng = np.random.default_rng(zlib.crc32("/".join(path.parts[-3:]).encode()))
    return write(path, tone(220.0, seconds, rate, rng, channels), rate)


def test_ravdess_label_map_and_speakers(tmp_path):
    # emotion codes 01..08: neutral calm happy sad angry fearful disgust surprised
    for code in range(1, 9):
        speech(tmp_path / "Actor_03" / f"03-01-{code:02d}-01-01-01-03.wav")
    speech(tmp_path / "Actor_12" / "03-01-05-02-02-01-12.wav")
    clips = ravdess(tmp_path)
    labels = {Path(c.path).name.split("-")[2]: c.label for c in clips if c.speaker.endswith("03")}
    assert labels == {"01": "neutral", "02": "calm", "03": "happy", "04": "sad", "05": "angry",
                      "06": "fear", "07": "disgust", "08": "surprised"}  # fmt: skip
    sexes = {c.speaker: c.sex for c in clips}
    assert sexes == {"ravdess_03": "M", "ravdess_12": "F"}


def test_cremad_label_map_and_demographics(tmp_path):
    for emotion in ("ANG", "DIS", "FEA", "HAP", "NEU", "SAD"):
        speech(tmp_path / "AudioWAV" / f"1001_DFA_{emotion}_XX.wav")
    speech(tmp_path / "AudioWAV" / "1002_IEO_HAP_HI.wav")
    demographics = tmp_path / "VideoDemographics.csv"
    demographics.write_text('"ActorID","Age","Sex"\n1001,51,"Male"\n1002,21,"Female"\n')
    clips = cremad(tmp_path / "AudioWAV", demographics)
    assert [c.label for c in clips if c.speaker == "cremad_1001"] == list(EMOTIONS)
    assert {c.speaker: c.sex for c in clips} == {"cremad_1001": "M", "cremad_1002": "F"}


def test_emodb_label_map(tmp_path):
    for letter in "WEAFNTL":
        speech(tmp_path / f"03a01{letter}a.wav")
    speech(tmp_path / "08b02Tc.wav")
    clips = emodb(tmp_path)
    assert [c.label for c in clips if c.speaker == "emodb_03"] == [
        "fear", "disgust", "happy", "boredom", "neutral", "sad", "angry"
    ]  # fmt: skip
    assert {c.speaker: c.sex for c in clips} == {"emodb_03": "M", "emodb_08": "F"}


def test_folder_corpus_uses_class_and_speaker_folders(tmp_path):
    speech(tmp_path / "sad" / "alice" / "a.wav")
    speech(tmp_path / "happy" / "b.flac")
    speech(tmp_path / "Bored" / "c.wav")  # any class name: the label set picks
    clips = folder(tmp_path)
    assert {(c.label, c.speaker) for c in clips} == {
        ("sad", "folder_alice"),
        ("happy", "folder_b"),
        ("bored", "folder_c"),
    }


def test_folder_without_speaker_folders_says_so(tmp_path, caplog):
    for emotion in ("angry", "sad"):
        speech(tmp_path / "flat" / emotion / "a.wav")
        speech(tmp_path / "nested" / emotion / "bob" / "a.wav")
    with caplog.at_level(logging.WARNING):
        folder(tmp_path / "nested")
    assert "no speaker folders" not in caplog.text
    with caplog.at_level(logging.WARNING):
        assert {c.speaker for c in folder(tmp_path / "flat")} == {"folder_a"}
    assert "no speaker folders" in caplog.text


def test_missing_dataset_names_path_and_command(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"nowhere.*dvc pull"):
        ravdess(tmp_path / "nowhere")


def corpus(n_speakers: int = 20, per_speaker: int = 12) -> list[Clip]:
    return [
        Clip(f"/corpus/s{s:02d}_{i}.wav", EMOTIONS[i % 6], f"spk{s:02d}", "test", "MF"[s % 2])
        for s in range(n_speakers)
        for i in range(per_speaker)
    ]


def test_speaker_split_is_disjoint_balanced_and_deterministic():
    clips = corpus()
    splits = split_by_speaker(clips, val=0.1, test=0.1, seed=7)
    speakers = {name: {c.speaker for c in part} for name, part in splits.items()}
    assert not speakers["train"] & speakers["val"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["val"] & speakers["test"]
    assert sum(len(p) for p in splits.values()) == len(clips)
    for name in ("val", "test"):  # one man and one woman each
        assert sorted(c.sex for c in splits[name] if c.path.endswith("_0.wav")) == ["F", "M"]
    assert split_by_speaker(clips, 0.1, 0.1, seed=7) == splits
    assert split_by_speaker(clips, 0.1, 0.1, seed=8) != splits


def speaker_sets(splits: dict[str, list[Clip]]) -> dict[str, set[str]]:
    return {name: {c.speaker for c in part} for name, part in splits.items()}


def test_kfold_tests_every_speaker_once_with_sex_balanced_folds():
    clips = corpus(n_speakers=20)
    sexes = {c.speaker: c.sex for c in clips}
    folds = [split_kfold(clips, folds=5, fold=i, val=0.1, seed=3) for i in range(5)]
    tested = [speaker_sets(f)["test"] for f in folds]
    assert sorted(s for t in tested for s in t) == sorted(sexes)  # a partition of the speakers
    for split, test in zip(folds, tested, strict=True):
        speakers = speaker_sets(split)
        assert sorted(sexes[s] for s in test) == ["F", "F", "M", "M"]
        assert sorted(sexes[s] for s in speakers["val"]) == ["F", "M"]
        assert not speakers["train"] & speakers["val"]
        assert not (speakers["train"] | speakers["val"]) & test
        assert sum(len(p) for p in split.values()) == len(clips)
    assert split_kfold(clips, 5, 2, 0.1, seed=3) == folds[2]
    assert speaker_sets(split_kfold(clips, 5, 2, 0.1, seed=4))["test"] != tested[2]


@pytest.mark.parametrize(
    ("n_speakers", "folds", "fold", "message"),
    [(20, 5, 5, "outside 0..4"), (20, 5, -1, "outside 0..4"), (5, 5, 0, "lower split.folds")],
)
def test_kfold_refuses_impossible_folds(n_speakers, folds, fold, message):
    with pytest.raises(ValueError, match=message):
        split_kfold(corpus(n_speakers=n_speakers), folds, fold, 0.1, seed=0)


def test_kfold_draws_folds_within_each_corpus(make_cfg, tmp_path):
    """data=multi_all with split=kfold: each corpus's folds partition its own speakers, and the
    train-only corpus (TESS) stays in training in every fold."""
    root = named_corpora(tmp_path / "corpora", speakers_per_sex=5)
    tested: dict[str, list[str]] = {"cremad": [], "ravdess": [], "urdu": []}
    for fold in range(2):
        run = tmp_path / f"fold{fold}"
        cfg = make_cfg(
            "data=multi_all", f"data.root={root}", "split=kfold", "split.folds=2",
            f"split.fold={fold}", output_dir=run,
        )  # fmt: skip
        hydra.utils.instantiate(cfg.data).setup()
        parts = {name: read_manifest(run / "splits" / f"{name}.csv") for name in SPLITS}
        for corpus_name in tested:
            mine = {n: {c.speaker for c in p if c.corpus == corpus_name} for n, p in parts.items()}
            assert not mine["test"] & (mine["train"] | mine["val"])
            assert mine["val"]
            tested[corpus_name] += sorted(mine["test"])
        assert {c.corpus for c in parts["test"]} == {"cremad", "ravdess", "urdu"}
        assert {c.corpus for c in parts["train"]} == {"cremad", "ravdess", "tess", "urdu"}
    assert sorted(tested["ravdess"]) == [f"ravdess_{a:02d}" for a in range(1, 11)]
    assert sorted(tested["cremad"]) == [f"cremad_{a}" for a in range(1001, 1011)]
    assert len(set(tested["urdu"])) == len(tested["urdu"]) == 10


def test_random_split_is_per_class_80_10_10():
    clips = corpus(n_speakers=10, per_speaker=60)
    splits = split_random(clips, val=0.1, test=0.1, seed=0)
    for label in EMOTIONS:
        sizes = [sum(c.label == label for c in splits[n]) for n in ("train", "val", "test")]
        assert sizes == [80, 10, 10]
    assert split_random(clips, 0.1, 0.1, seed=0) == splits


def test_manifest_round_trip(tmp_path):
    clips = corpus(2, 3)
    write_manifest(clips, tmp_path / "train.csv")
    assert read_manifest(tmp_path / "train.csv") == clips


def test_cache_decodes_once_and_resamples(tmp_path, monkeypatch):
    path = str(speech(tmp_path / "a.wav", seconds=1.0, rate=44100, channels=2))
    cache = AudioCache(tmp_path / "cache", RATE, min_rms=1e-4)
    assert cache.ensure(path) is None
    assert cache.load(path).shape == (RATE,)
    monkeypatch.setattr(data_cache, "load_audio", lambda *_: pytest.fail("decoded twice"))
    assert cache.ensure(path) is None


def test_bad_files_are_skipped_with_one_warning(tmp_path, caplog):
    good = speech(tmp_path / "good.wav")
    empty = tmp_path / "empty.wav"
    empty.write_bytes(b"")
    text = tmp_path / "notes.wav"
    text.write_text("not audio")
    silent = write(tmp_path / "silent.wav", np.zeros(RATE, dtype=np.float32), RATE)
    clips = [Clip(str(p), "angry", "s", "test") for p in (good, empty, text, silent)]
    cache = AudioCache(tmp_path / "cache", RATE, min_rms=1e-4)
    with caplog.at_level(logging.WARNING):
        kept = cache.filter(clips, workers=2)
    assert [c.path for c in kept] == [str(good)]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    message = warnings[0].getMessage()
    assert "Skipped 3 of 4" in message
    for name in ("empty.wav", "notes.wav", "silent.wav", "near-silent"):
        assert name in message


def test_cremad_perceived_labels_use_the_voice_only_majority_vote(tmp_path):
    for name in ("1001_DFA_ANG_XX", "1001_DFA_HAP_XX", "1001_IEO_SAD_LO"):
        speech(tmp_path / "AudioWAV" / f"{name}.wav")
    votes = tmp_path / "tabulatedVotes.csv"
    votes.write_text(
        '"","emoVote","fileName"\n'
        '"100001","N","1001_DFA_ANG_XX"\n'  # voice only: heard as neutral
        '"100002","A:N","1001_DFA_HAP_XX"\n'  # a tie: left out
        '"100003","S","1001_IEO_SAD_LO"\n'
        '"200001","A","1001_DFA_ANG_XX"\n'  # face only: ignored
    )
    clips = cremad(tmp_path / "AudioWAV", label="perceived", votes=votes)
    assert {Path(c.path).stem: c.label for c in clips} == {
        "1001_DFA_ANG_XX": "neutral",
        "1001_IEO_SAD_LO": "sad",
    }


def test_manifests_store_repository_paths_relative(tmp_path):
    inside = Clip(str(PROJECT_ROOT / "data" / "RAVDESS" / "a.wav"), "calm", "s", "ravdess", "F")
    outside = Clip(str(tmp_path / "b.wav"), "fear", "t", "folder")
    write_manifest([inside, outside], tmp_path / "m.csv")
    text = (tmp_path / "m.csv").read_text()
    assert "data/RAVDESS/a.wav" in text
    assert str(PROJECT_ROOT) not in text
    assert read_manifest(tmp_path / "m.csv") == [inside, outside]


def test_tess_and_urdu_parsers_read_speaker_sex_and_label(tmp_path):
    root = named_corpora(tmp_path)
    tess_clips = tess(root / "TESS")
    assert {c.speaker for c in tess_clips} == {"tess_OAF", "tess_YAF"}
    assert {c.sex for c in tess_clips} == {"F"}
    assert sorted({c.label for c in tess_clips}) == list(EMOTIONS)
    assert all(c.label in Path(c.path).stem for c in tess_clips)
    urdu_clips = urdu(root / "URDU")
    assert {c.sex for c in urdu_clips if c.speaker.startswith("urdu_SM")} == {"M"}
    assert {c.sex for c in urdu_clips if c.speaker.startswith("urdu_SF")} == {"F"}
    assert {c.label for c in urdu_clips} == {"angry", "happy", "neutral", "sad"}
    assert all(c.label[0].upper() == Path(c.path).stem[-3] for c in urdu_clips)


def test_nemo_parser_maps_its_emotion_names_and_reads_sex_from_data_tsv(tmp_path, caplog):
    root = named_corpora(tmp_path, speakers_per_sex=2)
    clips = nemo(root / "nEMO" / "samples")
    assert {c.speaker: c.sex for c in clips} == {
        "nemo_M10": "M", "nemo_M20": "M", "nemo_F10": "F", "nemo_F20": "F"
    }  # fmt: skip
    names = {"angry": "anger", "fear": "fear", "happy": "happiness", "neutral": "neutral",
             "sad": "sadness", "surprised": "surprised"}  # fmt: skip
    assert {c.label for c in clips} == set(names)
    assert all(f"_{names[c.label]}_" in Path(c.path).name for c in clips)
    (root / "nEMO" / "data.tsv").unlink()
    with caplog.at_level(logging.WARNING):
        assert {c.sex for c in nemo(root / "nEMO" / "samples")} == {""}
    assert "No data.tsv" in caplog.text


@pytest.mark.parametrize(("data", "labels", "surprised"),
                         [("multi_nemo", "six", False), ("nemo", "nemo", True)])  # fmt: skip
def test_nemo_surprised_is_kept_only_by_label_sets_that_have_it(make_cfg, tmp_path, data, labels,
                                                                 surprised):  # fmt: skip
    root = named_corpora(tmp_path / "corpora", speakers_per_sex=3)
    run = tmp_path / labels
    data_root = root / "nEMO" / "samples" if data == "nemo" else root
    cfg = make_cfg(f"data={data}", f"data.root={data_root}", f"labels={labels}", output_dir=run)
    hydra.utils.instantiate(cfg.data).setup()
    parts = [read_manifest(run / "splits" / f"{name}.csv") for name in SPLITS]
    kept = {c.label for part in parts for c in part if c.corpus == "nemo"}
    five = {"angry", "fear", "happy", "neutral", "sad"}
    assert kept == (five | {"surprised"} if surprised else five)


def test_mixed_corpora_keep_each_corpus_split_and_train_only_corpora(make_cfg, tmp_path):
    root = named_corpora(tmp_path / "corpora", speakers_per_sex=5)
    splits = {}
    for name, overrides in {
        "multi": ["data=multi_all", f"data.root={root}"],
        "ravdess": ["data=ravdess", f"data.root={root / 'RAVDESS'}"],
    }.items():
        module = hydra.utils.instantiate(make_cfg(*overrides, output_dir=tmp_path / name).data)
        module.setup()
        splits[name] = {
            part: read_manifest(tmp_path / name / "splits" / f"{part}.csv") for part in SPLITS
        }
    multi = splits["multi"]
    for part in SPLITS:
        alone = {c.speaker for c in splits["ravdess"][part]}
        assert {c.speaker for c in multi[part] if c.corpus == "ravdess"} == alone
        others = [{c.speaker for c in multi[p]} for p in SPLITS if p != part]
        assert all(not ({c.speaker for c in multi[part]} & o) for o in others)
    assert {c.corpus for c in multi["train"]} == {"cremad", "ravdess", "tess", "urdu"}
    assert {c.corpus for c in multi["val"] + multi["test"]} == {"cremad", "ravdess", "urdu"}


def test_speaker_split_refuses_a_corpus_with_too_few_speakers():
    clips = [
        Clip(f"/c/{s}_{i}.wav", EMOTIONS[i % 6], s, "tiny", "F") for s in "ab" for i in range(6)
    ]
    with pytest.raises(ValueError, match="data.train_only"):
        split_corpora(clips, {"kind": "speaker", "val": 0.1, "test": 0.1}, seed=0)
    parts = split_corpora(clips, {"kind": "speaker", "val": 0.1, "test": 0.1}, 0, ["tiny"])
    assert len(parts["train"]) == len(clips)


def test_test_only_corpora_go_to_test_whole_and_leave_the_others_split_unchanged():
    def corpus(name: str, speakers: int) -> list[Clip]:
        return [
            Clip(f"/{name}/{s}_{i}.wav", EMOTIONS[i % 6], f"{name}_{s}", name, "MF"[s % 2])
            for s in range(speakers)
            for i in range(6)
        ]

    clips = corpus("big", 10) + corpus("unseen", 4)
    split = {"kind": "speaker", "val": 0.1, "test": 0.1}
    parts = split_corpora(clips, split, seed=3, test_only=["unseen"])
    alone = split_corpora(corpus("big", 10), split, seed=3)
    assert [c for c in parts["test"] if c.corpus == "unseen"] == corpus("unseen", 4)
    assert all(c.corpus == "big" for c in parts["train"] + parts["val"])
    for name in SPLITS:
        assert [c for c in parts[name] if c.corpus == "big"] == alone[name]


def write_csv(path: Path, header: str, rows: list[str]) -> Path:
    path.write_text("\n".join([header, *rows]) + "\n")
    return path


def test_manifest_csv_with_and_without_split_column(tmp_path, caplog):
    root = named_corpora(tmp_path / "corpora", speakers_per_sex=3)
    files = sorted((root / "RAVDESS").rglob("*.wav"))
    relative = [str(f.relative_to(tmp_path)) for f in files]
    rows = [
        f"{r},{EMOTIONS[[5, 1, 2, 3, 4, 0][i % 6]].upper()},spk{i % 6},{'MF'[i % 2]}"
        for i, r in enumerate(relative)
    ]
    clips = corpora.manifest(write_csv(tmp_path / "plain.csv", "path,label,speaker,sex", rows))
    assert len(clips) == len(files) and {c.sex for c in clips} == {"M", "F"}
    assert all(Path(c.path).is_file() and not c.split for c in clips)

    fixed = [f"{r},{'train' if i % 3 else 'test'}" for i, r in enumerate(rows)]
    fixed.append("missing/clip.wav,sad,spk0,F,val")
    with caplog.at_level(logging.WARNING):
        clips = corpora.manifest(
            write_csv(tmp_path / "fixed.csv", "path,label,speaker,sex,split", fixed)
        )
    assert "missing/clip.wav" in caplog.text
    parts = split_corpora(clips, {"kind": "speaker", "val": 0.1, "test": 0.1}, seed=0)
    assert len(parts["test"]) == len([r for r in fixed if r.endswith(",test")])
    assert parts["val"] == []


@pytest.mark.parametrize(
    ("header", "row", "message"),
    [
        ("path,label", "a.wav,sad", "lacks the column(s) speaker"),
        ("path,label,speaker", "a.wav, ,s1", "label ' '"),
        ("path,label,speaker,split", "a.wav,sad,s1,dev", "split 'dev'"),
    ],
)
def test_manifest_errors_name_the_problem(tmp_path, header, row, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        corpora.manifest(write_csv(tmp_path / "bad.csv", header, [row]))


def mixed_training_loader(make_cfg, tmp_path, override: str):
    """The training DataLoader of data=multi_all on fake corpora, with one sampling override."""
    root = named_corpora(tmp_path / "corpora", speakers_per_sex=3)
    module = hydra.utils.instantiate(make_cfg("data=multi_all", f"data.root={root}", override).data)
    module.setup()
    return module.train_dataloader()


def test_corpus_weights_scale_each_corpus_share_of_training(make_cfg, tmp_path):
    loader = mixed_training_loader(make_cfg, tmp_path, "+data.corpus_weights.tess=0.0")
    drawn = [loader.dataset.clips[i].corpus for i in loader.sampler]
    assert len(drawn) == len(loader.dataset)
    assert "tess" not in drawn and {"ravdess", "urdu"} <= set(drawn)


def test_balance_corpora_gives_each_corpus_an_equal_share(make_cfg, tmp_path):
    loader = mixed_training_loader(make_cfg, tmp_path, "data.balance_corpora=true")
    weights = loader.sampler.weights
    shares = Counter()
    for clip, weight in zip(loader.dataset.clips, weights.tolist(), strict=True):
        shares[clip.corpus] += weight
    sizes = Counter(c.corpus for c in loader.dataset.clips)
    assert len(set(sizes.values())) > 1  # corpora of different sizes
    assert all(share == pytest.approx(1.0) for share in shares.values())


def test_augmentations_only_touch_training_items(tmp_path):
    root = named_corpora(tmp_path / "corpora", speakers_per_sex=1)
    cache = AudioCache(tmp_path / "cache", 16000, 1e-4)
    clips = cache.filter(ravdess(root / "RAVDESS")[:3], workers=1)
    calls = []

    def spy(samples, sample_rate):
        calls.append(len(samples))
        return samples + np.float32(0.5)

    n = 16000
    train_set = datamodule.EmotionDataset(clips, cache, n, train=True, augment=spy)
    eval_set = datamodule.EmotionDataset(clips, cache, n, train=False, augment=spy)
    plain = [crop_or_pad(np.asarray(cache.load(c.path)), n) for c in clips]
    for i, expected in enumerate(plain):
        first, again = eval_set[i][0].numpy(), eval_set[i][0].numpy()
        assert np.array_equal(first, expected) and np.array_equal(again, expected)
    assert calls == []
    augmented = train_set[0][0].numpy()
    assert calls == [n] and np.allclose(augmented.mean(), plain[0].mean() + 0.5, atol=0.1)


def fake_trees(root: Path) -> dict[str, list[str]]:
    """One tiny tree per parser, named as the real corpora, 6 speakers per sex (EmoDB has 5):
    data option -> its overrides."""
    named_corpora(root, speakers_per_sex=6, seconds=0.3)
    for speaker in ("03", "08", "09", "10", "11", "12", "13", "14", "15", "16"):
        for code in ("W", "F", "T"):
            speech(root / "EmoDB" / "wav" / f"{speaker}a01{code}a.wav", seconds=0.3)
    for speaker in range(12):
        for emotion in ("angry", "sad"):
            speech(root / "mine" / emotion / f"person{speaker}" / "a.wav", seconds=0.3)
    return {
        "ravdess": [f"data.root={root / 'RAVDESS'}"],
        "cremad": [f"data.root={root / 'CREMA-D' / 'AudioWAV'}"],
        "emodb": [f"data.root={root / 'EmoDB' / 'wav'}"],
        "urdu": [f"data.root={root / 'URDU'}"],
        "folder": [f"data.root={root / 'mine'}"],
        "nemo": [f"data.root={root / 'nEMO' / 'samples'}"],
        "multi_all": [f"data.root={root}"],
        "multi_nemo": [f"data.root={root}"],
    }  # fmt: skip


def test_every_parser_gets_speaker_disjoint_manifests(make_cfg, tmp_path):
    """Through the DataModule and the manifests it writes, as a training run reads them."""
    for option, overrides in fake_trees(tmp_path / "corpora").items():
        run = tmp_path / option
        module = hydra.utils.instantiate(
            make_cfg(f"data={option}", *overrides, output_dir=run).data
        )
        module.labels = sorted({c.label for c in module.clips()})  # each tree's own emotions
        module.prepare_data()
        parts = {name: read_manifest(run / "splits" / f"{name}.csv") for name in SPLITS}
        speakers = {name: {c.speaker for c in part} for name, part in parts.items()}
        for a, b in (("train", "val"), ("train", "test"), ("val", "test")):
            assert not speakers[a] & speakers[b], (option, a, b)
        assert all(speakers.values()), option
        if option in ("ravdess", "cremad", "urdu", "nemo"):  # sex known: one man and one woman each
            for name in ("val", "test"):
                sexes = sorted({(c.speaker, c.sex) for c in parts[name]}, key=lambda s: s[1])
                assert [sex for _, sex in sexes] == ["F", "M"], (option, name)


def test_repeated_audio_is_dropped_with_one_warning(make_cfg, tmp_path, caplog):
    """A recording filed under two emotions (as bytes, and as the same samples in another
    format) keeps neither copy; a recording filed twice under one emotion keeps one."""
    root = tmp_path / "mine"
    for speaker in range(6):
        for emotion in ("angry", "happy", "sad"):
            speech(root / emotion / f"person{speaker}" / "a.wav")
    conflicting = [root / "angry" / "person0" / "a.wav", root / "sad" / "person0" / "copy.wav"]
    conflicting[1].write_bytes(conflicting[0].read_bytes())
    audio, rate = sf.read(root / "angry" / "person1" / "a.wav", dtype="int16")
    conflicting += [root / "angry" / "person1" / "a.wav", root / "happy" / "person1" / "b.flac"]
    sf.write(conflicting[3], audio, rate)  # other bytes, the same samples
    kept_one = [root / "sad" / "person2" / "a.wav", root / "sad" / "person3" / "again.wav"]
    kept_one[1].write_bytes(kept_one[0].read_bytes())
    run = tmp_path / "run"
    module = hydra.utils.instantiate(
        make_cfg("data=folder", f"data.root={root}", SEPARABLE_LABELS, output_dir=run).data
    )
    with caplog.at_level(logging.WARNING):
        module.prepare_data()
    paths = {c.path for name in SPLITS for c in read_manifest(run / "splits" / f"{name}.csv")}
    assert not paths & {str(p) for p in conflicting}
    assert len(paths & {str(p) for p in kept_one}) == 1
    assert len(paths) == 6 * 3 + 3 - 4 - 1  # three copies added, five of the 21 dropped
    warnings = [r.getMessage() for r in caplog.records if "repeats another" in r.getMessage()]
    assert len(warnings) == 1 and all(str(p) in warnings[0] for p in conflicting + kept_one)


def test_leave_corpus_out_tests_on_all_of_the_held_out_corpus(make_cfg, tmp_path):
    root = named_corpora(tmp_path / "corpora", speakers_per_sex=3)
    sizes = {"cremad": 6 * 6, "ravdess": 6 * 6, "tess": 2 * 2 * 6}
    for held_out, size in sizes.items():
        run = tmp_path / held_out
        cfg = make_cfg("data=multi", f"data.root={root}", "split=leave_corpus_out",
                       f"split.held_out={held_out}", output_dir=run)  # fmt: skip
        hydra.utils.instantiate(cfg.data).setup()
        parts = {name: read_manifest(run / "splits" / f"{name}.csv") for name in SPLITS}
        assert {c.corpus for c in parts["test"]} == {held_out} and len(parts["test"]) == size
        assert held_out not in {c.corpus for c in parts["train"] + parts["val"]}
        assert parts["val"] and {c.corpus for c in parts["val"]} <= set(sizes) - {held_out, "tess"}
    run = tmp_path / "nemo"
    cfg = make_cfg("data=multi_nemo", f"data.root={root}", "split=leave_corpus_out",
                   "split.held_out=nemo", output_dir=run)  # fmt: skip
    hydra.utils.instantiate(cfg.data).setup()
    parts = {name: read_manifest(run / "splits" / f"{name}.csv") for name in SPLITS}
    assert {c.corpus for c in parts["test"]} == {"nemo"} and len(parts["test"]) == 6 * 5
    assert {c.corpus for c in parts["train"]} == {"cremad", "ravdess", "tess"}
    cfg = make_cfg("data=multi", f"data.root={root}", "split=leave_corpus_out",
                   "split.held_out=urdu", output_dir=tmp_path / "urdu")  # fmt: skip
    with pytest.raises(ValueError, match="not a corpus of this data option; it has cremad"):
        hydra.utils.instantiate(cfg.data).setup()


def test_copypaste_joins_a_neutral_clip_of_the_same_speaker_and_keeps_the_label():
    """CopyPaste (#42's lever 3): the emotional clip and a neutral clip of its own speaker (never
    another speaker's) in one window, the label the emotion's; off outside training."""
    from speech_emotion_recognition.data.clips import Clip

    audio = {"a_angry": 0.5, "a_neutral": -0.25, "b_neutral": 0.75}

    class Cache:
        sample_rate = 16000

        def load(self, path):
            return np.full(8000, audio[path], dtype=np.float32)

    clips = [Clip("a_angry", "angry", "A", "x"), Clip("a_neutral", "neutral", "A", "x"),
             Clip("b_neutral", "neutral", "B", "x")]  # fmt: skip
    n = 32000
    joined = datamodule.EmotionDataset(clips, Cache(), n, train=True, copypaste_p=1.0)
    for _ in range(5):
        waveform, label, *_ = joined[0]
        values = set(np.unique(waveform.numpy()).tolist())
        assert values == {0.5, -0.25, 0.0} and label == 0  # angry, its neutral, the padding
    assert set(np.unique(joined[2][0].numpy()).tolist()) == {0.75, 0.0}  # B has no other neutral
    plain = datamodule.EmotionDataset(clips, Cache(), n, train=False, copypaste_p=1.0)
    assert set(np.unique(plain[0][0].numpy()).tolist()) == {0.5, 0.0}
