"""The catalog: one item, and adding or replacing items (readable at once and whole)."""

from __future__ import annotations

from fastapi import APIRouter, Request

from shelfwise.service.deps import READS, WRITES, EngineDep, ItemId, check_batch
from shelfwise.service.schemas import ItemBatchIn, ItemIn, ItemOut, UpsertedOut

router = APIRouter(tags=["catalog"])


@router.get("/v1/items/{item_id}", response_model=ItemOut, **READS)
async def get_item(engine: EngineDep, item_id: ItemId) -> dict:
    return engine.item(item_id).as_dict()


@router.put("/v1/items/{item_id}", response_model=UpsertedOut, **WRITES)
def put_item(engine: EngineDep, item_id: ItemId, body: ItemIn) -> dict:
    return engine.upsert_items([body.record(item_id)])


@router.put("/v1/items", response_model=UpsertedOut, **WRITES)
def put_items(engine: EngineDep, request: Request, body: ItemBatchIn) -> dict:
    check_batch(request, len(body.items), "items")
    return engine.upsert_items([item.record(item.item_id) for item in body.items])
