"""LightningModule: features on the device, the classifier, focal loss, metrics and figures."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import hydra
import lightning as L
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from safetensors.torch import save_file
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassConfusionMatrix,
    MulticlassF1Score,
    MulticlassRecall,
)

from speech_emotion_recognition import PROJECT_ROOT
from speech_emotion_recognition.losses import FocalLoss
from speech_emotion_recognition.plots import confusion_matrix_figure, save
from speech_emotion_recognition.predict.predictor import HPARAMS_KEY, EmotionClassifier
from speech_emotion_recognition.training.adversary import CorpusAdversary
from speech_emotion_recognition.training.batch_augment import BatchAugment, FeatureAugment, mixup


def _portable(value: Any) -> Any:
    """Paths inside the repository made relative to it, so a release names no folder of the
    machine it was trained on (the noise folders of augmentation=batch)."""
    if isinstance(value, dict):
        return {k: _portable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_portable(v) for v in value]
    root = f"{PROJECT_ROOT}/"
    return value.removeprefix(root) if isinstance(value, str) else value


def _plain(value: Any) -> Any:
    """Resolved plain containers, so checkpoints load without Hydra or OmegaConf objects."""
    return OmegaConf.to_container(value, resolve=True) if isinstance(value, DictConfig) else value


def stage_metrics(n_classes: int, stage: str) -> MetricCollection:
    """Accuracy, macro-F1 and unweighted average recall (UA, the usual SER headline figure)."""
    return MetricCollection(
        {
            "acc": MulticlassAccuracy(n_classes, average="micro"),
            "f1": MulticlassF1Score(n_classes, average="macro"),
            "ua": MulticlassRecall(n_classes, average="macro"),
        },
        prefix=f"{stage}/",
    )


def distillation_targets(
    labels: torch.Tensor, teacher: torch.Tensor, alpha: float, temperature: float
) -> torch.Tensor:
    """(1 - alpha) * the one-hot label + alpha * softmax(teacher logits / temperature): the soft
    labels the focal loss takes. Clips without the teacher's logits (NaN) keep their label."""
    one_hot = F.one_hot(labels, teacher.shape[-1]).float()
    known = torch.isfinite(teacher).all(dim=-1, keepdim=True)
    soft = torch.softmax(torch.nan_to_num(teacher.float()) / temperature, dim=-1)
    return torch.where(known, torch.lerp(one_hot, soft, alpha), one_hot)


