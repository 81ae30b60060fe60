"""Personalised semantic search over the catalog."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from pydantic import AfterValidator

from shelfwise.engine.search import SEARCH_LEXICAL_WEIGHT, SEARCH_PERSONAL_WEIGHT
from shelfwise.service.deps import READS, Category, EngineDep, K, Price, answer, filters
from shelfwise.service.schemas import ID_PATTERN, LINE_PATTERN, RecommendationsOut, no_id_controls, no_line_controls

router = APIRouter(tags=["search"])


@router.get("/v1/search", response_model=RecommendationsOut, **READS)
async def search(
    engine: EngineDep,
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
    events = engine.shopper_events(user_id)
    items = engine.search(
        q,
        k,
        user_id=user_id,
        personal_weight=personal_weight,
        lexical_weight=lexical_weight,
        filters=filters(category, in_stock, min_price, max_price),
        events=events,
    )
    known = None if user_id is None else bool(events)
    return answer(engine, items, query=q, user_id=user_id, user_known=known)
