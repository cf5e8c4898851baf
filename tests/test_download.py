"""The corpus importer (scripts/download_corpus.py) against servers on 127.0.0.1 started by the
test: plain files (nEMO's repository), Git LFS objects (CREMA-D's), and local copies with
missing, truncated and altered files."""

import hashlib
import json
import logging
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from omegaconf import OmegaConf

from scripts.download_corpus import download, import_local, read_file_list
from speech_emotion_recognition import PROJECT_ROOT

CLIPS = {f"AudioWAV/10{i:02d}_DFA_ANG_XX.wav": bytes([i]) * (3000 + 100 * i) for i in range(4)}
CORRUPT = "AudioWAV/1003_DFA_ANG_XX.wav"
METADATA = {  # where the target keeps it: where the repository keeps it, and its content
    "VideoDemographics.csv": ("VideoDemographics.csv", b'"ActorID","Age","Sex"\n1000,30,"M"\n'),
    "tabulatedVotes.csv": (
        "processedResults/tabulatedVotes.csv",
        b'"fileName","emoVote"\n"1000_DFA_ANG_XX","A"\n',
    ),
}
OFFICIAL = {**CLIPS, **{path: content for path, (_, content) in METADATA.items()}}


class CorpusServer(BaseHTTPRequestHandler):
    """A repository: plain files below /raw/ (audio as LFS objects below /objects/ when
    `lfs`), an LFS batch endpoint; `CORRUPT` is served altered."""

    objects = {hashlib.sha256(c).hexdigest(): (p, c) for p, c in CLIPS.items()}
    lfs = True
    hits: Counter = Counter()
    ranges: list = []

    def log_message(self, *args):
        pass

    def reply(self, body: bytes, status: int = 200):
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def serve(self, path: str, content: bytes) -> None:
        type(self).hits[path] += 1
        if path == CORRUPT:
            content = b"x" * len(content)
        if "Range" in self.headers:
            type(self).ranges.append((path, self.headers["Range"]))
            self.reply(content[int(self.headers["Range"].split("=")[1].rstrip("-")) :], 206)
        else:
            self.reply(content)

    def do_GET(self):
        plain = {remote: content for remote, content in METADATA.values()}
        if not self.lfs:
            plain.update(CLIPS)
        if self.path.startswith("/raw/") and self.path[5:] in plain:
            self.serve(self.path[5:], plain[self.path[5:]])
        elif self.path.startswith("/objects/") and self.lfs:
            self.serve(*self.objects[self.path.removeprefix("/objects/")])
        else:
            self.reply(b"", 404)

    def do_POST(self):
        request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        base = f"http://127.0.0.1:{self.server.server_address[1]}"
        objects = [
            {**o, "actions": {"download": {"href": f"{base}/objects/{o['oid']}", "header": {}}}}
            for o in request["objects"]
        ]
        self.reply(json.dumps({"objects": objects}).encode())


@pytest.fixture(params=["lfs", "plain"])
def server(request):
    """The same corpus from a repository with Git LFS (CREMA-D's) and with plain files (nEMO's)."""
    CorpusServer.hits.clear()
    CorpusServer.ranges.clear()
    CorpusServer.lfs = request.param == "lfs"
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), CorpusServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def source(base: str, name: str = "local") -> dict:
    remote = {path: where for path, (where, _) in METADATA.items() if where != path}
    lfs = {"lfs_batch_url": f"{base}/lfs/objects/batch", "lfs_prefix": "AudioWAV/"}
    return {"name": name, "raw_url": f"{base}/raw", "remote_paths": remote,
            **(lfs if CorpusServer.lfs else {})}  # fmt: skip


def file_list(path, files: dict[str, bytes]) -> str:
    """A corpus's official list (data/<name>.files.csv) for these files."""
    rows = ["path,sha256,bytes"] + [
        f"{name},{hashlib.sha256(c).hexdigest()},{len(c)}" for name, c in files.items()
    ]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def config(tmp_path, *sources, **extra):
    base = OmegaConf.load(PROJECT_ROOT / "conf" / "download_corpus.yaml")
    base.pop("defaults")
    files = file_list(tmp_path / "files.csv", OFFICIAL)
    corpus = {"id": "fake", "name": "FAKE", "target": str(tmp_path / "FAKE"), "file_list": files,
              "sources": list(sources)}  # fmt: skip
    settings = {"timeout_s": 5, "jobs": 2, "batch_size": 2, "corpus": corpus}
    return OmegaConf.merge(base, settings, extra)


@pytest.fixture(autouse=True)
def no_kaggle(monkeypatch, tmp_path):
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))