class EmotionRecognitionModule(L.LightningModule):
    """Everything a checkpoint needs to predict: feature and network sizes live in its hparams."""

    def __init__(
        self,
        features: dict,
        net: dict,
        class_names: Sequence[str],
        gamma: float,
        optimizer: dict,
        scheduler: dict | None = None,
        class_weights: Sequence[float] | None = None,
        batch_augment: dict | None = None,
        feature_augment: dict | None = None,
        corpora: Sequence[str] | None = None,
        label_smoothing: float = 0.0,
        mixup_alpha: float = 0.0,
        distill_alpha: float = 0.0,
        distill_temperature: float = 2.0,
        adversary_weight: float = 0.0,
        speaker_norm: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters(
            {
                "features": _plain(features),
                "net": _plain(net),
                "class_names": list(class_names),
                "gamma": gamma,
                "optimizer": _plain(optimizer),
                "scheduler": _plain(scheduler),
                "class_weights": None if class_weights is None else list(class_weights),
                "batch_augment": _plain(batch_augment),
                "feature_augment": _plain(feature_augment),
                "corpora": list(corpora or []),
                "label_smoothing": label_smoothing,
                "mixup_alpha": mixup_alpha,
                "distill_alpha": distill_alpha,
                "distill_temperature": distill_temperature,
                "adversary_weight": adversary_weight,
                "speaker_norm": speaker_norm,
            }
        )
        n_classes = len(class_names)
        # The network is predictor.py's, so checkpoints and releases load there unchanged.
        classifier = EmotionClassifier(self.hparams.features, self.hparams.net, class_names)
        self.features, self.net = classifier.features, classifier.net
        self.batch_augment = BatchAugment(**batch_augment) if batch_augment else None
        sizes = self.hparams.features
        self.feature_augment = (
            FeatureAugment(sizes["n_mels"], sizes["f_min"], sizes["f_max"], **feature_augment)
            if feature_augment
            else None
        )
        self.criterion = FocalLoss(gamma, class_weights, label_smoothing)
        # speaker_norm: each speaker's band means (training/speakers.py), rows indexed by the
        # batches' speaker index; set before fitting, never saved (the release falls back to
        # each clip's own, features.band_norm)
        if speaker_norm and not self.hparams.features.get("band_norm"):
            raise ValueError("model.speaker_norm needs model.features.band_norm=true")
        self.register_buffer("speaker_band_means", torch.zeros(0), persistent=False)
        # Training only: not in the release (save_weights leaves it out).
        corpora_seen = len(self.hparams.corpora)
        self.adversary = (
            CorpusAdversary(self.hparams.net["channels"][-1], corpora_seen, adversary_weight)
            if adversary_weight > 0 and corpora_seen > 1
            else None
        )
        # Keys carry a suffix: ModuleDict keys must not shadow nn.Module.train.
        self.metrics = torch.nn.ModuleDict(
            {f"{stage}_": stage_metrics(n_classes, stage) for stage in ("train", "val", "test")}
        )
        self.confusion = torch.nn.ModuleDict(
            {f"{stage}_": MulticlassConfusionMatrix(n_classes) for stage in ("val", "test")}
        )
        self.confusion_counts: dict[str, list[list[int]]] = {}
        # With several corpora, val and test metrics per corpus too (val/ravdess/acc, ...).
        names = self.hparams.corpora if len(self.hparams.corpora) > 1 else []
        self.corpus_metrics = torch.nn.ModuleDict(
            {
                f"{stage}_{i}": stage_metrics(n_classes, f"{stage}/{name}")
                for stage in ("val", "test")
                for i, name in enumerate(names)
            }
        )
        # ... and each corpus's confusion counts, for per-class recall on a corpus left out.
        self.corpus_confusion = torch.nn.ModuleDict(
            {key: MulticlassConfusionMatrix(n_classes) for key in self.corpus_metrics}
        )

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        """Waveforms (B, samples) at the feature sample rate -> logits (B, n_classes)."""
        return self.net(self.features(waveforms))

    def compile_network(self, mode: bool | str) -> None:
        """torch.compile the network in place (state dict and checkpoints unchanged). `mode`:
        True for torch's default, or a mode name: "reduce-overhead" adds CUDA graphs (shapes
        here are static: fixed windows, full training batches), "max-autotune" tunes kernels."""
        self.net.compile(mode=None if mode is True else mode)

    def on_after_batch_transfer(self, batch: tuple, dataloader_idx: int) -> tuple:
        """Training batches get the waveform augmentations of augmentation=batch here."""
        if self.batch_augment is not None and self.trainer.training:
            waveforms, *rest = batch
            return (self.batch_augment(waveforms), *rest)
        return batch

    def _step(self, batch: tuple[torch.Tensor, ...], stage: str) -> torch.Tensor:
        # corpus and speaker: indices into hparams.corpora and the datamodule's speakers()
        waveforms, labels, corpus, speaker, *teacher = batch
        features = self.features(waveforms, self._speaker_band_means(speaker))
        targets = labels
        if stage == "train" and self.feature_augment is not None:
            features = self.feature_augment(features)
        if stage == "train" and self.hparams.distill_alpha > 0:
            if not teacher:
                raise ValueError("model.distill_alpha > 0 needs data.teacher_logits=FILE")
            targets = distillation_targets(
                labels, teacher[0], self.hparams.distill_alpha, self.hparams.distill_temperature
            )
        if stage == "train" and self.hparams.mixup_alpha > 0:
            if targets is labels:
                targets = F.one_hot(labels, len(self.hparams.class_names)).float()
            features, targets = mixup(features, targets, self.hparams.mixup_alpha)
        if stage == "train" and self.adversary is not None:
            embedding = self.net.embed(features)
            logits = self.net.head(embedding)
            progress = self.global_step / max(self.trainer.estimated_stepping_batches, 1)
            corpus_loss = F.cross_entropy(self.adversary(embedding, progress), corpus)
            self.log("train/corpus_loss", corpus_loss, on_step=True, batch_size=len(labels))
        else:
            logits, corpus_loss = self.net(features), 0.0
        loss = self.criterion(logits, targets) + corpus_loss
        predictions = logits.argmax(dim=-1)
        self.metrics[f"{stage}_"].update(predictions, labels)
        if stage != "train" and self.corpus_metrics:
            for index in corpus.unique().tolist():
                key, mine = f"{stage}_{index}", corpus == index
                if key in self.corpus_metrics:
                    self.corpus_metrics[key].update(predictions[mine], labels[mine])
                    self.corpus_confusion[key].update(predictions[mine], labels[mine])
        if f"{stage}_" in self.confusion:
            self.confusion[f"{stage}_"].update(predictions, labels)
        on_step = stage == "train"
        self.log(
            f"{stage}/loss",
            loss,
            on_step=on_step,
            on_epoch=True,
            prog_bar=True,
            batch_size=len(labels),
            sync_dist=not on_step,
        )
        self.log_dict(
            self.metrics[f"{stage}_"], on_step=False, on_epoch=True, prog_bar=stage != "train"
        )
        return loss

    def _speaker_band_means(self, speaker: torch.Tensor) -> torch.Tensor | None:
        """With speaker_norm, each clip's speaker's band means; else None (each clip's own)."""
        if not self.hparams.speaker_norm:
            return None
        if not len(self.speaker_band_means):
            raise RuntimeError("model.speaker_norm: set speaker_band_means before fitting")
        return self.speaker_band_means[speaker]

    def training_step(self, batch: tuple[torch.Tensor, ...], _: int) -> torch.Tensor:
        return self._step(batch, "train")

    def validation_step(self, batch: tuple[torch.Tensor, ...], _: int) -> None:
        self._step(batch, "val")

    def test_step(self, batch: tuple[torch.Tensor, ...], _: int) -> None:
        self._step(batch, "test")

    def _log_corpora(self, stage: str) -> None:
        """Per-corpus figures of the epoch, for the corpora that had clips in it, and their
        confusion counts in `confusion_counts` under "stage/corpus"."""
        for key in sorted(k for k in self.corpus_metrics if k.startswith(f"{stage}_")):
            metrics, confusion = self.corpus_metrics[key], self.corpus_confusion[key]
            if any(metric.update_called for metric in metrics.values()):
                self.log_dict(metrics.compute())
                if not self.trainer.sanity_checking:
                    name = self.hparams.corpora[int(key.rsplit("_", 1)[1])]
                    counts = confusion.compute().cpu().int().tolist()
                    self.confusion_counts[f"{stage}/{name}"] = counts
            metrics.reset()
            confusion.reset()

    def _save_confusion(self, stage: str) -> None:
        """The epoch's confusion matrix as a figure, and its counts in `confusion_counts` for
        metrics.json (cross-validation pools them over folds)."""
        matrix = self.confusion[f"{stage}_"].compute().cpu().numpy()
        self.confusion[f"{stage}_"].reset()
        if self.trainer.sanity_checking:
            return
        self.confusion_counts[stage] = matrix.astype(int).tolist()
        if not self.trainer.is_global_zero:
            return
        title = f"{stage}, epoch {self.current_epoch}"
        figure = confusion_matrix_figure(matrix, self.hparams.class_names, title)
        path = save(figure, Path(self.trainer.default_root_dir) / f"confusion_matrix_{stage}.png")
        for logger in self.loggers:
            if hasattr(logger, "log_image"):
                logger.log_image(key=f"{stage}/confusion_matrix", images=[str(path)])

    def on_validation_epoch_end(self) -> None:
        self._log_corpora("val")
        self._save_confusion("val")

    def on_test_epoch_end(self) -> None:
        self._log_corpora("test")
        self._save_confusion("test")

    def configure_optimizers(self) -> dict:
        optimizer = hydra.utils.instantiate(self.hparams.optimizer, params=self.parameters())
        if not self.hparams.scheduler:
            return {"optimizer": optimizer}
        scheduler = hydra.utils.instantiate(self.hparams.scheduler, optimizer=optimizer)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"},
        }

    def save_weights(self, path: str | Path, dtype: torch.dtype = torch.float16) -> Path:
        """A compact release: weights only (no optimizer state), hparams as safetensors metadata."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {
            name: (t.to(dtype) if t.is_floating_point() else t).contiguous()
            for name, t in self.state_dict().items()
            if not name.startswith("adversary.")
        }
        metadata = {HPARAMS_KEY: json.dumps(_portable(dict(self.hparams)))}
        save_file(tensors, path, metadata=metadata)
        return path
