"""Get a corpus that is not on the DVC remote, verified file by file against the official list
the project carries, or import a copy that is already on this machine the same way.

python scripts/download_corpus.py corpus=nemo                   # nEMO into data/nEMO
python scripts/download_corpus.py corpus=cremad                 # CREMA-D into data/CREMA-D
python scripts/download_corpus.py corpus=nemo source_dir=DIR    # import a staged or unzipped copy

Each corpus is a config, `conf/corpus/<name>.yaml`: where it goes, its file list
(`data/<name>.files.csv`: path below the corpus folder, sha256 and size of every official file)
and its official sources. A source gives plain files below `raw_url` and, where the repository
keeps them in Git LFS (CREMA-D's audio), the objects through its `lfs_batch_url`, asked for by
the sha256 and size the list holds. Downloads resume from `<target>/.partial/`; only files whose
size and sha256 match the list ever appear in the corpus folder, and a rerun fetches or copies
nothing that is already there. Exits 1 with every missing, truncated or altered file named.
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
class Official:
    """One file of the corpus: where it goes below the corpus folder, and what it must be."""

    path: str
    sha256: str
    size: int


def read_file_list(path: str | Path) -> list[Official]:
    with open(path, newline="") as f:
        return [Official(r["path"], r["sha256"], int(r["bytes"])) for r in csv.DictReader(f)]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK_BYTES), b""):
            digest.update(block)
    return digest.hexdigest()


def is_complete(path: Path, official: Official) -> bool:
    return (
        path.is_file()
        and path.stat().st_size == official.size
        and sha256_of(path) == official.sha256
    )


def accept(partial: Path, official: Official, target: Path) -> bool:
    """Move a verified file into the corpus folder; an unverified one is deleted."""
    if is_complete(partial, official):
        final = target / official.path
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(partial, final)
        return True
    partial.unlink(missing_ok=True)
    return False


def request(url: str, timeout: float, data: bytes | None = None, headers: dict | None = None):
    try:
        return urllib.request.urlopen(
            urllib.request.Request(url, data=data, headers=headers or {}), timeout=timeout
        )
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        raise DownloadError(f"cannot fetch {url}: {error}") from error


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
    official: Official, link: dict, target: Path, cfg: DictConfig, progress: tqdm
) -> str | None:
    """Download, verify and move into place; returns why it failed, or None."""
    partial = target / ".partial" / official.path
    partial.parent.mkdir(parents=True, exist_ok=True)
    reason = ""
    for _ in range(cfg.attempts):
        try:
            fetch(link["href"], link["header"], partial, official.size, cfg.timeout_s, progress)
        except DownloadError as error:
            reason = str(error)
            continue
        except OSError as error:
            if error.errno == errno.ENOSPC:
                raise DownloadError(
                    f"disk full while writing {partial}: free space and rerun (it resumes)"
                ) from error
            raise
        got = partial.stat().st_size
        if accept(partial, official, target):
            return None
        progress.update(-got)
        reason = (
            f"checksum or size mismatch (expected sha256 {official.sha256[:12]}…, "
            f"{official.size} B)"
        )
    return reason


def lfs_links(source: DictConfig, files: list[Official], timeout: float) -> dict[str, dict]:
    """sha256 -> {"href", "header"} for the objects the LFS server can give."""
    body = json.dumps(
        {
            "operation": "download",
            "transfers": ["basic"],
            "objects": [{"oid": f.sha256, "size": f.size} for f in files],
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


def source_links(source: DictConfig, files: list[Official], timeout: float) -> dict[str, dict]:
    """path -> download link: Git LFS objects for paths under `lfs_prefix`, plain files below
    `raw_url` (at `remote_paths[path]` where the repository keeps one elsewhere) for the rest."""
    lfs_prefix = source.get("lfs_prefix")
    in_lfs = [f for f in files if lfs_prefix is not None and f.path.startswith(lfs_prefix)]
    remote = dict(source.get("remote_paths") or {})
    links = {
        f.path: {"href": f"{source.raw_url}/{remote.get(f.path, f.path)}", "header": {}}
        for f in files
        if f not in in_lfs
    }
    if in_lfs:
        by_oid = lfs_links(source, in_lfs, timeout)
        links.update({f.path: by_oid[f.sha256] for f in in_lfs if f.sha256 in by_oid})
    return links


def download_from(
    source: DictConfig, files: list[Official], target: Path, cfg: DictConfig
) -> dict[str, str]:
    """Fetch what is missing from one source; returns path -> reason for what still failed."""
    missing = [f for f in files if not is_complete(target / f.path, f)]
    log.info("%s: %d of %d files to download", source.name, len(missing), len(files))
    failures: dict[str, str] = {}
    with tqdm(total=sum(f.size for f in missing), unit="B", unit_scale=True, desc=source.name,
              file=sys.stderr) as bar:  # fmt: skip
        for start in range(0, len(missing), cfg.batch_size):
            chunk = missing[start : start + cfg.batch_size]  # LFS links expire: ask per chunk
            links = source_links(source, chunk, cfg.timeout_s)
            failures.update({f.path: "no download link" for f in chunk if f.path not in links})
            with ThreadPoolExecutor(cfg.jobs) as pool:
                jobs = {
                    f.path: pool.submit(download_one, f, links[f.path], target, cfg, bar)
                    for f in chunk
                    if f.path in links
                }
            failures.update({path: job.result() for path, job in jobs.items() if job.result()})
    return failures


def kaggle_credentials() -> tuple[str, str] | None:
    if os.environ.get("KAGGLE_USERNAME") and os.environ.get("KAGGLE_KEY"):
        return os.environ["KAGGLE_USERNAME"], os.environ["KAGGLE_KEY"]
    path = Path(os.environ.get("KAGGLE_CONFIG_DIR", Path.home() / ".kaggle")) / "kaggle.json"
    if path.is_file():
        data = json.loads(path.read_text())
        return data["username"], data["key"]
    return None


def download_kaggle(url: str, files: list[Official], target: Path, cfg: DictConfig) -> None:
    """A zip of the corpus on Kaggle (with credentials only), for the files the other sources
    could not give; each member verified against the list like any download."""
    credentials = kaggle_credentials()
    wanted = {Path(f.path).name: f for f in files if not (target / f.path).is_file()}
    if not wanted or credentials is None:
        return
    token = base64.b64encode(":".join(credentials).encode()).decode()
    archive = target / ".partial" / "kaggle.zip"
    archive.parent.mkdir(parents=True, exist_ok=True)
    with tqdm(unit="B", unit_scale=True, desc="kaggle", file=sys.stderr) as bar:
        fetch(url, {"Authorization": f"Basic {token}"}, archive, None, cfg.timeout_s, bar)
    with zipfile.ZipFile(archive) as zf:
        for member in zf.namelist():
            official = wanted.get(Path(member).name)
            if official is not None:
                partial = target / ".partial" / official.path
                partial.parent.mkdir(parents=True, exist_ok=True)
                partial.write_bytes(zf.read(member))
                accept(partial, official, target)


def import_local(cfg: DictConfig) -> int:
    """Copy the official files found anywhere below `cfg.source_dir` (by name) into the corpus
    folder, each verified before it is moved into place; returns the exit status."""
    corpus = cfg.corpus
    source, target = Path(cfg.source_dir), Path(corpus.target)
    if not source.is_dir():
        log.error("source_dir=%s is not a folder", source)
        return 2
    files = read_file_list(corpus.file_list)
    found: dict[str, list[Path]] = {}
    for path in sorted(source.rglob("*")):
        if path.is_file():
            found.setdefault(path.name, []).append(path)
    problems: dict[str, str] = {}
    imported = 0
    for official in tqdm(files, desc="verify", unit="file", file=sys.stderr):
        if is_complete(target / official.path, official):
            continue
        candidates = found.get(Path(official.path).name, [])
        if not candidates:
            problems[official.path] = "missing from the source folder"
            continue
        partial = target / ".partial" / official.path
        partial.parent.mkdir(parents=True, exist_ok=True)
        for candidate in candidates:
            shutil.copyfile(candidate, partial)
            if accept(partial, official, target):
                imported += 1
                break
        else:
            size = candidates[0].stat().st_size
            how = "truncated" if size < official.size else "altered"
            problems[official.path] = (
                f"{candidates[0]} differs from the official file ({how}: {size} bytes, "
                f"{official.size} expected, or another sha256)"
            )
    report(corpus, target, files, imported, problems)
    return 1 if problems else 0


def report(
    corpus: DictConfig, target: Path, files: list, imported: int | None, problems: dict[str, str]
) -> None:
    verified = sum(1 for f in files if (target / f.path).is_file())
    now = "" if imported is None else f" ({imported} imported now)"
    log.info("%s in %s: %d of %d official files verified%s",
             corpus.name, target, verified, len(files), now)  # fmt: skip
    for path, reason in sorted(problems.items()):
        log.error("%s: %s", path, reason)
    if problems:
        log.error("Incomplete: nothing unverified was imported. Fix the source and rerun.")


def download(cfg: DictConfig) -> int:
    """The whole command without source_dir; returns the exit status."""
    corpus = cfg.corpus
    target = Path(corpus.target)
    target.mkdir(parents=True, exist_ok=True)
    files = read_file_list(corpus.file_list)
    reasons: dict[str, str] = {}
    for source in corpus.sources:
        try:
            missing = sum(not (target / f.path).is_file() for f in files)
            failed = download_from(source, files, target, cfg)
            reasons.update(failed)
            if failed and len(failed) == missing:  # nothing came: say so once, not per file
                log.warning("%s failed: %s", source.name, next(iter(failed.values())))
        except DownloadError as error:
            log.warning("%s failed: %s", source.name, error)
            reasons.update({f.path: str(error) for f in files})
            continue
        if all((target / f.path).is_file() for f in files):
            break
    if corpus.get("kaggle_url"):
        try:
            download_kaggle(corpus.kaggle_url, files, target, cfg)
        except DownloadError as error:
            log.warning("kaggle failed: %s", error)
    problems = {
        f.path: reasons.get(f.path, "not obtained from any source")
        for f in files
        if not (target / f.path).is_file()
    }
    report(corpus, target, files, None, problems)
    if problems:
        log.error(
            "Rerun to resume; without internet access, stage a copy and import it with "
            "`python scripts/download_corpus.py corpus=%s source_dir=DIR`",
            corpus.id,
        )
        return 1
    return 0


@hydra.main(version_base="1.3", config_path="../conf", config_name="download_corpus")
def main(cfg: DictConfig) -> None:
    sys.exit(import_local(cfg) if cfg.source_dir else download(cfg))


if __name__ == "__main__":
    main()
