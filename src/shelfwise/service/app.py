"""`create_app`: the FastAPI app over an `Engine`, versioned under ``/v1``; the routes live in
`shelfwise.service.routes`, one router per resource.

Errors come from one place: every `ShelfwiseError` maps to a status code in `_STATUS`, request
validation errors name the field (``body.events[3].item_id``), and bodies above the size limit get
413 before they are read whole. Every answer, errors included, is described in the OpenAPI
document. A fault nobody foresaw is logged and answered with a 500 in the same error shape, and the
kept-alive connection stays usable (`_App`).
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from shelfwise import __version__
from shelfwise.engine import Engine
from shelfwise.errors import (
    ConfigError,
    DataFormatError,
    NotFittedError,
    ShelfwiseError,
    UnknownIdError,
    ValidationError,
)
from shelfwise.service.auth import KeyCheck, check_key, check_scoped_keys
from shelfwise.service.docs import add_offline_docs
from shelfwise.service.metrics import Metrics
from shelfwise.service.routes import ROUTERS
from shelfwise.service.routes.events import BODY_TAGS
from shelfwise.service.routes.ops import STATIC
from shelfwise.settings import Settings, load_settings

logger = logging.getLogger(__name__)

_STATUS: tuple[tuple[type[ShelfwiseError], int, str], ...] = (
    (UnknownIdError, 404, "not_found"),
    (ConfigError, 422, "invalid_request"),
    (ValidationError, 422, "invalid_request"),
    (DataFormatError, 422, "invalid_request"),
    (NotFittedError, 503, "not_ready"),
    (ShelfwiseError, 400, "bad_request"),
)


def _field(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part not in BODY_TAGS:
            text += ("." if text else "") + str(part)
    return text


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


def _fault_answer() -> JSONResponse:
    return _error(500, "internal_error", "internal error; it has been logged")


class _App(FastAPI):
    """FastAPI with a last safety net: an exception that escapes every handler is logged and
    answered with a 500 in the usual error shape, and is not passed on to the server, which would
    drop the kept-alive connection after the answer (uvicorn closes a connection whose app raised)."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        started = finished = False

        async def sending(message) -> None:
            nonlocal started, finished
            if message["type"] == "http.response.start":
                started = True
            elif message["type"] == "http.response.body" and not message.get("more_body", False):
                finished = True
            await send(message)

        try:
            await super().__call__(scope, receive, sending)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                await _fault_answer()(scope, receive, send)
            elif not finished:
                raise  # half an answer went out: only closing the connection tells the client


class _BodyLimit:
    """Pure ASGI middleware: 413 for a body over `limit` bytes (by header, or while it streams)."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        message = f"request body is over the limit of {self.limit} bytes"
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await _error(413, "too_large", message)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            event = await receive()
            if event["type"] == "http.request":
                seen += len(event.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(status_code=413, detail=message)
            return event

        return await self.app(scope, counted, send)


class _Measure:
    """Pure ASGI middleware: count and time every request by route template and status."""

    def __init__(self, app, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        status = 500

        async def sending(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            template = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], template, str(status)).inc()
            self.metrics.latency.labels(scope["method"], template).observe(time.perf_counter() - started)


def create_app(engine: Engine, settings: Settings | None = None, *, api_key: str | None = None) -> FastAPI:
    """The app serving `engine`. The key comes from `api_key` or the settings (see `check_key`)."""
    settings = settings or load_settings()
    key = check_key(api_key if api_key is not None else settings.api_key, settings.environment)
    metrics = Metrics()
    metrics.set_model(engine.model.name, engine.model_version)

    app = _App(
        title="shelfwise",
        version=__version__,
        description="Recommendations for online shops: a language model for products, behaviour for shoppers.",
        # each operation's id is its function's name (get_user_recommendations, post_events, ...):
        # what generated clients name their functions after
        generate_unique_id_function=lambda route: route.name,
        docs_url=None,  # served offline instead (`docs.add_offline_docs`)
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.api_key = key
    app.state.metrics = metrics
    scoped = check_scoped_keys(
        key, {"events_key": settings.events_key, "read_key": settings.read_key}, settings.environment
    )
    app.state.events_key = scoped.get("events_key")
    if settings.currency and not re.fullmatch(r"[A-Z]{3}", settings.currency):
        raise ConfigError(f"SHELFWISE_CURRENCY must be an ISO 4217 code such as GBP or EUR, not {settings.currency!r}.")
    app.state.currency = settings.currency or None
    app.state.write_auth = KeyCheck(key)
    app.state.event_auth = KeyCheck(key, scoped.get("events_key", ""))
    app.state.read_auth = KeyCheck(key, scoped.get("read_key", ""), required=settings.read_auth)
    app.state.max_batch = settings.max_batch
    app.state.reload_lock = threading.Lock()
    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes)

    @app.exception_handler(ShelfwiseError)
    async def _shelfwise_error(_request: Request, exc: ShelfwiseError) -> JSONResponse:
        for kind, status, code in _STATUS:
            if isinstance(exc, kind):
                return _error(status, code, str(exc))
        return _error(400, "bad_request", str(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_request: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"field": _field(e.get("loc", ())), "message": e.get("msg", "invalid")} for e in exc.errors()]
        message = "; ".join(f"{d['field']}: {d['message']}" for d in details[:20])
        return JSONResponse({"error": "invalid_request", "message": message, "detail": details}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {401: "unauthorized", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}
        code = codes.get(exc.status_code, "error")
        return _error(exc.status_code, code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(Exception)
    async def _fault(_request: Request, _exc: Exception) -> JSONResponse:
        return _fault_answer()

    app.add_middleware(_Measure, metrics=metrics)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    add_offline_docs(app)
    for router in ROUTERS:
        app.include_router(router)
    return app
