"""`/stream`: a WebSocket that takes audio frames as someone speaks and answers events (JSON).

Protocol. The server opens with `{"type": "ready", ...}` (model, classes, rate, limits). A
client may then send one text message of options, `{"sample_rate": 48000, "format":
"float32", "adapt": "speaker"}` (default 16000 Hz, "pcm16": little-endian int16, "none"),
before any audio; binary frames
are mono samples; the text `{"type": "end"}` ends the stream: the rest is settled, `{"type":
"done"}` follows and the socket closes (1000). Events: `speech_start` / `speech_end` (`time`,
seconds from the stream's start) and `window` (`start`, `end`, `label`, `confidence`, one
probability per class), as `inference.py segments=true` writes them for a file; with
`"adapt": "speaker"` the stream is one speaker and windows also carry `unadapted_label` and
`adapted` (false during the warm-up, predict/adapt.py).

Each stream has its own detector state and recent audio (stream.py); the model is the
server's one Predictor: windows of all streams wait in one queue and go through it together.
Past a limit or on a malformed message the client gets an `error` event and the socket closes
with a code and a reason; the server keeps serving the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np
from fastapi import FastAPI, WebSocket
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocketDisconnect, WebSocketState

from speech_emotion_recognition.predict.adapt import RunningCentre
from speech_emotion_recognition.predict.stream import SpeechStream, events, windows_of
from speech_emotion_recognition.serving.service import EmotionService

log = logging.getLogger(__name__)
FORMATS = {"pcm16": np.dtype("<i2"), "float32": np.dtype("<f4")}
RATES = (8000, 96000)  # accepted client sample rates, resampled to the model's
CLOSE_REASON_BYTES = 123  # RFC 6455: a close frame's reason fits in 123 bytes


@dataclass(frozen=True)
class StreamLimits:
    """conf/serve.yaml `stream:`. A stream is a live microphone: after `grace_seconds` it must
    have sent at least `min_realtime` seconds of audio per second of wall-clock time, so a
    socket that trickles bytes gives its slot up, and no stream outlasts
    `grace_seconds + max_seconds / min_realtime` of wall-clock time."""

    max_streams: int = 16
    max_per_client: int = 4
    max_seconds: float = 3600.0
    max_frame_bytes: int = 256 * 1024
    idle_seconds: float = 30.0
    min_realtime: float = 0.5
    grace_seconds: float = 10.0
    allowed_origins: Sequence[str] = ()


class Refused(Exception):
    """Ends a stream: the close code and the reason the client reads."""

    def __init__(self, code: int, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


class WindowQueue:
    """Windows of every stream, through the model together: whatever waits when the model is
    free forms the next batch."""

    def __init__(self, service: EmotionService) -> None:
        self.service = service
        self._waiting: asyncio.Queue | None = None
        self._worker: asyncio.Task | None = None

    async def probabilities(self, windows: list[np.ndarray]) -> np.ndarray:
        if self._worker is None:
            self._waiting = asyncio.Queue()
            self._worker = asyncio.create_task(self._work())
        answer = asyncio.get_running_loop().create_future()
        await self._waiting.put((windows, answer))
        return await answer

    async def _work(self) -> None:
        while True:
            jobs = [await self._waiting.get()]
            while not self._waiting.empty():
                jobs.append(self._waiting.get_nowait())
            windows = [w for job, _ in jobs for w in job]
            try:
                found = await run_in_threadpool(self.service.window_probabilities, windows)
            except Exception as error:  # noqa: BLE001 - each stream hears of it and closes
                for _, answer in jobs:
                    if not answer.done():
                        answer.set_exception(error)
                continue
            parts = np.split(found, np.cumsum([len(job) for job, _ in jobs])[:-1])
            for (_, answer), part in zip(jobs, parts, strict=True):
                if not answer.done():  # a stream that left no longer waits
                    answer.set_result(part)


class Samples:
    """A stream's frames as float32 at the model's rate (soxr resamples across frames)."""

    def __init__(self, rate: int, format: str, model_rate: int, max_frame_bytes: int) -> None:
        self.dtype = FORMATS[format]
        self.max_frame_bytes = max_frame_bytes
        self.resampler = None
        if rate != model_rate:
            import soxr

            self.resampler = soxr.ResampleStream(rate, model_rate, 1, dtype="float32")

    def __call__(self, frame: bytes, last: bool = False) -> np.ndarray:
        if len(frame) > self.max_frame_bytes:
            raise Refused(1009, f"frame of {len(frame)} bytes: the limit is "
                                f"{self.max_frame_bytes}")  # fmt: skip
        if len(frame) % self.dtype.itemsize:
            raise Refused(1007, f"a frame holds whole {self.dtype.itemsize}-byte samples")
        samples = np.frombuffer(frame, self.dtype).astype(np.float32)
        if self.dtype.kind == "i":
            samples /= 32768.0
        elif not np.isfinite(samples).all():
            raise Refused(1007, "samples must be finite numbers")
        else:  # full scale, as files are decoded: one loud frame cannot silence the rest
            np.clip(samples, -1.0, 1.0, out=samples)
        if self.resampler is not None:
            samples = self.resampler.resample_chunk(samples, last=last)
        return samples


def read_text(text: str) -> dict:
    """A client's text message: options, or the end of its stream."""
    try:
        message = json.loads(text)
    except (ValueError, RecursionError):  # not JSON, or nested past the parser's depth
        message = None
    if not isinstance(message, dict) or message.get("type", "options") not in ("options", "end"):
        raise Refused(1007, 'text messages are JSON: options, or {"type": "end"}')
    return message


