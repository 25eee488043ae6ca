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
QUIET_ROUTES = ("/health", "/metrics")
"""Probed every few seconds: their access lines are DEBUG, every other request's INFO."""


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
    configure_logging(settings.log_level, service)
    app = FastAPI(
        title=f"verticals {service}", version=version, description=description, lifespan=lifespan
    )
    app.state.settings = settings
    app.state.metrics_registry = registry = registry or CollectorRegistry()
    http = HttpMetrics(registry, service)

    @app.middleware("http")
    async def _observe(request: Request, call_next: Callable[[Request], Any]) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex[:16]
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > settings.max_request_bytes:
            return JSONResponse(
                {"detail": f"request body over {settings.max_request_bytes} bytes"},
                status_code=413,
                headers={"x-request-id": rid},
            )
        token = request_id.set(rid)
        started = time.perf_counter()
        try:
            try:
                response: Response = await call_next(request)
            except Exception:  # logged with its request id, answered as a JSON 500
                log.exception("unhandled error on %s %s", request.method, request.url.path)
                response = JSONResponse(
                    {"detail": "internal server error", "request_id": rid}, status_code=500
                )
            route = request.scope.get("route")
            path = getattr(route, "path", "unmatched")
            elapsed = time.perf_counter() - started
            http.requests.labels(service, request.method, path, str(response.status_code)).inc()
            http.latency.labels(service, path).observe(elapsed)
            log.log(
                logging.DEBUG if path in QUIET_ROUTES else logging.INFO,
                "%s %s %s",
                request.method,
                request.url.path,
                response.status_code,
                extra={
                    "fields": {
                        "method": request.method,
                        "path": request.url.path,
                        "route": path,
                        "status": response.status_code,
                        "ms": round(elapsed * 1000, 1),
                    }
                },
            )
        finally:
            request_id.reset(token)
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
    _document_validation_errors(app)
    return app


VALIDATION_ERROR_SCHEMA: dict[str, Any] = {
    "title": "HTTPValidationError",
    "type": "object",
    "required": ["detail"],
    "properties": {
        "detail": {"type": "string", "description": "Every problem, '; '-separated."},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["field", "message"],
                "properties": {"field": {"type": "string"}, "message": {"type": "string"}},
            },
        },
    },
}
"""The body of our 422 answers, in place of FastAPI's default schema: ``errors`` (one per field)
comes with request validation failures (``_invalid``), a route's own 422 has ``detail`` only."""


def _document_validation_errors(app: FastAPI) -> None:
    """Make the OpenAPI schema describe the 422 body the app really sends."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        schemas = schema.get("components", {}).get("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = VALIDATION_ERROR_SCHEMA
        return schema

    app.openapi = openapi  # type: ignore[method-assign]
