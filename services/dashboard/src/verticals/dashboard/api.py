"""Thin routes: the page and its static files, login, the JSON panels, the admin actions.
Who may see what is decided in ``auth``: every tenant-scoped route needs a login."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any, Literal

import httpx
from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, JSONResponse
from fastapi.staticfiles import StaticFiles

from verticals.core.registry import ModelRegistry
from verticals.dashboard import model_files, panels, registry_view
from verticals.dashboard.auth import (
    COOKIE,
    AdminOnly,
    Anyone,
    LoggedIn,
    Sessions,
    Viewer,
    admin_viewer,
    is_dashboard_key,
)
from verticals.dashboard.schemas import FaqEditIn, LoginIn, PromoteIn, ReplyIn, SearchIn
from verticals.dashboard.settings import DashboardSettings
from verticals.dashboard.upstream import Upstream, UpstreamError
from verticals.serving.app import create_app

STATIC = Path(__file__).parent / "static"
CSP = "default-src 'self'; img-src 'self' data:; object-src 'none'; frame-ancestors 'none'"

router = APIRouter(responses={401: {"description": "not logged in, or a wrong X-API-Key"}})
FORBIDDEN: dict[int | str, dict[str, Any]] = {
    403: {"description": "the login does not cover this (dashboard admin only, or another tenant)"}
}
MODEL_ACTION = {
    **FORBIDDEN,
    404: {"description": "no such task or version"},
    409: {"description": "refused by the registry (a worse model, or nothing to roll back to)"},
}
REPLY = {
    **FORBIDDEN,
    404: {"description": "the support bot has no such tenant or handoff"},
    503: {"description": "the support bot is down"},
}
MAX_ROW_ID = 2**31 - 1
"""The support bot's row ids are 32-bit SQL integers; a larger id is a 422 here too."""


def get_settings(request: Request) -> DashboardSettings:
    settings: DashboardSettings = request.app.state.settings
    return settings


def get_registry(request: Request) -> ModelRegistry:
    registry: ModelRegistry = request.app.state.registry
    return registry


def get_upstreams(request: Request) -> dict[str, Upstream]:
    upstreams: dict[str, Upstream] = request.app.state.upstreams
    return upstreams


Settings = Annotated[DashboardSettings, Depends(get_settings)]
Registry = Annotated[ModelRegistry, Depends(get_registry)]
Upstreams = Annotated[dict[str, Upstream], Depends(get_upstreams)]


def support_as(upstreams: dict[str, Upstream], key: str) -> Upstream:
    """The support bot, called with ``key`` (the viewer's, never lent to anyone else)."""
    return replace(upstreams["support"], headers={"X-API-Key": key})


async def _support_identity(upstreams: dict[str, Upstream], key: str) -> dict[str, Any]:
    """The support bot's ``/v1/whoami`` for ``key``; 401 when it refuses it, 503 when down."""
    try:
        identity: dict[str, Any] = await support_as(upstreams, key).get_json("/v1/whoami")
    except UpstreamError as exc:
        if exc.unavailable:
            raise HTTPException(503, exc.message) from None
        raise HTTPException(401, "invalid key") from None
    return identity


async def _tenant_still_valid(
    request: Request, upstreams: dict[str, Upstream], who: Viewer
) -> None:
    """A tenant admin's key may have been rotated since the login: then the login ends."""
    try:
        identity = await _support_identity(upstreams, who.support_key)
    except HTTPException as exc:
        if exc.status_code != 401:
            raise
        identity = {}
    if identity.get("role") != "admin" or identity.get("tenant") != who.tenant:
        request.app.state.sessions.end(request.cookies.get(COOKIE))
        raise HTTPException(401, "the tenant key is no longer valid; log in again")


@router.get("/", include_in_schema=False)
def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers={"Content-Security-Policy": CSP})


