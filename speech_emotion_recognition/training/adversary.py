"""Corpus-adversarial training (Ganin & Lempitsky, 2015): a corpus classifier on the pooled
embedding behind a gradient-reversal layer, so the encoder is pushed towards features that do
not tell one corpus from another while the emotion head learns as before."""

from __future__ import annotations

import math

import torch
from torch import nn


class _ReverseGradient(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.weight * grad, None


def reverse_gradient(x: torch.Tensor, weight: float) -> torch.Tensor:
    """x unchanged on the way forward; its gradient times -weight on the way back."""
    return _ReverseGradient.apply(x, weight)


def ramp(progress: float, max_weight: float) -> float:
    """DANN's schedule, 0 at the start to max_weight at the end: 2 / (1 + e^(-10 p)) - 1, so
    the adversary's noisy early gradients do not reach the encoder at full strength."""
    return max_weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)


class CorpusAdversary(nn.Module):
    """Pooled embedding (B, d) -> corpus logits, through the gradient reversal."""

    def __init__(self, d_model: int, n_corpora: int, max_weight: float) -> None:
        super().__init__()
        self.max_weight = max_weight
        self.classifier = nn.Linear(d_model, n_corpora)

    def forward(self, embedding: torch.Tensor, progress: float) -> torch.Tensor:
        return self.classifier(reverse_gradient(embedding, ramp(progress, self.max_weight)))
