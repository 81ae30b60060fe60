"""Shoppers: the list, a profile, segments, and a shopper's deletion (privacy)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from pydantic import AfterValidator

from shelfwise.service.deps import READS, WRITES, EngineDep, UserId
from shelfwise.service.schemas import (
    LINE_PATTERN,
    MAX_OFFSET,
    MAX_PAGE,
    MAX_SEGMENT_ID,
    DeletedOut,
    ProfileOut,
    RecomputedSegmentsOut,
    SegmentPageOut,
    SegmentsIn,
    SegmentsOut,
    UsersOut,
    no_line_controls,
)

router = APIRouter(tags=["shoppers"])


@router.get("/v1/users", response_model=UsersOut, **READS)
async def list_users(
    engine: EngineDep,
    prefix: Annotated[
        str, Query(max_length=256, json_schema_extra={"pattern": LINE_PATTERN}), AfterValidator(no_line_controls)
    ] = "",
    limit: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> dict:
    return {"users": [u.as_dict() for u in engine.users(prefix, limit)]}


@router.get("/v1/users/{user_id}/profile", response_model=ProfileOut, **READS)
def get_user_profile(
    engine: EngineDep,
    user_id: UserId,
    keywords: Annotated[int, Query(ge=1, le=100)] = 10,
    top: Annotated[int, Query(ge=1, le=50)] = 5,
) -> dict:
    # in the thread pool: the first call encodes the catalog's keywords
    return engine.profile(user_id, keywords=keywords, top=top)


@router.get("/v1/segments", response_model=SegmentsOut, **READS)
async def list_segments(engine: EngineDep) -> dict:
    return {"segments": engine.segments()}


@router.get("/v1/segments/{segment_id}", response_model=SegmentPageOut, **READS)
async def get_segment(
    engine: EngineDep,
    segment_id: Annotated[int, Path(ge=0, le=MAX_SEGMENT_ID)],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> dict:
    return engine.segment(segment_id, limit=limit, offset=offset)


@router.post("/v1/admin/segments", response_model=RecomputedSegmentsOut, **WRITES)
def recompute_segments(engine: EngineDep, body: SegmentsIn | None = None) -> dict:
    result = engine.compute_segments(body.k if body else None)
    return {"criterion": result.criterion, "segments": engine.segments()}


@router.delete("/v1/users/{user_id}", tags=["privacy"], response_model=DeletedOut, **WRITES)
def delete_user(engine: EngineDep, user_id: UserId) -> dict:
    return engine.delete_user(user_id)