def _session_body(who: Viewer | None) -> dict[str, Any]:
    return {"role": who.role if who else None, "tenant": who.tenant if who else None}


@router.post(
    "/api/login",
    tags=["dashboard"],
    responses={
        403: {"description": "a widget or service key: not a login"},
        503: {"description": "the support bot, which checks tenant keys, is down"},
    },
)
async def login(body: LoginIn, request: Request, settings: Settings, upstreams: Upstreams) -> Any:
    """Log in with the dashboard admin key, or a support tenant's admin key (that tenant
    only). Sets the HttpOnly session cookie; 401 for a wrong key, 403 for a widget key."""
    if is_dashboard_key(settings, body.key):
        who = admin_viewer(settings)
    else:
        identity = await _support_identity(upstreams, body.key)
        if identity.get("role") != "admin":
            raise HTTPException(
                403, "log in with the dashboard admin key or a support tenant's admin key"
            )
        who = Viewer("tenant", body.key, identity["tenant"])
    sessions: Sessions = request.app.state.sessions
    response = JSONResponse(_session_body(who))
    response.set_cookie(
        COOKIE,
        sessions.start(who),
        max_age=int(sessions.ttl_s),
        httponly=True,
        samesite="strict",
        secure=settings.environment != "local",
        path="/",
    )
    return response


@router.post("/api/logout", tags=["dashboard"])
def logout(request: Request) -> Any:
    """End this browser's session."""
    request.app.state.sessions.end(request.cookies.get(COOKIE))
    response = JSONResponse(_session_body(None))
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.get("/api/session", tags=["dashboard"])
def session(who: Anyone) -> dict[str, Any]:
    """Who this browser is logged in as: ``role`` admin | tenant | null, and the tenant."""
    return _session_body(who)


@router.get("/api/config", tags=["dashboard"])
def config(settings: Settings, who: Anyone) -> dict[str, Any]:
    """The refresh interval; where the services are (dashboard admin only)."""
    body: dict[str, Any] = {"refresh_seconds": settings.refresh_seconds}
    if who is not None and who.role == "admin":
        body["services"] = settings.upstreams()
    return body


@router.get("/api/status", tags=["dashboard"], responses=FORBIDDEN)
async def status(upstreams: Upstreams, _: AdminOnly) -> dict[str, Any]:
    """Each service's health, or why it cannot be reached (dashboard admin)."""
    return await panels.status(upstreams)


@router.get("/api/models", tags=["models"], responses=FORBIDDEN)
def models(registry: Registry, _: AdminOnly) -> dict[str, Any]:
    """Every registry task with its versions, card metrics, report files and the current
    version."""
    body = registry_view.list_models(registry)
    for task in body["tasks"]:
        for v in task["versions"]:
            v["reports"] = model_files.reports(registry, task["task"], v["version"])
    return body


MODEL_FILE = {**FORBIDDEN, 404: {"description": "no such task, version or report"}}
Version = Annotated[int, PathParam(ge=1, le=MAX_ROW_ID)]


@router.get("/api/models/{task}/{version}/card", tags=["models"], responses=MODEL_FILE)
def model_card(task: str, version: Version, registry: Registry, _: AdminOnly) -> dict[str, Any]:
    """A version's model card (JSON)."""
    try:
        return model_files.card(registry, task, version)
    except registry_view.NotFound as exc:
        raise HTTPException(404, str(exc)) from None


@router.get(
    "/api/models/{task}/{version}/reports/{name}",
    tags=["models"],
    responses={**MODEL_FILE, 200: {"content": {"image/png": {}, "application/json": {}}}},
)
def model_report(
    task: str, version: Version, name: str, registry: Registry, _: AdminOnly
) -> FileResponse:
    """A report file of a version: a confusion matrix or the training curve (PNG), metrics."""
    try:
        path = model_files.report_path(registry, task, version, name)
    except registry_view.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    media = "image/png" if name.endswith(".png") else "application/json"
    return FileResponse(path, media_type=media)


