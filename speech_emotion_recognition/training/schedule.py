"""Learning-rate schedules built from torch's own schedulers."""

from __future__ import annotations

from torch.optim import Optimizer
from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, LRScheduler, SequentialLR


def warmup_cosine(
    optimizer: Optimizer, warmup_epochs: int, max_epochs: int, eta_min: float
) -> LRScheduler:
    """Linear warm-up from a tenth of the peak, then cosine decay to `eta_min`.

    A Transformer trained from scratch on a few thousand clips diverges or stalls at full
    learning rate from the first step; the warm-up lets Adam's moment estimates settle first.
    """
    if warmup_epochs <= 0:
        return CosineAnnealingLR(optimizer, T_max=max_epochs, eta_min=eta_min)
    warmup = LinearLR(optimizer, start_factor=0.1, end_factor=1.0, total_iters=warmup_epochs)
    decay = CosineAnnealingLR(optimizer, T_max=max(1, max_epochs - warmup_epochs), eta_min=eta_min)
    return SequentialLR(optimizer, [warmup, decay], milestones=[warmup_epochs])
