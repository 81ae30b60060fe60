"""`create_app`: the FastAPI app over an `Engine`, versioned under ``/v1``.

Errors come from one place: every `ShelfwiseError` maps to a status code in `_STATUS`, request
validation errors name the field (``body.events[3].item_id``), and bodies above the size limit get
413 before they are read whole. Every answer, errors included, is described in the OpenAPI
document. A fault nobody foresaw is logged and answered with a 500 in the same error shape, and the
kept-alive connection stays usable (`_App`).
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, HTTPException, Path, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import AfterValidator, Discriminator, Tag
from starlette.exceptions import HTTPException as StarletteHTTPException

from shelfwise import __version__
from shelfwise.engine import Engine
from shelfwise.engine.engine import SEARCH_LEXICAL_WEIGHT, SEARCH_PERSONAL_WEIGHT
from shelfwise.errors import (
    ConfigError,
    DataFormatError,
    NotFittedError,
    ShelfwiseError,
    UnknownIdError,
    ValidationError,
)
from shelfwise.retrieval import Filters
from shelfwise.service import schemas as out
from shelfwise.service.auth import KeyCheck, check_key
from shelfwise.service.metrics import CONTENT_TYPE, Metrics
from shelfwise.service.schemas import (
    ID_PATTERN,
    LINE_PATTERN,
    MAX_K,
    MAX_OFFSET,
    MAX_PAGE,
    MAX_PRICE,
    MAX_SEGMENT_ID,
    AnonymousIn,
    EventBatchIn,
    EventIn,
    ItemBatchIn,
    ItemIn,
    ReloadIn,
    SegmentsIn,
    no_id_controls,
    no_line_controls,
)
from shelfwise.settings import Settings, load_settings
from shelfwise.store import EventRecord

logger = logging.getLogger(__name__)

#: The web page: plain HTML, CSS and JavaScript over the API (no build step).
STATIC = FilePath(__file__).parent / "static"

_STATUS: tuple[tuple[type[ShelfwiseError], int, str], ...] = (
    (UnknownIdError, 404, "not_found"),
    (ConfigError, 422, "invalid_request"),
    (ValidationError, 422, "invalid_request"),
    (DataFormatError, 422, "invalid_request"),
    (NotFittedError, 503, "not_ready"),
    (ShelfwiseError, 400, "bad_request"),
)
UserId = Annotated[
    str,
    Path(min_length=1, max_length=256, json_schema_extra={"pattern": ID_PATTERN}, description="The shopper's id"),
    AfterValidator(no_id_controls),
]
ItemId = Annotated[
    str,
    Path(min_length=1, max_length=256, json_schema_extra={"pattern": ID_PATTERN}, description="The item's id"),
    AfterValidator(no_id_controls),
]
K = Annotated[int, Query(ge=1, le=MAX_K, description=f"how many items (at most {MAX_K})")]
Category = Annotated[
    str | None,
    Query(min_length=1, max_length=512, json_schema_extra={"pattern": LINE_PATTERN}),
    AfterValidator(no_line_controls),
]
Price = Annotated[float | None, Query(ge=0, le=MAX_PRICE, allow_inf_nan=False)]
#: The error answers each kind of route can give, for the OpenAPI document.
_ERROR = {"model": out.ErrorOut}
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {**_ERROR, "description": "a request the service cannot answer (an empty search)"},
    401: {**_ERROR, "description": "no or a wrong API key (where reads need one)"},
    404: {**_ERROR, "description": "an unknown shopper, item or segment"},
    422: {**_ERROR, "description": "a parameter out of range or malformed; `message` and `detail` name it"},
    500: {**_ERROR, "description": "a fault of the service (logged)"},
    503: {**_ERROR, "description": "not ready"},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    401: {**_ERROR, "description": "no or a wrong API key"},
    413: {**_ERROR, "description": "the body is over the size limit"},
}


#: Tags of the one-event-or-batch body: pydantic puts them in an error's location; the field path
#: a client knows has none.
_BODY_TAGS = ("one event", "a batch")


def _field(loc: tuple[Any, ...]) -> str:
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part not in _BODY_TAGS:
            text += ("." if text else "") + str(part)
    return text


def _error(status: int, code: str, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": code, "message": message}, status_code=status, headers=headers)


class _App(FastAPI):
    """FastAPI with a last safety net: an exception that escapes every handler is logged and
    answered with a 500 in the usual error shape, and is not passed on to the server, which would
    drop the kept-alive connection after the answer (uvicorn closes a connection whose app raised)."""

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await super().__call__(scope, receive, send)
        started = False

        async def sending(message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await super().__call__(scope, receive, sending)
        except Exception:
            logger.exception("unhandled error on %s %s", scope.get("method"), scope.get("path"))
            if not started:
                message = "internal error; it has been logged"
                await _error(500, "internal_error", message)(scope, receive, send)


class _BodyLimit:
    """Pure ASGI middleware: 413 for a body over `limit` bytes (by header, or while it streams)."""

    def __init__(self, app, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        too_large = {"error": "too_large", "message": f"request body is over the limit of {self.limit} bytes"}
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await JSONResponse(too_large, status_code=413)(scope, receive, send)
        seen = 0

        async def counted():
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise HTTPException(status_code=413, detail=too_large["message"])
            return message

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
    write_auth = KeyCheck(key)
    read_auth = KeyCheck(key, required=settings.read_auth)
    metrics = Metrics()
    metrics.set_model(engine.model.name, engine.model_version)
    reload_lock = threading.Lock()
    max_batch = settings.max_batch

    app = _App(
        title="shelfwise",
        version=__version__,
        description="Recommendations for online shops: a language model for products, behaviour for shoppers.",
    )
    app.state.engine = engine
    app.state.api_key = key
    app.state.metrics = metrics
    app.add_middleware(_BodyLimit, limit=settings.max_body_bytes)

    # ------------------------------------------------------------------------------- errors
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
        return _error(
            exc.status_code, codes.get(exc.status_code, "error"), str(exc.detail), getattr(exc, "headers", None)
        )

    @app.exception_handler(Exception)
    async def _fault(_request: Request, _exc: Exception) -> JSONResponse:
        return _error(500, "internal_error", "internal error; it has been logged")

    app.add_middleware(_Measure, metrics=metrics)

    def _filters(category, in_stock, min_price, max_price) -> Filters:
        return Filters(in_stock=in_stock, category=category, min_price=min_price, max_price=max_price)

    def _answer(items, **extra) -> JSONResponse:
        # a ready response: FastAPI's generic encoder would walk the plain dicts again
        body = {**extra, "model_version": app.state.engine.model_version, "items": [r.as_dict() for r in items]}
        return JSONResponse(body)

    reads = {"dependencies": [Depends(read_auth)], "responses": READ_ERRORS}
    writes = {"dependencies": [Depends(write_auth)], "responses": WRITE_ERRORS}
    listing = {**reads, "response_model": out.RecommendationsOut}

    # ------------------------------------------------------------------------------- the web page
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.get("/", include_in_schema=False)
    def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    # ------------------------------------------------------------------------------- ops
    # Reads are a few milliseconds of CPU: they run on the event loop (a thread-pool hop cost more
    # than it gave on 2 cores). Writes wait for the disk (fsync), so they run in the thread pool.
    @app.get(
        "/healthz",
        tags=["ops"],
        response_model=out.HealthOut,
        responses={503: {"model": out.HealthOut, "description": "the store does not answer"}},
    )
    def healthz() -> JSONResponse:
        """Whether the service is ready (its store answers). Details: `/v1/admin/status`."""
        try:
            app.state.engine.store.user_count()
        except Exception:
            logger.exception("health check: the store does not answer")
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    @app.get("/v1/admin/status", tags=["ops"], response_model=out.StatusOut, **writes)
    def status() -> dict:
        """The model, its folder, the catalog and the store this replica serves (needs the key)."""
        current = app.state.engine
        current.store.user_count()  # the store answers
        return {"status": "ok", **current.stats()}

    @app.get("/v1/model", tags=["ops"], response_model=out.ModelOut, **reads)
    async def model_info() -> dict:
        """The model being served and the size of the catalog."""
        stats = app.state.engine.stats()
        return {name: stats[name] for name in ("model", "model_version", "items", "items_known_to_model")}

    @app.get(
        "/metrics",
        tags=["ops"],
        response_class=Response,
        responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}}},
    )
    def prometheus() -> Response:
        """Prometheus metrics (text format): requests, latencies, events, items, model version."""
        metrics.items.set(len(app.state.engine.catalog))
        return Response(metrics.render(), media_type=CONTENT_TYPE)

    # ------------------------------------------------------------------------------- reads
    @app.get("/v1/users/{user_id}/recommendations", tags=["recommend"], **listing)
    async def user_recommendations(
        user_id: UserId,
        k: K = 10,
        category: Category = None,
        exclude_purchased: bool = True,
        exclude_seen: bool = False,
        in_stock: bool = True,
        min_price: Price = None,
        max_price: Price = None,
        diversity: Annotated[float, Query(ge=0, le=1)] = 0.0,
        min_categories: Annotated[int, Query(ge=0, le=MAX_K, description="span at least this many categories")] = 0,
        outside_share: Annotated[
            float, Query(ge=0, le=1, description="at least this share outside the shopper's usual categories")
        ] = 0.0,
    ) -> JSONResponse:
        items = app.state.engine.recommend(
            user_id,
            k,
            filters=_filters(category, in_stock, min_price, max_price),
            exclude_purchased=exclude_purchased,
            exclude_seen=exclude_seen,
            diversity=diversity,
            min_categories=min_categories,
            outside_share=outside_share,
        )
        return _answer(items, user_id=user_id)

    @app.post("/v1/recommendations", tags=["recommend"], **listing)
    def anonymous_recommendations(body: AnonymousIn) -> JSONResponse:
        if (body.items is None) == (body.events is None):
            raise ConfigError("body: give exactly one of 'items' (item ids) or 'events'.")
        current = app.state.engine
        options = {
            "filters": _filters(body.category, body.in_stock, body.min_price, body.max_price),
            "exclude_purchased": body.exclude_purchased,
            "diversity": body.diversity,
            "min_categories": body.min_categories,
            "outside_share": body.outside_share,
        }
        if body.items is not None:
            return _answer(current.recommend_items(body.items, body.k, **options))
        current.positions_of([e.item_id for e in body.events], field_name="body.events")
        events = [EventRecord("", e.item_id, e.event_type, float(i)) for i, e in enumerate(body.events)]
        return _answer(current.recommend_events(events, body.k, **options))

    @app.get("/v1/items/{item_id}/similar", tags=["recommend"], **listing)
    async def similar_items(
        item_id: ItemId,
        k: K = 10,
        category: Category = None,
        in_stock: bool = True,
        min_price: Price = None,
        max_price: Price = None,
        cross_category: Annotated[bool, Query(description="only other categories: what goes with it")] = False,
    ) -> JSONResponse:
        filters = _filters(category, in_stock, min_price, max_price)
        items = app.state.engine.similar(item_id, k, filters=filters, cross_category=cross_category)
        return _answer(items, item_id=item_id)

    @app.get("/v1/users/{user_id}/new-arrivals", tags=["recommend"], **listing)
    async def new_arrivals(
        user_id: UserId,
        k: K = 10,
        days: Annotated[float, Query(gt=0, le=3650)] = 30.0,
        category: Category = None,
        in_stock: bool = True,
    ) -> JSONResponse:
        items = app.state.engine.new_arrivals(user_id, k, days=days, filters=_filters(category, in_stock, None, None))
        return _answer(items, user_id=user_id)

    @app.get("/v1/search", tags=["search"], **listing)
    async def search(
        q: Annotated[
            str,
            Query(max_length=512, json_schema_extra={"pattern": LINE_PATTERN}, description="The words to look for."),
            AfterValidator(no_line_controls),
        ] = "",
        user_id: Annotated[
            str | None,
            Query(min_length=1, max_length=256, json_schema_extra={"pattern": ID_PATTERN}),
            AfterValidator(no_id_controls),
        ] = None,
        k: K = 10,
        personal_weight: Annotated[float, Query(ge=0, le=1)] = SEARCH_PERSONAL_WEIGHT,
        lexical_weight: Annotated[float, Query(ge=0, le=1)] = SEARCH_LEXICAL_WEIGHT,
        category: Category = None,
        in_stock: bool = False,
        min_price: Price = None,
        max_price: Price = None,
    ) -> JSONResponse:
        """Hybrid search. Only items that match the words come back (an empty list when none does);
        a shopper's taste re-orders the matching items."""
        items = app.state.engine.search(
            q,
            k,
            user_id=user_id,
            personal_weight=personal_weight,
            lexical_weight=lexical_weight,
            filters=_filters(category, in_stock, min_price, max_price),
        )
        return _answer(items, query=q, user_id=user_id)

    @app.get("/v1/users", tags=["shoppers"], response_model=out.UsersOut, **reads)
    async def list_users(
        prefix: Annotated[
            str, Query(max_length=256, json_schema_extra={"pattern": LINE_PATTERN}), AfterValidator(no_line_controls)
        ] = "",
        limit: Annotated[int, Query(ge=1, le=1000)] = 20,
    ) -> dict:
        return {"users": [u.as_dict() for u in app.state.engine.users(prefix, limit)]}

    @app.get("/v1/users/{user_id}/profile", tags=["shoppers"], response_model=out.ProfileOut, **reads)
    def user_profile(
        user_id: UserId,
        keywords: Annotated[int, Query(ge=1, le=100)] = 10,
        top: Annotated[int, Query(ge=1, le=50)] = 5,
    ) -> dict:
        # in the thread pool: the first call encodes the catalog's keywords
        return app.state.engine.profile(user_id, keywords=keywords, top=top)

    @app.get("/v1/segments", tags=["shoppers"], response_model=out.SegmentsOut, **reads)
    async def list_segments() -> dict:
        return {"segments": app.state.engine.segments()}

    @app.get("/v1/segments/{segment_id}", tags=["shoppers"], response_model=out.SegmentPageOut, **reads)
    async def get_segment(
        segment_id: Annotated[int, Path(ge=0, le=MAX_SEGMENT_ID)],
        limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
        offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
    ) -> dict:
        return app.state.engine.segment(segment_id, limit=limit, offset=offset)

    @app.get("/v1/items/{item_id}", tags=["catalog"], response_model=out.ItemOut, **reads)
    async def get_item(item_id: ItemId) -> dict:
        return app.state.engine.item(item_id).as_dict()

    # ------------------------------------------------------------------------------- writes
    @app.post("/v1/events", tags=["events"], status_code=201, response_model=out.RecordedOut, **writes)
    def post_events(
        body: Annotated[EventsBody, Body(description="One event, or a batch: {'events': [event, ...]}.")],
        idempotency_key: Annotated[
            str | None,
            Header(
                min_length=1,
                max_length=200,
                json_schema_extra={"pattern": ID_PATTERN},
                description="Makes a retry safe: the events of a request with this key are stored once (the "
                "i-th event of a batch gets the id KEY:i unless it has its own event_id).",
            ),
            AfterValidator(no_id_controls),
        ] = None,
    ) -> dict:
        events = body.events if isinstance(body, EventBatchIn) else [body]
        if len(events) > max_batch:
            raise ConfigError(f"body.events: at most {max_batch} events per request, not {len(events)}.")
        if idempotency_key is None:
            records = [e.record() for e in events]
        elif isinstance(body, EventBatchIn):
            records = [e.record(f"{idempotency_key}:{row}") for row, e in enumerate(events)]
        else:
            records = [body.record(idempotency_key)]
        count = app.state.engine.record_events(records)
        metrics.events.inc(count)
        return {"recorded": count, "duplicates": len(records) - count}

    @app.put("/v1/items/{item_id}", tags=["catalog"], response_model=out.UpsertedOut, **writes)
    def put_item(item_id: ItemId, body: ItemIn) -> dict:
        return app.state.engine.upsert_items([body.record(item_id)])

    @app.put("/v1/items", tags=["catalog"], response_model=out.UpsertedOut, **writes)
    def put_items(body: ItemBatchIn) -> dict:
        if len(body.items) > max_batch:
            raise ConfigError(f"body.items: at most {max_batch} items per request, not {len(body.items)}.")
        return app.state.engine.upsert_items([item.record(item.item_id) for item in body.items])

    @app.delete("/v1/users/{user_id}", tags=["privacy"], response_model=out.DeletedOut, **writes)
    def delete_user(user_id: UserId) -> dict:
        return app.state.engine.delete_user(user_id)

    @app.post("/v1/admin/segments", tags=["shoppers"], response_model=out.RecomputedSegmentsOut, **writes)
    def recompute_segments(body: SegmentsIn | None = None) -> dict:
        result = app.state.engine.compute_segments(body.k if body else None)
        return {"criterion": result.criterion, "segments": app.state.engine.segments()}

    @app.post("/v1/admin/reload", tags=["ops"], response_model=out.ReloadedOut, **writes)
    def reload_model(body: ReloadIn | None = None) -> dict:
        with reload_lock:
            version = app.state.engine.reload(body.model_dir if body else None)
        metrics.reloads.inc()
        metrics.set_model(app.state.engine.model.name, version)
        return {"model": app.state.engine.model.name, "model_version": version}

    return app


def _body_kind(value: Any) -> str:
    return "a batch" if isinstance(value, dict) and "events" in value else "one event"


#: The body of ``POST /v1/events``: one event, or ``{"events": [...]}``; validated once, here.
EventsBody = Annotated[
    Annotated[EventIn, Tag("one event")] | Annotated[EventBatchIn, Tag("a batch")], Discriminator(_body_kind)
]
