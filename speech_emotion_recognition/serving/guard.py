"""ASGI layers in front of the whole app, the Gradio page's routes included: one rule each,
whatever route a request takes.

- `BodyLimit`: no request body over the limit is read, with or without a Content-Length.
- `UploadQuota`: the uploads kept on disk and those arriving share one quota of bytes.
- `PagePaths`: a JSON body may name a file only if the server created it (page_files.py).
- `MethodCheck`: a known route asked with the wrong method answers 405, not the page's 404.
- `BrowserRules`: headers that keep other sites from framing the page or sniffing its files.

Which hosts may be named in the Host header (DNS rebinding) and which other sites' pages may
read answers (CORS) are Starlette's own middleware, set up in api.py.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

from starlette.responses import JSONResponse
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from speech_emotion_recognition.serving.page_files import PageFiles

log = logging.getLogger(__name__)
FORMS = ("multipart/form-data", "application/x-www-form-urlencoded")  # uploads, not JSON


def error(status: int, detail: str, **headers: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers or None)


def header(scope: Scope, name: bytes) -> str:
    return next((v.decode("latin-1") for k, v in scope["headers"] if k == name), "")


async def run_counted(
    app: ASGIApp,
    scope: Scope,
    receive: Receive,
    send: Send,
    refuse: Callable[[int], JSONResponse | None],
) -> None:
    """Run `app` with each body chunk's size put to `refuse` as it arrives. An answer from it
    is sent (unless the app has begun its own) and the app then sees a client that left, so
    it stops reading, and nothing it writes afterwards reaches the client."""
    started, refused = False, False

    async def counted() -> Message:
        nonlocal refused
        if refused:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            answer = refuse(len(message.get("body", b"")))
            if answer is not None:
                refused = True
                if not started:
                    await answer(scope, receive, send)
                return {"type": "http.disconnect"}
        return message

    async def sent(message: Message) -> None:
        nonlocal started
        if not refused:
            started = started or message["type"] == "http.response.start"
            await send(message)

    try:
        await app(scope, counted, sent)
    except Exception:
        if not refused:
            raise  # the app's own failure; a refused body's aftermath is expected


class BodyLimit:
    """413 as soon as a body passes `max_bytes`: announced by Content-Length, or counted while
    it streams in (chunked uploads)."""

    def __init__(self, app: ASGIApp, max_bytes: int, detail: str) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.detail = detail

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = header(scope, b"content-length")
        if length.isdigit() and int(length) > self.max_bytes:
            return await error(413, self.detail)(scope, receive, send)
        received = 0

        def refuse(size: int) -> JSONResponse | None:
            nonlocal received
            received += size
            return error(413, self.detail) if received > self.max_bytes else None

        await run_counted(self.app, scope, receive, send, refuse)


class PagePaths:
    """Every string under a "path" key of a JSON body (any body but a form) must lead to a
    file in the page folder; otherwise 403, the same answer whether the path exists or not.
    Gradio's own check is off for a mounted app, and without it the page's endpoints read any
    file the server can (/etc/passwd) or hash endless ones (/dev/zero) on the event loop."""

    def __init__(self, app: ASGIApp, files: PageFiles, max_bytes: int) -> None:
        self.app = app
        self.files = files
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        if header(scope, b"content-type").split(";")[0].strip().lower() in FORMS:
            return await self.app(scope, receive, send)
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await error(413, "request body too large")(scope, receive, send)
        try:
            named = list(paths_in(json.loads(body or b"null")))
        except ValueError:  # not JSON: the route answers for itself
            named = []
        except RecursionError:  # nested deeper than the parser goes: no route could read it
            return await error(400, "malformed request: JSON nested too deeply")(
                scope, receive, send
            )
        refused = not all(self.files.allows(p) for p in named)
        if refused:
            log.warning("refused a request naming a file the server did not create")
            return await error(403, "only files uploaded to this server can be used")(
                scope, receive, send
            )
        await self.app(scope, replay(body, receive), send)


def paths_in(value: Any) -> Iterator[str]:
    """Every value under a "path" key, at any depth (Gradio's FileData and anything like it);
    a loop, not recursion, so no nesting depth can overflow the stack."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                if key == "path" and not isinstance(inner, dict | list):
                    yield str(inner)
                else:
                    pending.append(inner)
        elif isinstance(item, list):
            pending.extend(item)


def replay(body: bytes, receive: Receive) -> Callable[[], Awaitable[Message]]:
    """A receive that hands the app the body read here, then the client's later messages."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


class MethodCheck:
    """The page is mounted at `/`, so it matches every path; a request for one of the API's
    routes with a method that route does not take would reach the page and get its 404."""

    def __init__(self, app: ASGIApp, routes: list[Route]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            partial = [r for r in self.routes if r.matches(scope)[0] == Match.PARTIAL]
            if partial and not any(r.matches(scope)[0] == Match.FULL for r in self.routes):
                allow = sorted({m for r in partial for m in r.methods or ()})
                response = error(405, "method not allowed", allow=", ".join(allow))
                return await response(scope, receive, send)
        await self.app(scope, receive, send)


class UploadQuota:
    """The disk that uploads may take, shared by every client: the page's kept files plus the
    bodies of the requests in progress on `routes` (an upload to `/predict` sits in a temporary
    file until its answer is sent). An upload that would pass `max_bytes` gets 429 with a
    Retry-After of `retry_seconds` (when the sweep frees room), refused on its Content-Length
    or counted as it streams in, so no client can fill the disk."""

    USED_SECONDS = 1.0  # how long a count of the page folder's bytes is reused mid-upload

    def __init__(
        self,
        app: ASGIApp,
        files: PageFiles,
        max_bytes: int,
        routes: tuple[str, ...],
        retry_seconds: float,
    ) -> None:
        self.app = app
        self.files = files
        self.max_bytes = max_bytes
        self.routes = routes
        self.retry = str(int(retry_seconds))
        self.held = 0
        self._used = (-math.inf, 0)

    def full(self, adding: int) -> bool:
        counted_at, used = self._used
        if time.monotonic() - counted_at > self.USED_SECONDS:  # a folder walk, once a second
            used = self.files.used_bytes()
            self._used = (time.monotonic(), used)
        return used + self.held + adding > self.max_bytes

    def refusal(self) -> JSONResponse:
        megabytes = self.max_bytes / 2**20
        detail = f"the server's upload space ({megabytes:g} MB) is full: try again later"
        return error(429, detail, **{"retry-after": self.retry})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST" or scope["path"] not in self.routes:
            return await self.app(scope, receive, send)
        length = header(scope, b"content-length")
        if self.full(int(length) if length.isdigit() else 0):
            return await self.refusal()(scope, receive, send)
        held = 0

        def refuse(size: int) -> JSONResponse | None:
            nonlocal held
            if self.full(size):
                return self.refusal()
            held += size
            self.held += size
            return None

        try:
            await run_counted(self.app, scope, receive, send, refuse)
        finally:
            self.held -= held
            self._used = (-math.inf, 0)  # what it kept is on disk now: count again


class BrowserRules:
    """Every HTTP answer tells browsers not to guess content types and not to show the page
    inside another site's frame (clickjacking)."""

    HEADERS = [
        (b"x-content-type-options", b"nosniff"),
        (b"x-frame-options", b"DENY"),
        (b"content-security-policy", b"frame-ancestors 'none'"),
        (b"referrer-policy", b"no-referrer"),
    ]

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def with_rules(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name for name, _ in self.HEADERS}
                kept = [(k, v) for k, v in message.get("headers", []) if k.lower() not in names]
                message = {**message, "headers": kept + self.HEADERS}
            await send(message)

        await self.app(scope, receive, with_rules)
