"""Download CREMA-D (AudioWAV/ and its metadata) from the official sources, verified per file,
or import a copy that is already on this machine.

python scripts/download_cremad.py [target=DIR] [jobs=8]
python scripts/download_cremad.py source_dir=DIR     # a staged copy, an unzipped Kaggle download

An import checks every file against the official file list the project carries
(data/CREMA-D.files.csv: name, sha256, size of each clip and of the two metadata CSVs), so it
works offline and trusts the copy no more than a download.

Audio is stored with Git LFS: the repository listing gives the pointer files (sha256 and size of
each clip), the LFS batch API gives download links. Every clip is checked against its pointer;
downloads resume from `<target>/.partial/`, a second run downloads nothing, and only verified
files ever appear in `<target>/AudioWAV/`. Exits non-zero, with a summary, if anything is missing.
"""

from __future__ import annotations

import base64
import csv
import errno
import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
import urllib.error
import urllib.request
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import hydra
from omegaconf import DictConfig
from tqdm import tqdm

import speech_emotion_recognition  # noqa: F401  sets PROJECT_ROOT, which the config's paths use

log = logging.getLogger(__name__)

LFS_MEDIA_TYPE = "application/vnd.git-lfs+json"
CHUNK_BYTES = 1 << 20


class DownloadError(RuntimeError):
    """One file or source failed; the message says what and why."""


@dataclass(frozen=True)
class Pointer:
    """A Git LFS pointer: where the file goes and what its content must be."""

    path: str
    oid: str
    size: int


def parse_pointer(path: str, text: str) -> Pointer | None:
    """The pointer in `text`, or None when the text is an ordinary file."""
    fields = dict(line.split(" ", 1) for line in text.strip().splitlines() if " " in line)
    if not fields.get("version", "").endswith("git-lfs.github.com/spec/v1"):
        return None
    return Pointer(path, fields["oid"].removeprefix("sha256:"), int(fields["size"]))


def request(url: str, timeout: float, data: bytes | None = None, headers: dict | None = None):
    try:
        return urllib.request.urlopen(
            urllib.request.Request(url, data=data, headers=headers or {}), timeout=timeout
        )
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise DownloadError(f"cannot fetch {url}: {error}") from error


def list_paths(source: DictConfig, prefix: str, timeout: float) -> list[str]:
    """Repository file paths below `prefix`, from the GitHub or GitLab tree API."""
    if source.listing == "github":
        with request(source.tree_url, timeout) as response:
            tree = json.load(response)["tree"]
        paths = [item["path"] for item in tree if item["type"] == "blob"]
    else:
        paths, page = [], 1
        while True:
            with request(f"{source.tree_url}&page={page}", timeout) as response:
                items = json.load(response)
            if not items:
                break
            paths += [item["path"] for item in items if item["type"] == "blob"]
            page += 1
    return sorted(p for p in paths if p.startswith(f"{prefix}/"))


def read_pointers(source: DictConfig, paths: list[str], cfg: DictConfig) -> list[Pointer]:
    def read(path: str) -> Pointer:
        with request(f"{source.raw_url}/{path}", cfg.timeout_s) as response:
            pointer = parse_pointer(path, response.read(1024).decode("utf-8", "replace"))
        if pointer is None:
            raise DownloadError(f"{path} is not a Git LFS pointer in {source.name}")
        return pointer

    with ThreadPoolExecutor(cfg.jobs) as pool:
        return list(pool.map(read, paths))


def lfs_links(source: DictConfig, pointers: list[Pointer], timeout: float) -> dict[str, dict]:
    """oid -> {"href", "header"} for the objects the server can give."""
    body = json.dumps(
        {
            "operation": "download",
            "transfers": ["basic"],
            "objects": [{"oid": p.oid, "size": p.size} for p in pointers],
        }
    ).encode()
    headers = {"Accept": LFS_MEDIA_TYPE, "Content-Type": LFS_MEDIA_TYPE}
    with request(source.lfs_batch_url, timeout, body, headers) as response:
        objects = json.load(response)["objects"]
    links = {}
    for item in objects:
        action = item.get("actions", {}).get("download")
        if action:
            links[item["oid"]] = {"href": action["href"], "header": action.get("header", {})}
        else:
            log.warning("%s: %s", item["oid"][:12], item.get("error", {}).get("message", "no link"))
    return links


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def is_complete(path: Path, pointer: Pointer) -> bool:
    return path.is_file() and path.stat().st_size == pointer.size and sha256_of(path) == pointer.oid


