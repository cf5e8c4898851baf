"""The HTTP API: `POST /predict` (multipart audio) and `GET /health`, with OpenAPI docs at
`/docs` and `/redoc` (their scripts served from the package, so they work offline); the demo
page (page.py) is mounted at `/` of the same app, behind the same guards (guard.py)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
import threading
from collections.abc import AsyncIterator, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Annotated, Any

import gradio as gr
from fastapi import FastAPI, File, Form, Request, Response, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel
from starlette.concurrency import run_in_threadpool
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.routing import Mount

from speech_emotion_recognition.serving.guard import (
    BodyLimit,
    BrowserRules,
    MethodCheck,
    PagePaths,
    UploadQuota,
    error,
)
from speech_emotion_recognition.serving.live import StreamLimits, add_stream_route
from speech_emotion_recognition.serving.page import build_page
from speech_emotion_recognition.serving.page_files import PageFiles
from speech_emotion_recognition.serving.service import Cancelled, EmotionService, UploadError

log = logging.getLogger(__name__)
VERSION = version("speech-emotion-recognition")
SAFE_SUFFIXES = {".wav", ".flac", ".ogg", ".mp3"}
CHUNK = 1 << 20
MAX_SPEAKER_NAME = 200  # characters of /predict's speaker field
MULTIPART_SLACK = 64 * 1024  # a body may exceed the file limit by its multipart framing
PAGE_JSON_BYTES = 1 << 20  # the page's JSON messages carry paths and options, never audio


class ErrorDetail(BaseModel):
    """Every 4xx of this API: what was wrong, naming the upload, never a server path."""

    detail: str


ERRORS = {
    400: {"model": ErrorDetail, "description": "Empty upload"},
    413: {"model": ErrorDetail, "description": "Over the size or the duration limit"},
    415: {"model": ErrorDetail, "description": "Not a readable audio file"},
    422: {"model": ErrorDetail, "description": "No file field, no samples or no speech"},
}


def upload_name(filename: str | None) -> str:
    """The client's file name without any folders, so nothing it sends names a server path."""
    return Path((filename or "upload").replace("\\", "/")).name or "upload"


async def cancel_when_gone(request: Request, cancelled: threading.Event) -> None:
    while not await request.is_disconnected():
        await asyncio.sleep(0.1)
    cancelled.set()


# Routes of the page's upload space (UploadQuota): the page's uploads and recordings, and the
# API's uploads, which wait in a temporary file until their answer is sent.
UPLOAD_ROUTES = ("/predict", "/gradio_api/upload")
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def create_app(
    service: EmotionService,
    page_files: PageFiles,
    examples: Sequence[str] = (),
    sweep_seconds: float = 60.0,
    stream_limits: StreamLimits | None = None,
    allowed_hosts: Sequence[str] = LOCAL_HOSTS,
) -> FastAPI:
    """The whole server. `allowed_hosts`: the names a request's Host header may carry (others
    get 400: a DNS-rebinding page cannot reach it); `stream_limits.allowed_origins`: the other
    sites whose pages may call it (CORS) and stream."""
    stream_limits = stream_limits or StreamLimits()
    app = FastAPIOffline(
        title="Speech emotion recognition",
        version=VERSION,
        description=f"Emotions in speech: {', '.join(service.predictor.class_names)}.",
    )

    @app.exception_handler(UploadError)
    async def upload_error(_: Request, exc: UploadError) -> JSONResponse:
        return error(exc.status, exc.message)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_: Request, exc: RequestValidationError) -> JSONResponse:
        """One error shape for every 4xx: `detail` is a sentence, also for a missing field."""
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'][1:]) or 'body'}: {e['msg']}" for e in exc.errors()
        )
        return error(422, f"invalid request ({problems})")

    @app.get("/health")
    def health() -> dict:
        """The server is up; which model answers, and what runs its network."""
        return {
            "status": "ok",
            "model": service.model,
            "sha256": service.sha256,
            "engine": service.predictor.engine,
            "version": VERSION,
        }

    @app.post("/predict", responses=ERRORS)
    async def predict(
        request: Request,
        file: Annotated[UploadFile, File(description="wav, flac, ogg or mp3")],
        speaker: Annotated[
            str | None,
            Form(
                max_length=MAX_SPEAKER_NAME,
                description="adapt to this speaker over their uploads (after 20 of them)",
            ),
        ] = None,
    ) -> dict:
        """The row `inference.py` writes for this file (path, label, confidence, the six
        probabilities, error; `path` is the uploaded name) plus its speech `segments` and
        `duration`. With `speaker`, the file-level answer is adapted to that speaker over
        their uploads so far (`unadapted_*`, `adapted`; the server remembers a bounded number
        of speakers). 4xx with `detail` when the upload is not usable. The work stops when the
        client disconnects."""
        name = upload_name(file.filename)
        suffix = Path(name).suffix.lower()
        with tempfile.TemporaryDirectory(prefix="ser-upload-") as folder:
            path = Path(folder) / f"upload{suffix if suffix in SAFE_SUFFIXES else ''}"
            with open(path, "wb") as target:
                copied = 0
                while chunk := await file.read(CHUNK):
                    copied += len(chunk)
                    service.check_size(copied)
                    target.write(chunk)
            cancelled = threading.Event()
            watcher = asyncio.create_task(cancel_when_gone(request, cancelled))
            try:
                answer = await run_in_threadpool(service.predict, path, name, cancelled)
            except Cancelled:
                log.info("stopped the work for %s: the client left", name)
                return Response(status_code=499)  # nobody is there to read it
            finally:
                watcher.cancel()
        segments = [{**s, "path": name} for s in answer["segments"]]
        if speaker:
            answer = service.adapt(answer, speaker)
        return {**answer, "path": name, "segments": segments}

    add_stream_route(app, service, stream_limits)
    api_routes = [r for r in app.routes if not isinstance(r, Mount)]

    app = mount_page(app, service, page_files, examples, sweep_seconds)
    app.add_middleware(MethodCheck, routes=api_routes)
    app.add_middleware(PagePaths, files=page_files, max_bytes=PAGE_JSON_BYTES)
    detail = f"upload too large: over the limit of {service.limits.max_megabytes:g} MB"
    app.add_middleware(
        BodyLimit, max_bytes=service.limits.max_bytes + MULTIPART_SLACK, detail=detail
    )
    app.add_middleware(
        UploadQuota,
        files=page_files,
        max_bytes=int(service.limits.disk_megabytes * 2**20),
        routes=UPLOAD_ROUTES,
        retry_seconds=sweep_seconds,
    )
    # Other sites' pages read no answer unless allowed; Gradio's own CORS rules, which let
    # any localhost origin read with credentials, stand aside when the app sets these.
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(stream_limits.allowed_origins),
        allow_methods=["GET", "POST"],
    )
    app.add_middleware(BrowserRules)
    app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    return app


