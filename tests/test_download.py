"""The CREMA-D downloader against a Git LFS server on 127.0.0.1 started by the test."""

import hashlib
import json
import logging
import socket
import threading
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from omegaconf import OmegaConf

from scripts.download_cremad import download, import_local, parse_pointer
from speech_emotion_recognition import PROJECT_ROOT

CLIPS = {f"AudioWAV/10{i:02d}_DFA_ANG_XX.wav": bytes([i]) * (3000 + 100 * i) for i in range(4)}
CORRUPT = "AudioWAV/1003_DFA_ANG_XX.wav"
METADATA = {
    "VideoDemographics.csv": b'"ActorID","Age","Sex"\n1000,30,"Male"\n',
    "processedResults/tabulatedVotes.csv": b'"fileName","emoVote"\n"1000_DFA_ANG_XX","A"\n',
}


def pointer_text(content: bytes) -> str:
    oid = hashlib.sha256(content).hexdigest()
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{oid}\nsize {len(content)}\n"


class LfsServer(BaseHTTPRequestHandler):
    objects = {hashlib.sha256(c).hexdigest(): (p, c) for p, c in CLIPS.items()}
    hits: Counter = Counter()
    ranges: list = []

    def log_message(self, *args):
        pass

    def reply(self, body: bytes, status: int = 200, headers: dict | None = None):
        self.send_response(status)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path.startswith("/tree"):
            paths = [*CLIPS, *METADATA, "README.md"]
            self.reply(json.dumps({"tree": [{"path": p, "type": "blob"} for p in paths]}).encode())
        elif self.path.startswith("/raw/"):
            path = self.path.removeprefix("/raw/")
            body = pointer_text(CLIPS[path]).encode() if path in CLIPS else METADATA.get(path)
            self.reply(body) if body else self.reply(b"", 404)
        elif self.path.startswith("/objects/"):
            oid = self.path.removeprefix("/objects/")
            path, content = self.objects[oid]
            type(self).hits[path] += 1
            if path == CORRUPT:
                content = b"x" * len(content)
            start = 0
            if "Range" in self.headers:
                type(self).ranges.append((path, self.headers["Range"]))
                start = int(self.headers["Range"].split("=")[1].rstrip("-"))
                self.reply(content[start:], 206)
            else:
                self.reply(content)
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


@pytest.fixture
def server():
    LfsServer.hits.clear()
    LfsServer.ranges.clear()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), LfsServer)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def source(base: str, name: str = "local") -> dict:
    return {
        "name": name,
        "listing": "github",
        "tree_url": f"{base}/tree",
        "raw_url": f"{base}/raw",
        "lfs_batch_url": f"{base}/lfs/objects/batch",
    }


def config(target, *sources, **extra):
    base = OmegaConf.load(PROJECT_ROOT / "conf" / "download_cremad.yaml")
    base.pop("defaults")
    return OmegaConf.merge(
        base,
        {
            "target": str(target),
            "sources": list(sources),
            "timeout_s": 5,
            "jobs": 2,
            "batch_size": 2,
            **extra,
        },
    )


@pytest.fixture(autouse=True)
def no_kaggle(monkeypatch, tmp_path):
    monkeypatch.delenv("KAGGLE_USERNAME", raising=False)
    monkeypatch.setenv("KAGGLE_CONFIG_DIR", str(tmp_path / "no-kaggle"))


def test_pointer_parsing():
    pointer = parse_pointer("a.wav", pointer_text(b"abc"))
    assert pointer.size == 3
    assert pointer.oid == hashlib.sha256(b"abc").hexdigest()
    assert parse_pointer("a.csv", "a,b\n1,2\n") is None


def test_verified_download_falls_back_reports_corruption_and_resumes(server, tmp_path, caplog):
    target = tmp_path / "CREMA-D"
    dead = source(f"http://127.0.0.1:{closed_port()}", "dead")
    good_path = "AudioWAV/1002_DFA_ANG_XX.wav"
    partial = target / ".partial" / good_path
    partial.parent.mkdir(parents=True)
    partial.write_bytes(CLIPS[good_path][:1000])  # an interrupted earlier run

    with caplog.at_level(logging.INFO):
        status = download(config(target, dead, source(server)))
    assert status == 1  # the corrupted clip is missing
    for path, content in CLIPS.items():
        if path == CORRUPT:
            assert not (target / path).exists()
        else:
            assert (target / path).read_bytes() == content
    assert (target / "VideoDemographics.csv").read_bytes() == METADATA["VideoDemographics.csv"]
    assert (target / "tabulatedVotes.csv").is_file()
    assert LfsServer.hits[CORRUPT] == 3  # retried, then reported
    assert (good_path, "bytes=1000-") in LfsServer.ranges
    log = caplog.text
    assert "dead failed" in log
    assert f"{CORRUPT}: checksum or size mismatch" in log
    assert "3 of 4 clips verified" in log
    assert not list((target / ".partial").rglob("*.wav"))

    hits_before = LfsServer.hits.copy()
    status = download(config(target, source(server)))
    assert status == 1
    downloaded_again = LfsServer.hits - hits_before
    assert set(downloaded_again) == {CORRUPT}  # the verified files are not fetched again


