"""Operations: readiness, status, the model served, metrics, hot reload, and the web page."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, JSONResponse, Response

from shelfwise.service.deps import READS, WRITES, EngineDep, MetricsDep
from shelfwise.service.metrics import CONTENT_TYPE
from shelfwise.service.schemas import HealthOut, ModelOut, PageConfigOut, ReadyOut, ReloadedOut, ReloadIn, StatusOut

logger = logging.getLogger(__name__)
router = APIRouter(tags=["ops"])
#: The web page: plain HTML, CSS and JavaScript over the API (no build step).
STATIC = Path(__file__).resolve().parents[1] / "static"


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


@router.get(
    "/healthz",
    response_model=HealthOut,
    responses={503: {"model": HealthOut, "description": "the store does not answer"}},
)
def get_health(engine: EngineDep) -> JSONResponse:
    """Whether the service is ready (its store answers). Details: `/v1/admin/status`."""
    try:
        engine.store.user_count()
    except Exception:
        logger.exception("health check: the store does not answer")
        return JSONResponse({"status": "unavailable"}, status_code=503)
    return JSONResponse({"status": "ok"})


@router.get("/v1/page-config", response_model=PageConfigOut)
def get_page_config(request: Request) -> dict:
    """What a shop's page needs: the events key, which may post events and nothing else (safe to
    hand to every browser, as a storefront's page must), and the currency its prices are in."""
    return {"events_key": request.app.state.events_key, "currency": request.app.state.currency}


@router.get(
    "/readyz",
    response_model=ReadyOut,
    responses={503: {"model": ReadyOut, "description": "a part is still loading, or the store does not answer"}},
)
def get_readiness(engine: EngineDep) -> JSONResponse:
    """Whether this process answers every route at full speed: its model and serving artifacts are
    loaded (they are before the app exists), its text encoder has loaded (a start from the artifacts
    loads it in the background: a search or profile before then waits for it) and its store answers.
    For a load balancer's or Kubernetes' readiness probe; `/healthz` is the liveness probe."""
    waiting = []
    try:
        engine.store.user_count()
    except Exception:
        logger.exception("readiness check: the store does not answer")
        waiting.append("store")
    if not engine.wait_until_text_ready(timeout=0):
        waiting.append("encoder")
    if waiting:
        return JSONResponse({"status": "starting", "waiting_for": waiting}, status_code=503)
    return JSONResponse({"status": "ready", "waiting_for": []})


@router.get("/v1/admin/status", response_model=StatusOut, **WRITES)
def get_status(engine: EngineDep) -> dict:
    """The model, its folder, the catalog and the store this replica serves (needs the key)."""
    engine.store.user_count()  # the store answers
    return {"status": "ok", **engine.stats()}


@router.get("/v1/model", response_model=ModelOut, **READS)
async def get_model(engine: EngineDep) -> dict:
    """The model being served and the size of the catalog."""
    stats = engine.stats()
    return {name: stats[name] for name in ("model", "model_version", "items", "items_known_to_model")}


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE.split(";")[0]: {"schema": {"type": "string"}}}}},
)
def get_metrics(engine: EngineDep, metrics: MetricsDep) -> Response:
    """Prometheus metrics (text format): requests, latencies, events, items, model version."""
    metrics.items.set(len(engine.catalog))
    return Response(metrics.render(), media_type=CONTENT_TYPE)


@router.post("/v1/admin/reload", response_model=ReloadedOut, **WRITES)
def reload_model(engine: EngineDep, metrics: MetricsDep, request: Request, body: ReloadIn | None = None) -> dict:
    """Load the model folder again (or another one) and swap it in; answers in flight finish on the old one."""
    with request.app.state.reload_lock:
        version = engine.reload(body.model_dir if body else None)
    metrics.reloads.inc()
    metrics.set_model(engine.model.name, version)
    return {"model": engine.model.name, "model_version": version}
