"""What every route shares: the engine and the key checks as `Annotated` dependencies, the path and
query parameters used by several routes, the error answers for the OpenAPI document, and shaping a
list answer. The app (`create_app`) puts the engine, the key checks and the metrics in ``app.state``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import AfterValidator

from shelfwise.engine import Engine
from shelfwise.errors import ConfigError
from shelfwise.ranking import MAX_K
from shelfwise.retrieval import Filters
from shelfwise.service.metrics import Metrics
from shelfwise.service.schemas import (
    ID_PATTERN,
    LINE_PATTERN,
    MAX_PRICE,
    ErrorOut,
    no_id_controls,
    no_line_controls,
)


async def _engine(request: Request) -> Engine:
    return request.app.state.engine


async def _metrics(request: Request) -> Metrics:
    return request.app.state.metrics


async def read_auth(request: Request) -> None:
    """The key, where reads need it (``SHELFWISE_READ_AUTH``)."""
    request.app.state.read_auth(request)


async def write_auth(request: Request) -> None:
    """The key: writes and admin routes always need it."""
    request.app.state.write_auth(request)


async def event_auth(request: Request) -> None:
    """The key, or the events key (``SHELFWISE_EVENTS_KEY``): posting events needs one of them."""
    request.app.state.event_auth(request)


EngineDep = Annotated[Engine, Depends(_engine)]
MetricsDep = Annotated[Metrics, Depends(_metrics)]

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
_ERROR = {"model": ErrorOut}
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
#: Keyword arguments of a route that reads, and of one that writes (or administers).
READS: dict[str, Any] = {"dependencies": [Depends(read_auth)], "responses": READ_ERRORS}
WRITES: dict[str, Any] = {"dependencies": [Depends(write_auth)], "responses": WRITE_ERRORS}
EVENTS: dict[str, Any] = {"dependencies": [Depends(event_auth)], "responses": WRITE_ERRORS}


def check_batch(request: Request, count: int, field: str) -> None:
    """A batch body holds at most the setting ``max_batch`` entries (`ConfigError` naming `field`)."""
    most = request.app.state.max_batch
    if count > most:
        raise ConfigError(f"body.{field}: at most {most} {field} per request, not {count}.")


def filters(category: str | None, in_stock: bool, min_price: float | None, max_price: float | None) -> Filters:
    return Filters(in_stock=in_stock, category=category, min_price=min_price, max_price=max_price)


def answer(engine: Engine, items: list, **extra: object) -> JSONResponse:
    """A list answer (`RecommendationsOut`), ready: FastAPI's generic encoder would walk it again."""
    body = {**extra, "model_version": engine.model_version, "items": [r.as_dict() for r in items]}
    return JSONResponse(body)