def fetch(
    url: str, headers: dict, partial: Path, size: int | None, timeout: float, progress: tqdm
) -> None:
    """Append to `partial` from where it stopped (HTTP Range); restart if the server ignores it."""
    have = partial.stat().st_size if partial.exists() else 0
    if size is not None and have >= size:
        partial.unlink()
        have = 0
    ranged = {**headers, "Range": f"bytes={have}-"} if have else dict(headers)
    with request(url, timeout, headers=ranged) as response:
        mode = "ab" if have and response.status == 206 else "wb"
        if mode == "wb":
            progress.update(-have)
        with open(partial, mode) as f:
            for block in iter(lambda: response.read(CHUNK_BYTES), b""):
                f.write(block)
                progress.update(len(block))


def download_one(
    pointer: Pointer, link: dict, target: Path, cfg: DictConfig, progress: tqdm
) -> str | None:
    """Download, verify and move into place; returns why it failed, or None."""
    final = target / pointer.path
    partial = target / ".partial" / pointer.path
    partial.parent.mkdir(parents=True, exist_ok=True)
    reason = ""
    for _ in range(cfg.attempts):
        try:
            fetch(link["href"], link["header"], partial, pointer.size, cfg.timeout_s, progress)
        except DownloadError as error:
            reason = str(error)
            continue
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise DownloadError(
                    f"disk full while writing {partial}: free space and rerun (it resumes)"
                ) from error
            raise
        if is_complete(partial, pointer):
            final.parent.mkdir(parents=True, exist_ok=True)
            os.replace(partial, final)
            return None
        reason = (
            f"checksum or size mismatch (expected sha256 {pointer.oid[:12]}…, {pointer.size} B)"
        )
        progress.update(-partial.stat().st_size)
        partial.unlink()
    return reason


def download_lfs(
    source: DictConfig, pointers: list[Pointer], target: Path, cfg: DictConfig
) -> dict[str, str]:
    """Fetch what is missing; returns path -> reason for the files that still failed."""
    missing = [p for p in pointers if not is_complete(target / p.path, p)]
    log.info("%s: %d of %d files to download", source.name, len(missing), len(pointers))
    failures: dict[str, str] = {}
    total = sum(p.size for p in missing)
    with tqdm(total=total, unit="B", unit_scale=True, desc=source.name, file=sys.stderr) as bar:
        for start in range(0, len(missing), cfg.batch_size):
            chunk = missing[start : start + cfg.batch_size]
            links = lfs_links(source, chunk, cfg.timeout_s)
            failures.update(
                {
                    p.path: "no download link from the LFS server"
                    for p in chunk
                    if p.oid not in links
                }
            )
            with ThreadPoolExecutor(cfg.jobs) as pool:
                jobs = {
                    p.path: pool.submit(download_one, p, links[p.oid], target, cfg, bar)
                    for p in chunk
                    if p.oid in links
                }
            failures.update({path: job.result() for path, job in jobs.items() if job.result()})
    return failures


def download_metadata(source: DictConfig, names: list[str], target: Path, cfg: DictConfig) -> None:
    """Small files stored directly in git (or as pointers, resolved the same way as audio)."""
    for name in names:
        final = target / Path(name).name
        if final.is_file():
            continue
        with request(f"{source.raw_url}/{name}", cfg.timeout_s) as response:
            content = response.read()
        pointer = parse_pointer(name, content[:1024].decode("utf-8", "replace"))
        if pointer is not None:
            pointer = Pointer(Path(name).name, pointer.oid, pointer.size)
            failed = download_lfs(source, [pointer], target, cfg)
            if failed:
                raise DownloadError(f"{name}: {failed[pointer.path]}")
            continue
        with tempfile.NamedTemporaryFile(dir=target, delete=False) as tmp:
            tmp.write(content)
        os.replace(tmp.name, final)


def kaggle_credentials() -> tuple[str, str] | None:
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return os.environ["KAGGLE_USERNAME"], os.environ["KAGGLE_KEY"]
    path = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle")) / "kaggle.json"
    if path.is_file():
        data = json.loads(path.read_text())
        return data["username"], data["key"]
    return None


def download_kaggle(pointers: list[Pointer], target: Path, cfg: DictConfig) -> None:
    """The Kaggle copy, for clips the git sources could not give; verified against the pointers."""
    credentials = kaggle_credentials()
    wanted = {Path(p.path).name: p for p in pointers if not (target / p.path).is_file()}
    if not wanted or credentials is None:
        return
    token = base64.b64encode(":".join(credentials).encode()).decode()
    archive = target / ".partial" / "kaggle-cremad.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(unit="B", unit_scale=True, desc="kaggle", file=sys.stderr) as bar:
        fetch(
            cfg.kaggle.dataset_url,
            {"Authorization": f"Basic {token}"},
            archive,
            None,
            cfg.timeout_s,
            bar,
        )
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            pointer = wanted.get(Path(member).name)
            if pointer is None:
                continue
            partial = target / ".partial" / pointer.path
            partial.parent.mkdir(parents=True, exist_ok=True)
            partial.write_bytes(zf.read(member))
            if is_complete(partial, pointer):
                os.replace(partial, target / pointer.path)
            else:
                partial.unlink()


