"""The HTTP API: `POST /predict` (multipart audio) and `GET /health`, with OpenAPI docs at
`/docs`; the demo page (demo.py) is mounted at `/` of the same app."""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import gradio as gr
from fastapi import FastAPI, File, Request, UploadFile
from fastapi.responses import JSONResponse

from speech_emotion_recognition.demo import build_demo
from speech_emotion_recognition.emotions import EMOTIONS
from speech_emotion_recognition.service import EmotionService, UploadError

VERSION = version("speech-emotion-recognition")
SAFE_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}
CHUNK = 1 << 20


def upload_name(filename: str | None) -> str:
    """The client's file name without any folders, so nothing it sends names a server path."""
    return Path((filename or "upload").replace("\\", "/")).name or "upload"


def create_app(service: EmotionService, examples: Sequence[str] = ()) -> FastAPI:
    app = FastAPI(
        title="Speech emotion recognition",
        version=VERSION,
        description=f"Emotions in speech: {', '.join(EMOTIONS)}.",
    )

    @app.exception_handler(UploadError)
    async def upload_error(_: Request, error: UploadError) -> JSONResponse:
        return JSONResponse(status_code=error.status, content={"detail": error.message})

    @app.middleware("http")
    async def refuse_large_bodies(request: Request, call_next: Any) -> Any:
        """Refuse an over-limit body from its Content-Length, before it is read."""
        length = request.headers.get("content-length", "")
        if request.url.path == "/predict" and length.isdigit():
            try:
                service.check_size(max(int(length) - 1024, 1))  # multipart framing
            except UploadError as error:
                return JSONResponse(status_code=error.status, content={"detail": error.message})
        return await call_next(request)

    @app.get("/health")
    def health() -> dict:
        """The server is up; which model answers."""
        return {
            "status": "ok",
            "model": service.model,
            "sha256": service.sha256,
            "version": VERSION,
        }

    @app.post("/predict")
    def predict(file: Annotated[UploadFile, File(description="wav, flac, ogg or mp3")]) -> dict:
        """The row `inference.py` writes for this file (path, label, confidence, the six
        probabilities, error; `path` is the uploaded name) plus its speech `segments` and
        `duration`. 4xx with `detail` when the upload is not usable."""
        name = upload_name(file.filename)
        suffix = Path(name).suffix.lower()
        with tempfile.TemporaryDirectory(prefix="ser-upload-") as folder:
            path = Path(folder) / f"upload{suffix if suffix in SAFE_SUFFIXES else ''}"
            with open(path, "wb") as target:
                copied = 0
                while chunk := file.file.read(CHUNK):
                    copied += len(chunk)
                    service.check_size(copied)
                    target.write(chunk)
            return service.predict(path, name)

    return gr.mount_gradio_app(
        app,
        build_demo(service, examples),
        path="",
        max_file_size=service.limits.max_bytes,
        ssr_mode=False,
        footer_links=["api"],
    )
