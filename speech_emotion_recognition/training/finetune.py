"""Fine-tuning from a release: its weights into a new model, and parts of it frozen for a while.

`train.py init_from=models/<release>.safetensors` (or a checkpoint) builds the model with the
release's feature and network sizes, copies all its weights when the label sets match (the
head's rows reordered if only the order differs) and all but the head when they differ (a new
head, initialised as in any new model). `freeze.part=cnn|encoder freeze.epochs=N` trains only
the rest for N epochs.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import lightning as L
import torch
from torch import nn

from speech_emotion_recognition.emotions import EMOTIONS

log = logging.getLogger(__name__)

HEAD = "net.head."


def load_pretrained(
    module: nn.Module,
    release: tuple[dict, dict[str, torch.Tensor]],
    class_names: Sequence[str],
    path: str | Path,
) -> dict:
    """Copies a release's weights (`predictor.read_file(path)`: hparams and state) into
    `module`, built with the release's sizes; returns what was done, for the log and
    metrics.json."""
    hparams, state = release
    theirs = list(hparams.get("class_names") or EMOTIONS)
    ours = list(class_names)
    own = module.state_dict()
    head = {k: v for k, v in state.items() if k.startswith(HEAD)}
    # the classifier only: the loss's class weights belong to the new run's own data
    body = {
        k: v
        for k, v in state.items()
        if k.startswith(("features.", "net.")) and not k.startswith(HEAD) and k in own
    }
    for key, value in body.items():
        if own[key].shape != value.shape:
            raise ValueError(
                f"{path}: {key} has shape {tuple(value.shape)}, the model {tuple(own[key].shape)}"
            )
        own[key] = value.to(own[key].dtype)
    if sorted(theirs) == sorted(ours):
        order = torch.tensor([theirs.index(name) for name in ours])
        for key, value in head.items():
            own[key] = value[order].to(own[key].dtype)
        kind = "all weights" if theirs == ours else "all weights, head rows reordered"
    else:
        kind = "all weights but the head (new head)"
    module.load_state_dict(own)
    log.info(
        "Initialised from %s: %s. Release classes: %s; this model's: %s",
        path, kind, ", ".join(theirs), ", ".join(ours),
    )  # fmt: skip
    return {"from": str(path), "copied": kind, "release_classes": theirs, "classes": ours}


class FreezeFor(L.Callback):
    """Trains all but `part` for the first `epochs` epochs: `cnn` (the convolutions) or
    `encoder` (CNN and Transformer: only the head learns). Frozen modules also stay in eval
    mode, so their BatchNorm statistics and dropout stay as the release had them; AdamW skips
    parameters without gradients, so they neither move nor decay."""

    def __init__(self, part: str, epochs: int) -> None:
        if part not in ("cnn", "encoder"):
            raise ValueError(f"freeze.part={part!r}: choose cnn or encoder")
        self.part, self.epochs = part, epochs

    def modules(self, pl_module: L.LightningModule) -> list[nn.Module]:
        net = pl_module.net
        return [net.cnn] if self.part == "cnn" else [net.cnn, net.positional, net.encoder]

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        frozen = trainer.current_epoch < self.epochs
        for module in self.modules(pl_module):
            module.requires_grad_(not frozen)
            module.train(not frozen)
        # The model summary counts parameters before the first epoch, so it never shows this.
        trainable = sum(p.numel() for p in pl_module.parameters() if p.requires_grad)
        total = sum(p.numel() for p in pl_module.parameters())
        state = f"{self.part} frozen" if frozen else "nothing frozen"
        log.info("Epoch %d: %s, %d of %d parameters train", trainer.current_epoch, state,
                 trainable, total)  # fmt: skip
