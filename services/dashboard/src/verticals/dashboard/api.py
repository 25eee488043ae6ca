"""Thin routes: the page and its static files, the JSON panels, the admin actions."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Annotated, Any

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from verticals.core.registry import ModelRegistry
from verticals.dashboard import panels, registry_view
from verticals.dashboard.schemas import PromoteIn, ReplyIn
from verticals.dashboard.settings import DashboardSettings
from verticals.dashboard.upstream import Upstream, UpstreamError
from verticals.serving.app import create_app
from verticals.serving.auth import require_admin_key

STATIC = Path(__file__).parent / "static"
CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'"

router = APIRouter()


def get_settings(request: Request) -> DashboardSettings:
    settings: DashboardSettings = request.app.state.settings
    return settings


def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


def get_upstreams(request: Request) -> dict[str, Upstream]:
    upstreams: dict[str, Upstream] = request.app.state.upstreams
    return upstreams


def _admin(request: Request) -> str:
    settings = get_settings(request)
    key = request.headers.get("x-api-key")
    return require_admin_key(lambda: settings.admin_api_key.get_secret_value())(key)


Settings = Annotated[DashboardSettings, Depends(get_settings)]
Registry = Annotated[ModelRegistry, Depends(get_registry)]
Upstreams = Annotated[dict[str, Upstream], Depends(get_upstreams)]
Admin = Annotated[str, Depends(_admin)]


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": CSP})


@router.get("/api/config", tags=["dashboard"])
def config(settings: Settings) -> dict[str, Any]:
    """What the page needs to know: refresh interval and where the services are."""
    return {"refresh_seconds": settings.refresh_seconds, "services": settings.upstreams()}


@router.get("/api/status", tags=["dashboard"])
async def status(upstreams: Upstreams) -> dict[str, Any]:
    """Each service's health, or why it cannot be reached."""
    return await panels.status(upstreams)


@router.get("/api/models", tags=["models"])
def models(registry: Registry) -> dict[str, Any]:
    """Every registry task with its versions, card metrics and the current version."""
    return registry_view.list_models(registry)


@router.post("/api/models/{task}/promote", tags=["models"])
def promote(task: str, body: PromoteIn, registry: Registry, _: Admin) -> dict[str, Any]:
    """Make a version current; 409 with the registry's reason when it scores worse."""
    try:
        return registry_view.promote(registry, task, body.version, body.force)
    except registry_view.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except registry_view.Refused as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/api/models/{task}/rollback", tags=["models"])
def rollback(task: str, registry: Registry, _: Admin) -> dict[str, Any]:
    """Return to the version that was current before the last promotion."""
    try:
        return registry_view.rollback(registry, task)
    except registry_view.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except registry_view.Refused as exc:
        raise HTTPException(409, str(exc)) from None


@router.get("/api/news", tags=["news"])
async def news(
    settings: Settings,
    upstreams: Upstreams,
    bucket_minutes: Annotated[int, Query(ge=1, le=1440)] = 15,
    alerts: Annotated[int, Query(ge=1, le=500)] = 20,
) -> dict[str, Any]:
    """The news monitor's negative-share trend (latest buckets) and recent alerts."""
    return await panels.news(upstreams["news"], bucket_minutes, settings.trend_buckets, alerts)


@router.get("/api/support", tags=["support"])
async def support(settings: Settings, upstreams: Upstreams) -> dict[str, Any]:
    """Per tenant: handoff queue and knowledge-base entries."""
    return await panels.support(
        upstreams["support"], list(settings.support_tenants), settings.kb_entries
    )


@router.post("/api/support/handoffs/{handoff_id}/reply", tags=["support"])
async def reply(handoff_id: int, body: ReplyIn, upstreams: Upstreams, _: Admin) -> dict[str, Any]:
    """Answer a handoff as staff; the customer's widget shows the reply."""
    try:
        return await panels.reply(
            upstreams["support"], handoff_id, body.tenant, body.text, body.close
        )
    except UpstreamError as exc:
        code = 503 if exc.unavailable else (exc.status or 400)
        raise HTTPException(code, exc.message) from None


@router.get("/api/recommender", tags=["recommender"])
async def recommender(
    upstreams: Upstreams, k: Annotated[int, Query(ge=1, le=50)] = 5
) -> dict[str, Any]:
    """The recommender's catalog and user counts, encoder, trending items and HTTP figures."""
    return await panels.recommender(upstreams["recommender"], k)


def build_app(settings: DashboardSettings, registry: ModelRegistry | None = None) -> FastAPI:
    """The dashboard app; ``registry`` defaults to ``settings.registry_dir`` or the core's."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=settings.upstream_timeout_s) as client:
            keys = {"support": {"X-API-Key": settings.support_admin_key.get_secret_value()}}
            app.state.upstreams = {
                name: Upstream(name, url, client, keys.get(name, {}))
                for name, url in settings.upstreams().items()
            }
            yield

    app = create_app(
        "dashboard",
        settings,
        [router],
        lifespan=lifespan,
        description="Management dashboard of the verticals suite.",
    )
    if registry is None:
        registry = (
            ModelRegistry(settings.registry_dir)
            if settings.registry_dir
            else ModelRegistry.default()
        )
    app.state.registry = registry
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
