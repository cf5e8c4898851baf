"""Focal loss and the class weights it is given, computed from the training split."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


def inverse_frequency_weights(labels: Sequence[int], n_classes: int) -> list[float]:
    """Weights proportional to 1 / count, scaled to average 1 over the classes present.

    Classes absent from the split get weight 0: they never occur as a target there.
    """
    counts = torch.bincount(torch.as_tensor(labels, dtype=torch.long), minlength=n_classes).double()
    present = counts > 0
    weights = torch.zeros(n_classes, dtype=torch.float64)
    weights[present] = 1.0 / counts[present]
    weights *= present.sum() / weights.sum()
    return weights.tolist()


class FocalLoss(nn.Module):
    """Focal loss (Lin et al., 2017) on logits: cross-entropy scaled by (1 - p_true) ** gamma.

    With class weights the batch mean is normalised by the weights of its targets, exactly as
    `F.cross_entropy(weight=...)` does, so gamma = 0 gives weighted cross-entropy.
    """

    def __init__(self, gamma: float, weight: Sequence[float] | None = None) -> None:
        super().__init__()
        self.gamma = gamma
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight).float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=-1).gather(1, target.unsqueeze(1)).squeeze(1)
        loss = -((1.0 - log_p.exp()) ** self.gamma) * log_p
        if self.weight is None:
            return loss.mean()
        w = self.weight[target]
        return (w * loss).sum() / w.sum()