def options(chosen: dict, model_rate: int) -> tuple[int, str, str]:
    """(sample rate, format, adapt) from the client's options message."""
    try:
        assert set(chosen) <= {"type", "sample_rate", "format", "adapt"}
        rate = chosen.get("sample_rate", model_rate)
        fmt = chosen.get("format", "pcm16")
        adapt = chosen.get("adapt", "none")
        assert isinstance(rate, int) and RATES[0] <= rate <= RATES[1] and fmt in FORMATS
        assert adapt in ("none", "speaker")
    except (AssertionError, TypeError):  # TypeError: an unhashable value such as a list
        raise Refused(
            1007,
            'options: {"sample_rate": 8000-96000, "format": "pcm16"|"float32", '
            '"adapt": "none"|"speaker"} before audio',
        ) from None
    return rate, fmt, adapt


def same_site(socket: WebSocket, allowed: Sequence[str]) -> bool:
    """Browsers send an Origin; only the server's own pages (or allowed sites) may stream.
    Programs send none."""
    origin = socket.headers.get("origin")
    if origin is None:
        return True
    host = socket.headers.get("host", "")
    return urlparse(origin).netloc == host or origin in allowed


class LiveStreams:
    """The `/stream` route's state: the shared window queue and the streams open now."""

    def __init__(self, service: EmotionService, limits: StreamLimits) -> None:
        self.service = service
        self.limits = limits
        self.queue = WindowQueue(service)
        self.open = 0
        self.per_client: Counter[str] = Counter()

    def ready(self) -> dict:
        limits = self.limits
        return {
            "type": "ready",
            "model": self.service.model,
            "classes": self.service.predictor.class_names,
            "sample_rate": self.service.predictor.sample_rate,
            "format": "pcm16",
            "max_seconds": limits.max_seconds,
            "max_frame_bytes": limits.max_frame_bytes,
        }

    async def serve(self, socket: WebSocket) -> None:
        await socket.accept()
        try:
            if not same_site(socket, self.limits.allowed_origins):
                raise Refused(1008, "streams from other sites are not allowed")
            if self.open >= self.limits.max_streams:
                raise Refused(1013, f"{self.limits.max_streams} streams are open: try again later")
            client = socket.client.host if socket.client else ""
            if self.per_client[client] >= self.limits.max_per_client:
                raise Refused(1013, f"{self.limits.max_per_client} streams of this client are open")
            self.open += 1
            self.per_client[client] += 1
            try:
                await self._run(socket)
            finally:
                self.open -= 1
                self.per_client[client] -= 1
                if not self.per_client[client]:
                    del self.per_client[client]
        except Refused as refused:
            log.info("stream closed: %s", refused.reason)
            await self._close(socket, refused.code, refused.reason, error=True)
        except WebSocketDisconnect:
            pass  # the client left; its work is dropped
        except Exception:
            log.exception("stream failed")
            await self._close(socket, 1011, "internal error", error=True)

    async def _close(self, socket: WebSocket, code: int, reason: str, error: bool) -> None:
        if socket.client_state != WebSocketState.CONNECTED:
            return
        try:
            if error:
                await socket.send_json({"type": "error", "code": code, "message": reason})
            # a close frame's reason holds at most 123 bytes; the error event has it whole
            await socket.close(code, reason.encode()[:CLOSE_REASON_BYTES].decode(errors="ignore"))
        except (WebSocketDisconnect, RuntimeError):
            pass  # gone meanwhile

    async def _run(self, socket: WebSocket) -> None:
        model_rate = self.service.predictor.sample_rate
        stream = SpeechStream(self.service.speech, model_rate)
        await socket.send_json(self.ready())
        samples = Samples(model_rate, "pcm16", model_rate, self.limits.max_frame_bytes)
        centre: RunningCentre | None = None
        started = False
        limit = int(self.limits.max_seconds * model_rate)
        opened = time.monotonic()
        while True:
            try:
                message = await asyncio.wait_for(socket.receive(), self.limits.idle_seconds)
            except asyncio.TimeoutError:  # TimeoutError from Python 3.11 on
                raise Refused(1008, f"no audio for {self.limits.idle_seconds:g} s") from None
            if message["type"] == "websocket.disconnect":
                raise WebSocketDisconnect(message.get("code", 1000))
            self._keeps_pace(stream.received / model_rate, time.monotonic() - opened)
            if message.get("bytes") is not None:
                started = True
                audio = samples(message["bytes"])
                room = limit - stream.received
                await self._send(socket, await run_in_threadpool(stream.feed, audio[:room]), centre)
                if len(audio) > room:
                    await self._send(socket, await run_in_threadpool(stream.finish), centre)
                    raise Refused(1008, f"stream over the limit of {self.limits.max_seconds:g} s")
                continue
            text = read_text(message.get("text") or "")
            if text.get("type") == "end":
                rest = samples(b"", last=True)[: limit - stream.received]
                await self._send(socket, await run_in_threadpool(stream.feed, rest), centre)
                await self._send(socket, await run_in_threadpool(stream.finish), centre)
                await socket.send_json({"type": "done", "seconds": stream.received / model_rate})
                await socket.close(1000, "end of stream")
                return
            if started:
                raise Refused(1007, "options come before any audio")
            rate, fmt, adapt = options(text, model_rate)
            samples = Samples(rate, fmt, model_rate, self.limits.max_frame_bytes)
            centre = RunningCentre() if adapt == "speaker" else None
            await socket.send_json(
                {"type": "options", "sample_rate": rate, "format": fmt, "adapt": adapt}
            )

    def _keeps_pace(self, audio_seconds: float, wall_seconds: float) -> None:
        """Refused (1008) once past the grace, a stream behind `min_realtime`."""
        limits = self.limits
        if wall_seconds > limits.grace_seconds and audio_seconds < limits.min_realtime * (
            wall_seconds - limits.grace_seconds
        ):
            raise Refused(
                1008,
                f"{audio_seconds:.1f} s of audio in {wall_seconds:.0f} s: a stream sends at "
                f"least {limits.min_realtime:g} s of audio a second after its first "
                f"{limits.grace_seconds:g} s",
            )

    async def _send(
        self, socket: WebSocket, items: list, centre: RunningCentre | None = None
    ) -> None:
        audio = windows_of(items)
        found = await self.queue.probabilities(audio) if audio else None
        predictor = self.service.predictor
        for event in events(items, found, predictor.sample_rate, predictor.class_names, centre):
            await socket.send_json(event)


def add_stream_route(app: FastAPI, service: EmotionService, limits: StreamLimits) -> None:
    live = LiveStreams(service, limits)
    app.add_api_websocket_route("/stream", live.serve)
