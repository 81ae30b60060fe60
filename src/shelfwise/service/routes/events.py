"""Shopper events: one or a batch, each stored once however often it is sent (with an id)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Header, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import AfterValidator, Discriminator, Tag

from shelfwise.engine import Engine
from shelfwise.errors import WriterBusy
from shelfwise.service.deps import EVENTS, EngineDep, MetricsDep, check_batch
from shelfwise.service.schemas import ID_PATTERN, EventBatchIn, EventIn, RecordedOut, no_id_controls
from shelfwise.store import EventRecord

router = APIRouter(tags=["events"])
#: Tags of the one-event-or-batch body: pydantic puts them in an error's location, and the app's
#: error handler leaves them out of the field path a client knows.
BODY_TAGS = ("one event", "a batch")
#: Requests of at most this many events are stored on the event loop (`_stored_on_the_loop`).
INLINE_EVENTS = 16


def _body_kind(value: Any) -> str:
    return BODY_TAGS[1] if isinstance(value, dict) and "events" in value else BODY_TAGS[0]


#: The body of ``POST /v1/events``: one event, or ``{"events": [...]}``; validated once, here.
EventsBody = Annotated[
    Annotated[EventIn, Tag(BODY_TAGS[0])] | Annotated[EventBatchIn, Tag(BODY_TAGS[1])], Discriminator(_body_kind)
]
IdempotencyKey = Annotated[
    str | None,
    Header(
        min_length=1,
        max_length=200,
        json_schema_extra={"pattern": ID_PATTERN},
        description="Makes a retry safe: the events of a request with this key are stored once (the "
        "i-th event of a batch gets the id KEY:i unless it has its own event_id).",
    ),
    AfterValidator(no_id_controls),
]


def _stored_on_the_loop(engine: Engine, records: list[EventRecord]) -> int | None:
    """Store a few events at once, on the event loop, where the store is in this process (SQLite):
    about a millisecond, where a hop to the thread pool cost more than that in waits for the GIL
    beside the answers. None (nothing stored) for a batch, for a store that is a round trip away
    (PostgreSQL: its processes need the same cores, and the answers would wait for them), or while
    another writer holds a lock (a catalog write encoding its items, a deletion): the caller then
    stores them off the loop."""
    if len(records) > INLINE_EVENTS or not engine.store.in_process:
        return None
    try:
        return engine.record_events(records, wait=False)
    except WriterBusy:
        return None


@router.post("/v1/events", status_code=201, response_model=RecordedOut, **EVENTS)
async def post_events(
    engine: EngineDep,
    metrics: MetricsDep,
    request: Request,
    body: Annotated[EventsBody, Body(description="One event, or a batch: {'events': [event, ...]}.")],
    idempotency_key: IdempotencyKey = None,
) -> dict:
    events = body.events if isinstance(body, EventBatchIn) else [body]
    check_batch(request, len(events), "events")
    if idempotency_key is None:
        records = [e.record() for e in events]
    elif isinstance(body, EventIn):
        records = [body.record(idempotency_key)]
    else:
        records = [e.record(f"{idempotency_key}:{row}") for row, e in enumerate(events)]
    count = _stored_on_the_loop(engine, records)
    if count is None:
        count = await run_in_threadpool(engine.record_events, records)
    metrics.events.inc(count)
    return {"recorded": count, "duplicates": len(records) - count}
