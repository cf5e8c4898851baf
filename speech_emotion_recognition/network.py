"""The CNN + Transformer-encoder network: log-mel image in, emotion logits out."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class PositionalEncoding(nn.Module):
    """Fixed sinusoidal encoding (Vaswani et al.), so the encoder knows the order of frames."""

    def __init__(self, d_model: int, max_len: int) -> None:
        super().__init__()
        position = torch.arange(max_len).unsqueeze(1)
        frequency = torch.exp(torch.arange(0, d_model, 2) * (-math.log(10000.0) / d_model))
        table = torch.zeros(max_len, d_model)
        table[:, 0::2] = torch.sin(position * frequency)
        table[:, 1::2] = torch.cos(position * frequency)
        self.register_buffer("table", table, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.table[: x.shape[1]]


class BlurPool(nn.Module):
    """Anti-aliased max-pooling over time (Zhang, ICML 2019): the max without a time stride,
    then a [1, 2, 1] low-pass applied at the stride. A strided max-pool aliases, so moving a
    window by a frame or two changes what the network sees far more than the move itself."""

    def __init__(self, channels: int, pool: Sequence[int]) -> None:
        super().__init__()
        self.stride = int(pool[1])
        self.max = nn.MaxPool2d((pool[0], pool[1]), stride=(pool[0], 1))
        blur = torch.tensor([1.0, 2.0, 1.0]) / 4
        self.register_buffer("blur", blur.view(1, 1, 1, 3).repeat(channels, 1, 1, 1), False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.max(x)
        blur = self.blur.to(x.dtype)
        return F.conv2d(x, blur, stride=(1, self.stride), padding=(0, 1), groups=x.shape[1])


def conv_block(
    in_channels: int, out_channels: int, kernel: int, pool: Sequence[int], antialias: bool = False
) -> nn.Sequential:
    """Conv -> BatchNorm -> ReLU -> MaxPool; the conv has no bias because BatchNorm adds one.
    With `antialias`, pools with a time stride blur before they subsample (BlurPool)."""
    blur = antialias and pool[1] > 1
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, kernel, padding=kernel // 2, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
        BlurPool(out_channels, pool) if blur else nn.MaxPool2d(tuple(pool)),
    )


class CNNTransformer(nn.Module):
    """CNN that folds the mel axis away, then a Transformer encoder over the time axis.

    Input (B, 1, n_mels, n_frames); the pools must reduce n_mels to exactly 1 so the CNN
    output (B, C, 1, T') becomes a sequence of T' vectors of size C = d_model.
    """

    def __init__(
        self,
        n_mels: int,
        n_frames: int,
        channels: Sequence[int],
        kernels: Sequence[int],
        pools: Sequence[Sequence[int]],
        n_heads: int,
        dim_feedforward: int,
        n_layers: int,
        dropout: float,
        n_classes: int,
        channels_last: bool = True,
        antialias: bool = False,
    ) -> None:
        super().__init__()
        self.channels_last = channels_last
        if not len(channels) == len(kernels) == len(pools):
            raise ValueError("channels, kernels and pools need one entry per conv block")
        mel_left, frames_left = n_mels, n_frames
        for pool_mel, pool_time in pools:
            mel_left, frames_left = mel_left // pool_mel, frames_left // pool_time
        if mel_left != 1 or frames_left < 1:
            raise ValueError(
                f"pools {list(pools)} turn {n_mels} mels x {n_frames} frames into "
                f"{mel_left} x {frames_left}; they must leave exactly 1 mel row"
            )
        widths = [1, *channels]
        self.cnn = nn.Sequential(
            *(
                conv_block(widths[i], widths[i + 1], kernels[i], pools[i], antialias)
                for i in range(len(pools))
            )
        )
        d_model = channels[-1]
        self.positional = PositionalEncoding(d_model, frames_left)
        layer = nn.TransformerEncoderLayer(
            d_model=d_model,
            nhead=n_heads,
            dim_feedforward=dim_feedforward,
            dropout=dropout,
            batch_first=True,
        )
        self.encoder = nn.TransformerEncoder(layer, num_layers=n_layers, enable_nested_tensor=False)
        self.head = nn.Linear(d_model, n_classes)

    def embed(self, features: torch.Tensor) -> torch.Tensor:
        """The mean-pooled encoder output (B, d_model) that the head classifies."""
        if self.channels_last:  # oneDNN and cuDNN convolutions run fastest on NHWC tensors
            features = features.contiguous(memory_format=torch.channels_last)
        maps = self.cnn(features)  # (B, C, 1, T')
        sequence = maps.squeeze(2).transpose(1, 2)  # (B, T', C)
        return self.encoder(self.positional(sequence)).mean(dim=1)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.head(self.embed(features))
