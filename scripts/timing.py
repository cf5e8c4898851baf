"""The one timing loop of the benchmark scripts."""

from __future__ import annotations

import time
from collections.abc import Callable


def timed(step: Callable[[], object], warmup: int, steps: int, sync: Callable[[], None]) -> float:
    """Seconds per call, after warm-up calls that pay for allocation and kernel selection;
    `sync` waits for queued device work (torch.cuda.synchronize on a GPU)."""
    for _ in range(warmup):
        step()
    sync()
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync()
    return (time.perf_counter() - start) / steps
