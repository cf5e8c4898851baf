"""Training throughput as a run sees it: clips per second over a whole epoch, from the first
training batch to the end of validation (decoding, augmentation, features, steps, validation),
and the fitting time of a run that was stopped and resumed, carried in its checkpoints."""

from __future__ import annotations

import time
from typing import Any

import lightning as L


class EpochThroughput(L.Callback):
    """Logs `time/epoch_s` and `time/clips_per_s` (training clips of the epoch / its seconds).
    Its checkpointed state is the fitting time so far: after a resume, `earlier_seconds` is the
    time the stopped processes spent (None: not resumed, or from a checkpoint without it)."""

    def __init__(self) -> None:
        self.start = 0.0
        self.clips = 0
        self.fit_start = time.perf_counter()
        self.earlier_seconds: float | None = None

    def on_fit_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.fit_start = time.perf_counter()

    def state_dict(self) -> dict[str, float]:
        return {"fit_seconds": (self.earlier_seconds or 0.0) + time.perf_counter() - self.fit_start}

    def load_state_dict(self, state_dict: dict[str, float]) -> None:
        self.earlier_seconds = state_dict["fit_seconds"]

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        self.start, self.clips = time.perf_counter(), 0

    def on_train_batch_end(
        self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any, *_: Any
    ) -> None:
        self.clips += len(batch[1])

    def on_validation_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        if trainer.sanity_checking or not self.clips:
            return
        seconds = time.perf_counter() - self.start
        module.log_dict({"time/epoch_s": seconds, "time/clips_per_s": self.clips / seconds})
