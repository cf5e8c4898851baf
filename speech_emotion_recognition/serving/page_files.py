"""The page's file folder: the only place from which a request may name a file.

Gradio keeps the page's uploads, microphone recordings and copies of the example clips in
GRADIO_TEMP_DIR, and the page sends their paths back with each prediction. The server gives
Gradio a folder of its own, refuses every request path that does not lead to a regular file
inside it (`allows`), and sweeps it itself: uploads older than `max_age_seconds` go, the
example copies stay for as long as the server runs, empty folders go, and so do uploads cut off
mid-way (Gradio writes an upload at the folder's top level and moves it into a folder of its own
when complete, so a top-level file that has not grown for `partial_age_seconds` was abandoned).
"""

from __future__ import annotations

import contextlib
import os
import time
from pathlib import Path


class PageFiles:
    def __init__(
        self, root: str | Path, max_age_seconds: float, partial_age_seconds: float = 60.0
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self.max_age_seconds = max_age_seconds
        self.partial_age_seconds = partial_age_seconds
        self._kept: set[Path] = set()
        os.environ["GRADIO_TEMP_DIR"] = str(self.root)

    def keep_present(self) -> None:
        """Files there now (the example copies Gradio made while the page was built) are
        never swept."""
        self._kept = {p.resolve() for p in self.root.rglob("*") if p.is_file()}

    def allows(self, path: str) -> bool:
        """Whether `path` (relative paths from the working folder, as Gradio resolves them)
        leads to a regular file inside the folder, after every link is followed."""
        try:
            real = Path(os.path.realpath(path))
            return real.is_relative_to(self.root.resolve()) and real.is_file()
        except (OSError, ValueError):  # a NUL byte, a name too long: nothing to open
            return False

    def used_bytes(self) -> int:
        """What the folder's files take on disk now (uploads in progress included)."""
        used = 0
        for path in self.root.rglob("*"):
            with contextlib.suppress(FileNotFoundError):  # swept or moved meanwhile
                used += path.lstat().st_size if path.is_file() else 0
        return used

    def sweep(self, now: float | None = None) -> int:
        """Delete expired uploads, abandoned partial uploads and then empty folders; returns
        how many files went."""
        now = time.time() if now is None else now
        removed = 0
        for path in sorted(self.root.rglob("*"), key=lambda p: len(p.parts), reverse=True):
            try:
                if path.is_dir():  # not one Gradio just made for an upload it is moving
                    fresh = now - path.stat().st_mtime < self.partial_age_seconds
                    if not fresh and not any(path.iterdir()):
                        path.rmdir()
                    continue
                partial = path.parent == self.root
                age = self.partial_age_seconds if partial else self.max_age_seconds
                if path.resolve() not in self._kept and now - path.lstat().st_mtime > age:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:  # an upload finished or was swept meanwhile
                continue
        return removed