@router.post("/api/models/{task}/promote", tags=["models"], responses=MODEL_ACTION)
def promote(task: str, body: PromoteIn, registry: Registry, _: AdminOnly) -> dict[str, Any]:
    """Make a version current; 409 with the registry's reason when it scores worse."""
    try:
        return registry_view.promote(registry, task, body.version, body.force)
    except registry_view.NotFound as exc:
        raise HTTPException(404, str(exc)) from None
    except registry_view.Refused as exc:
        raise HTTPException(409, str(exc)) from None


@router.post("/api/models/{task}/rollback", tags=["models"], responses=MODEL_ACTION)
def rollback(task: str, registry: Registry, _: AdminOnly) -> dict[str, Any]:
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
    hours: Annotated[Literal["1", "6", "24"] | None, Query()] = None,
) -> dict[str, Any]:
    """The news monitor's negative-share trend (the latest buckets, or the latest 1, 6 or 24
    hours of news with 5, 15 or 60 minute buckets), topics by volume, recent alerts."""
    return await panels.news(
        upstreams["news"],
        bucket_minutes,
        settings.trend_buckets,
        alerts,
        int(hours) if hours else None,
    )


@router.get("/api/support", tags=["support"])
async def support(
    request: Request, settings: Settings, upstreams: Upstreams, who: LoggedIn
) -> dict[str, Any]:
    """Per tenant the caller may see (all for the dashboard admin, their own for a tenant
    admin): handoff queue and knowledge-base entries."""
    if who.role == "tenant":
        assert who.tenant is not None
        await _tenant_still_valid(request, upstreams, who)
        tenants = [who.tenant]
    else:
        tenants = list(settings.support_tenants)
    upstream = support_as(upstreams, who.support_key)
    return await panels.support(upstream, tenants, settings.kb_entries)


@router.post("/api/support/handoffs/{handoff_id}/reply", tags=["support"], responses=REPLY)
async def reply(
    handoff_id: Annotated[int, PathParam(ge=1, le=MAX_ROW_ID)],
    body: ReplyIn,
    upstreams: Upstreams,
    who: LoggedIn,
) -> dict[str, Any]:
    """Answer a handoff as staff; the customer's widget shows the reply."""
    if who.role == "tenant" and body.tenant != who.tenant:
        raise HTTPException(403, f"you are logged in for tenant {who.tenant!r} only")
    try:
        upstream = support_as(upstreams, who.support_key)
        return await panels.reply(upstream, handoff_id, body.tenant, body.text, body.close)
    except UpstreamError as exc:
        code = 503 if exc.unavailable else (exc.status or 400)
        raise HTTPException(code, exc.message) from None


