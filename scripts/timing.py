"""The timing loop and the training step that the benchmark scripts share."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch import nn


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


class TrainingStep:
    """One optimiser step as training takes it: features, network, focal loss, backward, AdamW,
    under bf16 autocast when asked. `model` is an EmotionRecognitionModule."""

    def __init__(self, model: nn.Module, device: torch.device, bf16: bool) -> None:
        self.model = model.to(device).train()
        self.device = device
        self.optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
        self.bf16 = bf16

    def __call__(self, waveforms: torch.Tensor, labels: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.bf16):
            loss = self.model.criterion(self.model(waveforms), labels)
        loss.backward()
        self.optimizer.step()

    def sync(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
