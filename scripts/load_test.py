"""Load on a real server: concurrent clients and memory over many requests.

`python scripts/load_test.py [CLIP] [--clients 16] [--requests 200]` starts `serve.py` on a free
port of 127.0.0.1 and sends CLIP, cut or padded to 5 s, from 16 clients at once (each answer
must equal the answer to a lone request), then 200 requests one after another, and prints the
server's resident memory before and after them (psutil) as JSON. tests/test_serve.py runs the
same functions.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import psutil
import soundfile as sf

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.audio import crop_or_pad, load_audio

DEFAULT_CLIP = PROJECT_ROOT / "data/RAVDESS/Actor_08/03-01-05-01-01-01-08.wav"


@dataclass
class Server:
    url: str
    process: subprocess.Popen
    log: Path  # the server's stderr

    @property
    def rss_mb(self) -> float:
        """Resident memory of the server process and its children, in MiB."""
        process = psutil.Process(self.process.pid)
        members = [process, *process.children(recursive=True)]
        return sum(p.memory_info().rss for p in members) / 2**20

    @property
    def folder(self) -> Path:
        """The server's own working folder (serve.py), which holds the page's files."""
        return Path(psutil.Process(self.process.pid).cwd())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_server(
    *overrides: str, start_timeout: float = 180.0, env: dict[str, str] | None = None
) -> Iterator[Server]:
    """`serve.py` in a subprocess on a free local port, up once /health answers; `env` is
    added to its environment."""
    port = free_port()
    command = [
        sys.executable,
        str(PROJECT_ROOT / "speech_emotion_recognition/serve.py"),
        f"port={port}",
        "hydra.run.dir=${paths.log_dir}/serve/checks/" + str(port),
        *overrides,
    ]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False", **(env or {})}
    with tempfile.TemporaryDirectory(prefix="ser-server-log-") as folder:
        log = Path(folder) / "stderr.log"
        with open(log, "w") as stderr:
            process = subprocess.Popen(command, env=env, stderr=stderr, text=True)
        server = Server(f"http://127.0.0.1:{port}", process, log)
        try:
            deadline = time.monotonic() + start_timeout
            while True:
                if process.poll() is not None:
                    raise RuntimeError(f"serve.py exited {process.returncode}: {log.read_text()}")
                with contextlib.suppress(httpx.HTTPError):
                    if httpx.get(f"{server.url}/health", timeout=2).status_code == 200:
                        break
                if time.monotonic() > deadline:
                    raise TimeoutError(f"serve.py did not answer within {start_timeout:.0f} s")
                time.sleep(0.5)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()


def five_seconds(clip: Path, target: Path) -> Path:
    """The clip at 16 kHz, cut or padded to the model's 5 s window: the request the issue sizes."""
    sf.write(target, crop_or_pad(load_audio(str(clip), 16000), 5 * 16000), 16000)
    return target


def predict(url: str, clip: Path, timeout: float = 120.0) -> httpx.Response:
    with open(clip, "rb") as f:
        return httpx.post(f"{url}/predict", files={"file": (clip.name, f)}, timeout=timeout)


def concurrent(url: str, clip: Path, clients: int) -> dict:
    """`clients` requests at once; seconds taken, how many answers equal a lone request's, and
    the seconds that lone request took."""
    start = time.perf_counter()
    alone = predict(url, clip).json()
    alone_seconds = time.perf_counter() - start
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        answers = list(pool.map(lambda _: predict(url, clip), range(clients)))
    seconds = time.perf_counter() - start
    same = sum(
        a.status_code == 200
        and a.json()["label"] == alone["label"]
        and abs(a.json()["confidence"] - alone["confidence"]) < 1e-6
        for a in answers
    )
    return {
        "clients": clients,
        "seconds": round(seconds, 2),
        "correct": same,
        "alone_seconds": round(alone_seconds, 3),
    }


def memory(server: Server, clip: Path, requests: int, warmup: int = 10) -> dict:
    """Resident memory after `warmup` requests and after `requests` more, one at a time."""
    for _ in range(warmup):
        predict(server.url, clip).raise_for_status()
    before = server.rss_mb
    start = time.perf_counter()
    for _ in range(requests):
        predict(server.url, clip).raise_for_status()
    return {
        "requests": requests,
        "rss_before_mb": round(before, 1),
        "rss_after_mb": round(server.rss_mb, 1),
        "seconds_per_request": round((time.perf_counter() - start) / requests, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", nargs="?", type=Path, default=DEFAULT_CLIP)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder, running_server() as server:
        args.clip = five_seconds(args.clip, Path(folder) / "clip.wav")
        result = {
            "concurrent": concurrent(server.url, args.clip, args.clients),
            "memory": memory(server, args.clip, args.requests),
            "cpus": os.cpu_count(),
        }
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
