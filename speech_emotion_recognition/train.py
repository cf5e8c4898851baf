"""Train, validate and test an emotion classifier: `python speech_emotion_recognition/train.py`."""

from __future__ import annotations

import json
import logging
import netrc
import os
import platform
import socket
import time
from pathlib import Path
from urllib.parse import urlparse

import hydra
import lightning as L
import torch
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig, OmegaConf, open_dict

from speech_emotion_recognition.cli import check_arguments
from speech_emotion_recognition.losses import inverse_frequency_weights
from speech_emotion_recognition.predict.predictor import checkpoint_error, native_bf16, read_file
from speech_emotion_recognition.training.callbacks import EpochThroughput
from speech_emotion_recognition.training.finetune import FreezeFor, load_pretrained
from speech_emotion_recognition.training.speakers import speaker_band_means

log = logging.getLogger(__name__)

WANDB_DEFAULT_URL = "https://api.wandb.ai"
WANDB_PROBE_TIMEOUT_S = 3.0


def wandb_can_sync() -> bool:
    """True only with an API key and a reachable server, so a missing network never hangs a run."""
    if os.environ.get("WANDB_MODE") in ("offline", "disabled", "dryrun"):
        return False
    url = urlparse(os.environ.get("WANDB_BASE_URL", WANDB_DEFAULT_URL))
    host = url.hostname or ""
    has_key = bool(os.environ.get("WANDB_API_KEY"))
    if not has_key:
        try:
            has_key = netrc.netrc().authenticators(host) is not None
        except (OSError, netrc.NetrcParseError):
            has_key = False
    if not has_key:
        return False
    try:
        socket.create_connection((host, url.port or 443), timeout=WANDB_PROBE_TIMEOUT_S).close()
    except OSError:
        return False
    return True


def instantiate_loggers(cfg: DictConfig | None) -> list[Logger]:
    loggers = []
    for name, logger_cfg in (cfg or {}).items():
        overrides = {}
        if name == "wandb" and logger_cfg.get("offline") is None:
            overrides["offline"] = not wandb_can_sync()
            if overrides["offline"]:
                log.info("W&B runs offline (no API key or no connection to the server).")
        loggers.append(hydra.utils.instantiate(logger_cfg, **overrides))
    return loggers


def processor_name() -> str:
    """The CPU model as /proc/cpuinfo names it (platform.processor() only says x86_64)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.machine()


def machine(trainer: L.Trainer) -> dict:
    """Where the run trained, for the model card: device, processor, threads, precision."""
    root = trainer.strategy.root_device
    return {
        "device": torch.cuda.get_device_name(root) if root.type == "cuda" else "CPU",
        "processor": processor_name(),
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "precision": str(trainer.precision),
        "torch": torch.__version__,
    }


def trainer_precision(trainer_cfg: DictConfig) -> str:
    """`auto`: bf16-mixed where the device computes bf16 natively, else 32-true (logged)."""
    if trainer_cfg.precision != "auto":
        return str(trainer_cfg.precision)
    accelerator = trainer_cfg.accelerator
    cuda = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    device = torch.device("cuda" if cuda else "cpu")
    if native_bf16(device):
        return "bf16-mixed"
    log.info("Training in fp32: this %s has no native bf16 (AVX512-BF16 or AMX).", device.type)
    return "32-true"


def resume_in_place(cfg: DictConfig) -> None:
    """A resumed run continues in its checkpoint's run folder: the same split manifests (even if
    the corpus has grown since), the same checkpoint folder and best score, the same logs."""
    if not cfg.get("ckpt_path"):
        return
    run_dir = Path(cfg.ckpt_path).resolve().parent.parent
    if not (run_dir / "splits").is_dir():
        log.warning("%s is not in a run folder with splits/: resuming in a new run", cfg.ckpt_path)
        return
    with open_dict(cfg):
        cfg.paths.output_dir = str(run_dir)
    log.info("Resuming in %s", run_dir)


def train(cfg: DictConfig) -> dict:
    """Fit, then evaluate the best checkpoint on val and test; returns what metrics.json holds."""
    resume_in_place(cfg)
    if cfg.get("init_from"):
        if error := checkpoint_error(cfg.init_from):
            raise FileNotFoundError(error)
        release = read_file(cfg.init_from)  # (hparams, state), read once
        with open_dict(cfg):  # the release's architecture, whatever model= says
            cfg.model.features, cfg.model.net = release[0]["features"], release[0]["net"]
    L.seed_everything(cfg.seed, workers=True)
    datamodule = hydra.utils.instantiate(cfg.data)
    datamodule.setup("fit")
    class_names = list(cfg.labels.names)
    weights = inverse_frequency_weights(datamodule.train_labels(), len(class_names))
    model = hydra.utils.instantiate(
        cfg.model,
        class_names=class_names,
        class_weights=weights,
        corpora=datamodule.corpora(),
    )
    if model.hparams.speaker_norm:
        model.speaker_band_means = speaker_band_means(model.features, datamodule)
    initialised = None
    if cfg.get("init_from"):
        initialised = load_pretrained(model, release, class_names, cfg.init_from)
    if cfg.get("compile"):
        model.compile_network(cfg.compile)
    callbacks = [hydra.utils.instantiate(c) for c in (cfg.get("callbacks") or {}).values()]
    if cfg.freeze.part:
        callbacks.append(FreezeFor(cfg.freeze.part, cfg.freeze.epochs))
    trainer = hydra.utils.instantiate(
        cfg.trainer,
        precision=trainer_precision(cfg.trainer),
        callbacks=callbacks,
        logger=instantiate_loggers(cfg.get("logger")),
    )
    start = time.perf_counter()
    trainer.fit(model, datamodule=datamodule, ckpt_path=cfg.get("ckpt_path"))
    clock = next((c for c in callbacks if isinstance(c, EpochThroughput)), None)
    earlier = clock.earlier_seconds if clock else None
    results: dict = {
        "seed": cfg.seed,
        "class_names": class_names,
        "init_from": initialised,
        "epochs": trainer.current_epoch,
        # a resumed run's time includes its stopped processes' where its checkpoint kept it
        "fit_seconds": round(time.perf_counter() - start + (earlier or 0.0), 1),
        "machine": machine(trainer),
    }
    if cfg.get("ckpt_path"):
        results["resumed"] = {"fit_seconds": "all" if earlier is not None else "the last part"}
    if cfg.get("test"):
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if not best:
            log.warning("No best checkpoint was saved; evaluating the final weights.")
        ckpt = best or None
        # relative to the run folder: a report copied from it names no folder of this machine
        results["best_checkpoint"] = best and os.path.relpath(best, cfg.paths.output_dir)
        results["val"] = trainer.validate(model, datamodule=datamodule, ckpt_path=ckpt)[0]
        results["test"] = trainer.test(model, datamodule=datamodule, ckpt_path=ckpt)[0]
        results["confusion"] = model.confusion_counts
    if trainer.is_global_zero:
        out = Path(cfg.paths.output_dir)
        # With test=true the module now holds the best checkpoint (loaded for validate/test).
        model.save_weights(out / "model.safetensors")
        (out / "metrics.json").write_text(json.dumps(results, indent=2) + "\n")
        log.info("Metrics and fp16 weights written to %s", out)
    return results


@hydra.main(version_base="1.3", config_path="../conf", config_name="train")
def main(cfg: DictConfig) -> None:
    log.info("Configuration:\n%s", OmegaConf.to_yaml(cfg))
    train(cfg)


if __name__ == "__main__":
    check_arguments("train")
    main()