# ---- a tenant's knowledge base -----------------------------------------------------------------
KB: dict[int | str, dict[str, Any]] = {
    **REPLY,
    400: {"description": "the support bot refused the content (a bad file, an empty question)"},
    404: {"description": "the support bot has no such tenant or entry"},
    413: {"description": "the file is over the support bot's request limit"},
}
Tenant = Annotated[str, PathParam(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$")]


async def tenant_support(
    request: Request, upstreams: dict[str, Upstream], who: Viewer, tenant: str
) -> Upstream:
    """The support bot with the viewer's key, for a tenant the login covers."""
    if who.role == "tenant":
        if tenant != who.tenant:
            raise HTTPException(403, f"you are logged in for tenant {who.tenant!r} only")
        await _tenant_still_valid(request, upstreams, who)
    return support_as(upstreams, who.support_key)


async def relay(call: Any) -> dict[str, Any]:
    """A support-bot call's answer; its refusal (4xx) keeps its status and reason, a support
    bot that is down is a 503."""
    try:
        result: dict[str, Any] = await call
    except UpstreamError as exc:
        raise HTTPException(503 if exc.unavailable else (exc.status or 400), exc.message) from None
    return result


@router.get("/api/support/{tenant}/entries", tags=["support"], responses=KB)
async def kb_entries(
    tenant: Tenant,
    request: Request,
    upstreams: Upstreams,
    who: LoggedIn,
    q: Annotated[str, Query(max_length=200)] = "",
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> dict[str, Any]:
    """Search the tenant's entries (every word of ``q`` in the id, question, heading, answer or
    category)."""
    upstream = await tenant_support(request, upstreams, who, tenant)
    return await relay(panels.kb_entries(upstream, tenant, q, limit))


@router.post("/api/support/{tenant}/faq", tags=["support"], responses=KB)
async def kb_save(
    tenant: Tenant, body: FaqEditIn, request: Request, upstreams: Upstreams, who: LoggedIn
) -> dict[str, Any]:
    """Create or replace one FAQ entry."""
    upstream = await tenant_support(request, upstreams, who, tenant)
    return await relay(panels.kb_save(upstream, tenant, body.model_dump()))


@router.delete("/api/support/{tenant}/entries/{entry_id}", tags=["support"], responses=KB)
async def kb_delete(
    tenant: Tenant,
    entry_id: Annotated[str, PathParam(min_length=1, max_length=200)],
    request: Request,
    upstreams: Upstreams,
    who: LoggedIn,
) -> dict[str, Any]:
    """Delete an entry, or a document with all its passages."""
    upstream = await tenant_support(request, upstreams, who, tenant)
    return await relay(panels.kb_delete(upstream, tenant, entry_id))


@router.post("/api/support/{tenant}/upload", tags=["support"], responses=KB)
async def kb_upload(
    tenant: Tenant,
    request: Request,
    upstreams: Upstreams,
    who: LoggedIn,
    kind: Annotated[Literal["csv", "jsonl", "markdown", "html", "text"], Query()],
    name: Annotated[str, Query(min_length=1, max_length=200)] = "upload",
) -> dict[str, Any]:
    """The request body is the file: an FAQ (``csv``: id, question, answer[, category, tags,
    url, paraphrases]; ``jsonl``) or a document (``markdown``, ``html``, ``text``)."""
    upstream = await tenant_support(request, upstreams, who, tenant)
    content = await request.body()
    if not content.strip():
        raise HTTPException(400, "the file is empty")
    try:
        content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise HTTPException(400, f"the file is not UTF-8 text (byte {exc.start})") from None
    return await relay(panels.kb_upload(upstream, tenant, kind, name, content))


@router.post("/api/support/{tenant}/search", tags=["support"], responses=KB)
async def kb_search(
    tenant: Tenant, body: SearchIn, request: Request, upstreams: Upstreams, who: LoggedIn
) -> dict[str, Any]:
    """Test a question: the candidates the bot finds, their scores and its decision."""
    upstream = await tenant_support(request, upstreams, who, tenant)
    return await relay(panels.kb_search(upstream, tenant, body.question, body.k))


@router.get("/api/recommender", tags=["recommender"], responses=FORBIDDEN)
async def recommender(
    upstreams: Upstreams, _: AdminOnly, k: Annotated[int, Query(ge=1, le=50)] = 5
) -> dict[str, Any]:
    """The recommender's catalog and user counts, encoder, trending items and HTTP figures
    (dashboard admin)."""
    return await panels.recommender(upstreams["recommender"], k)


def build_app(settings: DashboardSettings, registry: ModelRegistry | None = None) -> FastAPI:
    """The dashboard app; ``registry`` defaults to ``settings.registry_dir`` or the core's."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with httpx.AsyncClient(timeout=settings.upstream_timeout_s) as client:
            # no default keys: each support call names the viewer's key (support_as)
            app.state.upstreams = {
                name: Upstream(name, url, client) for name, url in settings.upstreams().items()
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
    app.state.sessions = Sessions(settings.session_hours * 3600)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    return app
