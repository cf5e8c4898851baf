"""Serve the demo page and the JSON API: `python speech_emotion_recognition/serve.py`."""

from __future__ import annotations

import logging
import os
import signal
import sys
import tempfile
from pathlib import Path

import hydra
import uvicorn
from omegaconf import DictConfig, OmegaConf

from speech_emotion_recognition.cli import check_arguments
from speech_emotion_recognition.predict.predictor import (
    checkpoint_error,
    engine_file,
    resolve_device,
    resolve_precision,
)
from speech_emotion_recognition.predict.speech import SpeechConfig
from speech_emotion_recognition.serving.api import create_app
from speech_emotion_recognition.serving.live import StreamLimits
from speech_emotion_recognition.serving.page_files import PageFiles
from speech_emotion_recognition.serving.service import EmotionService, Limits

log = logging.getLogger(__name__)


def build_service(cfg: DictConfig) -> EmotionService:
    """Raises FileNotFoundError for `engine=onnx` without its file, ValueError for an unknown
    engine."""
    device = resolve_device(cfg.device)
    ckpt = Path(cfg.ckpt).resolve()
    return EmotionService(
        ckpt,
        SpeechConfig(**cfg.speech),
        device,
        resolve_precision(cfg.precision, device),
        cfg.batch_size,
        Limits(**cfg.limits),
        engine_file(ckpt, cfg.engine, device, cfg.onnx),
    )


def served_hosts(host: str, allowed: list[str]) -> list[str]:
    """The names the Host header may carry: `allowed_hosts` and the address served on (an
    IPv6 one in brackets, as it appears in a Host header), unless that is every address."""
    if host in ("0.0.0.0", "::", ""):
        return list(allowed)
    return [*allowed, f"[{host}]" if ":" in host else host]


@hydra.main(version_base="1.3", config_path="../conf", config_name="serve")
def main(cfg: DictConfig) -> None:
    if error := checkpoint_error(cfg.ckpt):
        log.error(error)
        sys.exit(2)
    try:
        service = build_service(cfg)
    except (FileNotFoundError, ValueError) as error:  # a missing file or an unknown engine
        log.error(error)
        sys.exit(2)
    examples = [str(Path(e).resolve()) for e in cfg.examples]
    with tempfile.TemporaryDirectory(prefix="ser-serve-") as workdir:
        # The server works in a folder of its own that holds only the page's files: Gradio
        # answers with paths relative to it (files/<hash>/clip.wav, no server path), and its
        # rule that files in the working folder may be served then covers nothing else.
        os.chdir(workdir)
        page_files = PageFiles("files", cfg.page.max_file_age_seconds)
        limits = StreamLimits(
            **OmegaConf.to_container(cfg.stream), allowed_origins=list(cfg.allowed_origins)
        )
        hosts = served_hosts(cfg.host, cfg.allowed_hosts)
        app = create_app(service, page_files, examples, cfg.page.sweep_seconds, limits, hosts)
        log.info(
            "Serving %s (network: %s) on http://%s:%d (docs: /docs)",
            service.model,
            service.predictor.engine,
            cfg.host,
            cfg.port,
        )
        # uvicorn re-raises the SIGTERM it stopped on; exiting then removes the folder
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        uvicorn.run(
            app,
            host=cfg.host,
            port=cfg.port,
            log_level="warning",
            server_header=False,
            ws_max_size=4 * limits.max_frame_bytes,  # larger frames are refused unread
        )


if __name__ == "__main__":
    check_arguments("serve")
    main()
