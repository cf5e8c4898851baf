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
    """Focal loss (Lin et al., 2017) on logits: cross-entropy scaled by (1 - p) ** gamma.

    Targets are class indices or class probabilities (mixup, a teacher's soft labels); with
    `label_smoothing` e, the probabilities become (1 - e) * target + e / n_classes. The loss of
    a clip is sum_k q_k (1 - p_k) ** gamma (-log p_k), so hard targets and no smoothing give
    the usual focal loss. With class weights the batch mean is normalised by each clip's weight
    sum_k q_k w_k, exactly as `F.cross_entropy(weight=...)` does: gamma = 0 gives weighted
    cross-entropy.
    """

    def __init__(
        self, gamma: float, weight: Sequence[float] | None = None, label_smoothing: float = 0.0
    ) -> None:
        super().__init__()
        self.gamma = gamma
        self.label_smoothing = label_smoothing
        self.register_buffer("weight", None if weight is None else torch.as_tensor(weight).float())

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        log_p = F.log_softmax(logits.float(), dim=-1)
        n_classes = logits.shape[-1]
        q = F.one_hot(target, n_classes).float() if target.dim() == 1 else target.float()
        if self.label_smoothing:
            q = (1.0 - self.label_smoothing) * q + self.label_smoothing / n_classes
        loss = -(q * (1.0 - log_p.exp()) ** self.gamma * log_p).sum(dim=-1)
        if self.weight is None:
            return loss.mean()
        w = q @ self.weight
        return (w * loss).sum() / w.sum()
