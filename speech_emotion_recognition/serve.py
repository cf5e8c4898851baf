"""Serve the demo page and the JSON API: `python speech_emotion_recognition/serve.py`."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
import uvicorn
from omegaconf import DictConfig

from speech_emotion_recognition.api import create_app
from speech_emotion_recognition.predictor import (
    checkpoint_error,
    resolve_device,
    resolve_precision,
)
from speech_emotion_recognition.service import EmotionService, Limits
from speech_emotion_recognition.speech import SpeechConfig

log = logging.getLogger(__name__)


def build_service(cfg: DictConfig) -> EmotionService:
    device = resolve_device(cfg.device)
    return EmotionService(
        cfg.ckpt,
        SpeechConfig(**cfg.speech),
        device,
        resolve_precision(cfg.precision, device),
        cfg.batch_size,
        Limits(**cfg.limits),
    )


@hydra.main(version_base="1.3", config_path="../conf", config_name="serve")
def main(cfg: DictConfig) -> None:
    if error := checkpoint_error(cfg.ckpt):
        log.error(error)
        sys.exit(2)
    app = create_app(build_service(cfg), list(cfg.examples))
    log.info("Serving %s on http://%s:%d (docs: /docs)", Path(cfg.ckpt).stem, cfg.host, cfg.port)
    uvicorn.run(app, host=cfg.host, port=cfg.port, log_level="warning")


if __name__ == "__main__":
    main()
