"""Recommendations: a shopper's list, an anonymous session's, similar items and new arrivals.

Reads are a few milliseconds of CPU: they run on the event loop (a thread-pool hop cost more than it
gave on 2 cores); every option is bounded so that no answer costs more than about 50 ms at 100,000
items (benchmarks/results/request_cost.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse

from shelfwise.errors import ConfigError
from shelfwise.ranking import MAX_K
from shelfwise.service.deps import READS, Category, EngineDep, ItemId, K, Price, UserId, answer, filters
from shelfwise.service.schemas import AnonymousIn, RecommendationsOut
from shelfwise.store import EventRecord

router = APIRouter(tags=["recommend"])
LISTING = {**READS, "response_model": RecommendationsOut}


@router.get("/v1/users/{user_id}/recommendations", **LISTING)
async def get_user_recommendations(
    engine: EngineDep,
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
    events = engine.shopper_events(user_id)
    items = engine.recommend_events(
        events,
        k,
        filters=filters(category, in_stock, min_price, max_price),
        exclude_purchased=exclude_purchased,
        exclude_seen=exclude_seen,
        diversity=diversity,
        min_categories=min_categories,
        outside_share=outside_share,
    )
    return answer(engine, items, user_id=user_id, user_known=bool(events))


@router.post("/v1/recommendations", **LISTING)
def recommend_for_session(engine: EngineDep, body: AnonymousIn) -> JSONResponse:
    if (body.items is None) == (body.events is None):
        raise ConfigError("body: give exactly one of 'items' (item ids) or 'events'.")
    if body.items is not None:
        engine.positions_of(body.items, field_name="body.items")
        events = [EventRecord("", item_id, "view", float(i)) for i, item_id in enumerate(body.items)]
    else:
        session = body.events or []
        engine.positions_of([e.item_id for e in session], field_name="body.events")
        events = [EventRecord("", e.item_id, e.event_type, float(i)) for i, e in enumerate(session)]
    items = engine.recommend_events(
        events,
        body.k,
        filters=filters(body.category, body.in_stock, body.min_price, body.max_price),
        exclude_purchased=body.exclude_purchased,
        diversity=body.diversity,
        min_categories=body.min_categories,
        outside_share=body.outside_share,
    )
    return answer(engine, items)


@router.get("/v1/items/{item_id}/similar", **LISTING)
async def get_similar_items(
    engine: EngineDep,
    item_id: ItemId,
    k: K = 10,
    category: Category = None,
    in_stock: bool = True,
    min_price: Price = None,
    max_price: Price = None,
    cross_category: Annotated[bool, Query(description="only other categories: what goes with it")] = False,
) -> JSONResponse:
    chosen = filters(category, in_stock, min_price, max_price)
    items = engine.similar(item_id, k, filters=chosen, cross_category=cross_category)
    return answer(engine, items, item_id=item_id)


@router.get("/v1/users/{user_id}/new-arrivals", **LISTING)
async def get_new_arrivals(
    engine: EngineDep,
    user_id: UserId,
    k: K = 10,
    days: Annotated[float, Query(gt=0, le=3650)] = 30.0,
    category: Category = None,
    in_stock: bool = True,
) -> JSONResponse:
    events = engine.shopper_events(user_id)
    items = engine.new_arrivals(user_id, k, days=days, filters=filters(category, in_stock, None, None), events=events)
    return answer(engine, items, user_id=user_id, user_known=bool(events))