def test_verified_download_falls_back_reports_corruption_and_resumes(server, tmp_path, caplog):
    target = tmp_path / "FAKE"
    dead = source(f"http://127.0.0.1:{closed_port()}", "dead")
    good_path = "AudioWAV/1002_DFA_ANG_XX.wav"
    partial = target / ".partial" / good_path
    partial.parent.mkdir(parents=True)
    partial.write_bytes(CLIPS[good_path][:1000])  # an interrupted earlier run

    with caplog.at_level(logging.INFO):
        status = download(config(tmp_path, dead, source(server)))
    assert status == 1  # the corrupted clip is missing
    for path, content in OFFICIAL.items():
        if path == CORRUPT:
            assert not (target / path).exists()
        else:
            assert (target / path).read_bytes() == content
    assert CorpusServer.hits[CORRUPT] == 3  # retried, then reported
    assert (good_path, "bytes=1000-") in CorpusServer.ranges
    log = caplog.text
    assert "dead failed" in log
    assert f"{CORRUPT}: checksum or size mismatch" in log
    assert "5 of 6 official files verified" in log
    assert "corpus=fake source_dir=DIR" in log
    assert not list((target / ".partial").rglob("*.wav"))

    hits_before = CorpusServer.hits.copy()
    assert download(config(tmp_path, source(server))) == 1
    downloaded_again = CorpusServer.hits - hits_before
    assert set(downloaded_again) == {CORRUPT}  # the verified files are not fetched again


def test_complete_download_exits_zero(server, tmp_path, monkeypatch):
    monkeypatch.setattr("tests.test_download.CORRUPT", "none")
    assert download(config(tmp_path, source(server))) == 0
    assert len(list((tmp_path / "FAKE" / "AudioWAV").glob("*.wav"))) == 4


def test_no_network_is_a_clear_failure(tmp_path, caplog):
    dead = source(f"http://127.0.0.1:{closed_port()}", "dead")
    with caplog.at_level(logging.INFO):
        assert download(config(tmp_path, dead)) == 1
    assert "cannot fetch" in caplog.text and "Rerun to resume" in caplog.text
    assert not (tmp_path / "FAKE" / "AudioWAV").exists()


def test_import_of_a_local_copy_takes_only_verified_files(tmp_path, caplog):
    """A missing, a truncated and an altered file are named and not imported."""
    source_dir = tmp_path / "unzipped" / "archive"  # an unzipped download keeps its own folders
    (source_dir / "AudioWAV").mkdir(parents=True)
    names = sorted(CLIPS)
    for name in names[1:]:  # the first is missing
        (source_dir / name).write_bytes(CLIPS[name])
    (source_dir / "VideoDemographics.csv").write_bytes(METADATA["VideoDemographics.csv"][1])
    (source_dir / "tabulatedVotes.csv").write_bytes(METADATA["tabulatedVotes.csv"][1])
    truncated, altered = names[1], names[2]
    (source_dir / truncated).write_bytes(CLIPS[truncated][:-10])
    (source_dir / altered).write_bytes(b"\1" + CLIPS[altered][1:])
    cfg = config(tmp_path, source_dir=str(tmp_path / "unzipped"))
    target = tmp_path / "FAKE"
    with caplog.at_level(logging.INFO):
        status = import_local(cfg)
    imported_bad = [n for n in (truncated, altered) if (target / n).exists()]
    assert status == 1 and not imported_bad and not (target / names[0]).exists()
    assert f"{names[0]}: missing from the source folder" in caplog.text
    assert f"{truncated}: " in caplog.text and "(truncated:" in caplog.text
    assert f"{altered}: " in caplog.text and "(altered:" in caplog.text
    assert (target / names[3]).read_bytes() == CLIPS[names[3]]
    assert (target / "VideoDemographics.csv").is_file()
    assert not list((target / ".partial").rglob("*.wav"))

    for name in names[:3]:
        (source_dir / name).write_bytes(CLIPS[name])
    assert import_local(cfg) == 0
    stamps = {p: p.stat().st_mtime_ns for p in target.rglob("*.wav")}
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert import_local(cfg) == 0  # a rerun copies nothing
    assert "(0 imported now)" in caplog.text
    assert stamps == {p: p.stat().st_mtime_ns for p in target.rglob("*.wav")}


@pytest.mark.parametrize(
    ("corpus", "audio", "audio_bytes", "other"),
    [("CREMA-D", 7442, 605_899_936, {"VideoDemographics.csv", "tabulatedVotes.csv"}),
     ("nEMO", 4481, None, {"data.tsv"})],
)  # fmt: skip
def test_the_carried_file_lists_are_the_official_corpora(corpus, audio, audio_bytes, other):
    files = read_file_list(PROJECT_ROOT / "data" / f"{corpus}.files.csv")
    wavs = [f for f in files if f.path.endswith(".wav")]
    assert len(wavs) == audio and {f.path for f in files if f not in wavs} == other
    assert audio_bytes is None or sum(f.size for f in wavs) == audio_bytes
    assert len({f.path for f in files}) == len(files)