def test_complete_download_exits_zero(server, tmp_path, monkeypatch):
    clean = {k: v for k, v in CLIPS.items() if k != CORRUPT}
    monkeypatch.setattr("tests.test_download.CLIPS", clean)
    status = download(config(tmp_path / "CREMA-D", source(server)))
    assert status == 0
    assert len(list((tmp_path / "CREMA-D" / "AudioWAV").glob("*.wav"))) == 3


def test_no_network_is_a_clear_failure(tmp_path, caplog):
    target = tmp_path / "CREMA-D"
    dead = source(f"http://127.0.0.1:{closed_port()}", "dead")
    with caplog.at_level(logging.INFO):
        assert download(config(target, dead)) == 1
    assert "No source could list the corpus" in caplog.text
    assert "cannot fetch" in caplog.text
    assert not (target / "AudioWAV").exists()


def file_list(path, files: dict[str, bytes]) -> str:
    """The carried official list (data/CREMA-D.files.csv) for these files."""
    rows = ["file,sha256,bytes,kind"] + [
        f"{name.split('/')[-1]},{hashlib.sha256(c).hexdigest()},{len(c)},"
        f"{'audio' if name.startswith('AudioWAV/') else 'metadata'}"
        for name, c in files.items()
    ]
    path.write_text("\n".join(rows) + "\n")
    return str(path)


def test_import_of_a_local_copy_takes_only_verified_files(tmp_path, caplog):
    official = {**CLIPS, "VideoDemographics.csv": METADATA["VideoDemographics.csv"]}
    source = tmp_path / "unzipped" / "archive"  # an unzipped download keeps its own folders
    (source / "AudioWAV").mkdir(parents=True)
    names = sorted(CLIPS)
    for name in names[1:]:  # the first is missing
        (source / name).write_bytes(CLIPS[name])
    (source / "VideoDemographics.csv").write_bytes(METADATA["VideoDemographics.csv"])
    truncated, altered = names[1], names[2]
    (source / truncated).write_bytes(CLIPS[truncated][:-10])
    (source / altered).write_bytes(b"\1" + CLIPS[altered][1:])
    target = tmp_path / "CREMA-D"
    cfg = OmegaConf.create(
        {"source_dir": str(tmp_path / "unzipped"), "target": str(target),
         "file_list": file_list(tmp_path / "files.csv", official)}
    )  # fmt: skip
    with caplog.at_level(logging.INFO):
        assert import_local(cfg) == 1
    for name in (names[0], truncated, altered):
        assert not (target / name).exists(), f"{name} was imported unverified"
        assert name in caplog.text
    assert "missing from the source folder" in caplog.text
    assert "differs from the official file" in caplog.text
    assert (target / names[3]).read_bytes() == CLIPS[names[3]]
    assert (target / "VideoDemographics.csv").is_file()
    assert not list((target / ".partial").rglob("*.wav"))

    for name in names[:3]:
        (source / name).write_bytes(CLIPS[name])
    assert import_local(cfg) == 0
    stamps = {p: p.stat().st_mtime_ns for p in target.rglob("*.wav")}
    caplog.clear()
    with caplog.at_level(logging.INFO):
        assert import_local(cfg) == 0  # a rerun copies nothing
    assert "(0 imported now)" in caplog.text
    assert stamps == {p: p.stat().st_mtime_ns for p in target.rglob("*.wav")}


def test_the_carried_file_list_is_the_official_corpus():
    rows = (PROJECT_ROOT / "data" / "CREMA-D.files.csv").read_text().splitlines()[1:]
    audio = [r for r in rows if r.endswith(",audio")]
    assert len(audio) == 7442
    assert sum(int(r.split(",")[2]) for r in audio) == 605_899_936