def mount_page(
    app: FastAPI,
    service: EmotionService,
    page_files: PageFiles,
    examples: Sequence[str],
    sweep_seconds: float,
) -> FastAPI:
    """The Gradio page at `/`: its files in `page_files`, swept every `sweep_seconds` while the
    app runs, its malformed requests answered 400 instead of 500, Gradio's API for programs
    closed."""

    def closed() -> JSONResponse:
        """Gradio's API for programs calls the page's functions by name; here the page's one
        function is the page's alone, and programs use `POST /predict`. Its schema (which
        names Gradio's version) and its screen-recording converter, which the page does not
        use and which keeps a copy of every upload, are closed too."""
        return error(404, "not found: programs use POST /predict")

    for route in ("call/{rest:path}", "api/{rest:path}", "openapi.json", "info",
                  "process_recording"):  # fmt: skip
        app.add_api_route(
            f"/gradio_api/{route}", closed, methods=["GET", "POST"], include_in_schema=False
        )

    app = gr.mount_gradio_app(
        app,
        build_page(service, examples),
        path="",
        max_file_size=service.limits.max_bytes,
        ssr_mode=False,
        show_error=True,
        footer_links=[],  # Gradio's API page would list nothing: programs use /predict
    )
    page_files.keep_present()  # the example copies made while the page was built
    page_lifespan = app.router.lifespan_context  # starts the page's queue

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        async def sweep_forever() -> None:
            while True:
                await asyncio.sleep(sweep_seconds)
                await run_in_threadpool(page_files.sweep)

        async with page_lifespan(app) as state:
            sweeper = asyncio.create_task(sweep_forever())
            yield state
            sweeper.cancel()

    app.router.lifespan_context = lifespan
    page_app = next(r.app for r in app.routes if isinstance(r, Mount) and r.path == "")

    @page_app.exception_handler(TypeError)
    @page_app.exception_handler(ValueError)
    @page_app.exception_handler(LookupError)
    @page_app.exception_handler(AttributeError)
    async def malformed(_: Request, exc: Exception) -> JSONResponse:
        """Gradio's routes raise these on bodies of the wrong shape (an upload field that is no
        file, a call without its arguments, a function index the page does not have): the
        client's mistake, so 400, and no traceback."""
        log.warning("refused a malformed page request (%s: %s)", type(exc).__name__, exc)
        return error(400, "malformed request")

    return app