def read_file_list(path: str | Path) -> list[Pointer]:
    """The official files: audio into AudioWAV/, the metadata CSVs beside it."""
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    return [
        Pointer(f"AudioWAV/{r['file']}" if r["kind"] == "audio" else r["file"], r["sha256"],
                int(r["bytes"]))
        for r in rows
    ]  # fmt: skip


def import_local(cfg: DictConfig) -> int:
    """Copy the official files found anywhere below `cfg.source_dir` into `cfg.target`, each
    verified (size and sha256) before it is moved into place; returns the exit status."""
    source, target = Path(cfg.source_dir), Path(cfg.target)
    if not source.is_dir():
        log.error("source_dir=%s is not a folder", source)
        return 2
    pointers = read_file_list(cfg.file_list)
    found: dict[str, list[Path]] = {}
    for path in sorted(source.rglob("*")):
        if path.is_file():
            found.setdefault(path.name, []).append(path)
    problems: dict[str, str] = {}
    imported = 0
    for pointer in tqdm(pointers, desc="verify", unit="file", file=sys.stderr):
        final = target / pointer.path
        if is_complete(final, pointer):
            continue
        candidates = found.get(Path(pointer.path).name, [])
        if not candidates:
            problems[pointer.path] = "missing from the source folder"
            continue
        partial = target / ".partial" / pointer.path
        partial.parent.mkdir(parents=True, exist_ok=True)
        for candidate in candidates:
            shutil.copyfile(candidate, partial)
            if is_complete(partial, pointer):
                final.parent.mkdir(parents=True, exist_ok=True)
                os.replace(partial, final)
                imported += 1
                break
        else:
            partial.unlink()
            problems[pointer.path] = (
                f"{candidates[0]} differs from the official file (size or sha256)"
            )
    verified = sum(1 for p in pointers if (target / p.path).is_file())
    log.info("CREMA-D in %s: %d of %d official files verified (%d imported now)",
             target, verified, len(pointers), imported)  # fmt: skip
    for path, reason in sorted(problems.items()):
        log.error("%s: %s", path, reason)
    if problems:
        log.error("Incomplete: nothing unverified was imported. Fix the source and rerun.")
        return 1
    return 0


def download(cfg: DictConfig) -> int:
    """The whole command; returns the exit status."""
    target = Path(cfg.target)
    target.mkdir(parents=True, exist_ok=True)
    pointers: list[Pointer] = []
    reasons: dict[str, str] = {}
    for source in cfg.sources:
        try:
            if not pointers:
                paths = list_paths(source, cfg.files.audio_dir, cfg.timeout_s)
                pointers = read_pointers(source, paths, cfg)
                log.info("%s lists %d clips", source.name, len(pointers))
            download_metadata(source, list(cfg.files.metadata), target, cfg)
            reasons.update(download_lfs(source, pointers, target, cfg))
        except DownloadError as error:
            log.warning("%s failed: %s", source.name, error)
            reasons["(source)"] = str(error)
            continue
        if all((target / p.path).is_file() for p in pointers):
            break
    try:
        download_kaggle(pointers, target, cfg)
    except DownloadError as error:
        log.warning("kaggle failed: %s", error)
    missing = [p.path for p in pointers if not (target / p.path).is_file()]
    missing_metadata = [n for n in cfg.files.metadata if not (target / Path(n).name).is_file()]
    log.info(
        "CREMA-D in %s: %d of %d clips verified; metadata missing: %s",
        target,
        len(pointers) - len(missing),
        len(pointers) or cfg.expected_files,
        ", ".join(missing_metadata) or "none",
    )
    for path in missing:
        log.error("%s: %s", path, reasons.get(path, "not obtained from any source"))
    if missing or missing_metadata or not pointers:
        if not pointers:
            log.error("No source could list the corpus: %s", reasons.get("(source)", ""))
        log.error(
            "Incomplete. Rerun to resume; without internet access, copy AudioWAV/ and the "
            "metadata into %s",
            target,
        )
        return 1
    return 0


@hydra.main(version_base="1.3", config_path="../conf", config_name="download_cremad")
def main(cfg: DictConfig) -> None:
    sys.exit(import_local(cfg) if cfg.source_dir else download(cfg))


if __name__ == "__main__":
    main()
