"""The app factory every service uses: request ids, JSON logs, metrics, health, clear 4xx errors."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from verticals.serving.logging import configure_logging, request_id
from verticals.serving.metrics import HttpMetrics
from verticals.serving.settings import ServiceSettings

log = logging.getLogger("verticals.http")


def create_app(
    service: str,
    settings: ServiceSettings,
    routers: Sequence[APIRouter],
    lifespan: Callable[[FastAPI], AbstractAsyncContextManager[None]] | None = None,
    version: str = "0.1.0",
    description: str = "",
    registry: CollectorRegistry | None = None,
    health: Callable[[], dict[str, Any]] | None = None,
) -> FastAPI:
    """A FastAPI app with /health, /metrics (Prometheus) and the service's routers."""
    configure_logging(settings.log_level)
    app = FastAPI(
        title=f"verticals {service}", version=version, description=description, lifespan=lifespan
    )
    app.state.settings = settings
    app.state.metrics_registry = registry = registry or CollectorRegistry()
    http = HttpMetrics(registry, service)

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Any]) -> Response:
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_request_bytes:
            return JSONResponse(
                {"detail": f"request body over {settings.max_request_bytes} bytes"}, status_code=413
            )
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        token = request_id.set(rid)
        started = time.perf_counter()
        try:
            response: Response = await call_next(request)
        finally:
            request_id.reset(token)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        elapsed = time.perf_counter() - started
        http.requests.labels(service, request.method, path, str(response.status_code)).inc()
        http.latency.labels(service, path).observe(elapsed)
        response.headers["x-request-id"] = rid
        return response

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        problems = [
            {"field": ".".join(str(p) for p in e["loc"]), "message": e["msg"]} for e in exc.errors()
        ]
        message = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        return JSONResponse({"detail": message, "errors": problems}, status_code=422)

    @app.get("/health", tags=["ops"])
    def _health() -> dict[str, Any]:
        return {"status": "ok", "service": service, **(health() if health else {})}

    @app.get("/metrics", tags=["ops"], include_in_schema=False)
    def _metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    for router in routers:
        app.include_router(router)
    return app
