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
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from verticals.serving.logging import configure_logging, request_id
from verticals.serving.metrics import HttpMetrics
from verticals.serving.settings import ServiceSettings

log = logging.getLogger("verticals.http")
QUIET_ROUTES = ("/health", "/metrics")
"""Probed every few seconds: their access lines are DEBUG, every other request's INFO."""


class ObserveRequests:
    """Pure ASGI middleware (no per-request task or memory stream, unlike ``@app.middleware``):
    request ids, the body-size limit, Prometheus counts and latency, one access log line, and a
    JSON 500 that carries the request id for anything unhandled."""

    def __init__(
        self, app: ASGIApp, service: str, settings: ServiceSettings, http: HttpMetrics
    ) -> None:
        self.app = app
        self.service = service
        self.settings = settings
        self.http = http

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        rid = headers.get("x-request-id") or uuid.uuid4().hex[:16]
        length = headers.get("content-length")
        limit = self.settings.max_request_bytes
        if length and length.isdigit() and int(length) > limit:
            response = JSONResponse(
                {"detail": f"request body over {limit} bytes"},
                status_code=413,
                headers={"x-request-id": rid},
            )
            await response(scope, receive, send)
            return
        status = 500
        started_response = False

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                MutableHeaders(scope=message)["x-request-id"] = rid
            await send(message)

        token = request_id.set(rid)
        started = time.perf_counter()
        try:
            try:
                await self.app(scope, receive, send_with_id)
            except Exception:  # logged with its request id, answered as a JSON 500
                log.exception("unhandled error on %s %s", scope["method"], scope["path"])
                if started_response:
                    raise
                status = 500
                body = {"detail": "internal server error", "request_id": rid}
                await JSONResponse(body, 500, headers={"x-request-id": rid})(scope, receive, send)
            self._observe(scope, status, time.perf_counter() - started)
        finally:
            request_id.reset(token)

    def _observe(self, scope: Scope, status: int, elapsed: float) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        method, path = scope["method"], scope["path"]
        self.http.requests.labels(self.service, method, route, str(status)).inc()
        self.http.latency.labels(self.service, route).observe(elapsed)
        log.log(
            logging.DEBUG if route in QUIET_ROUTES else logging.INFO,
            "%s %s %s",
            method,
            path,
            status,
            extra={
                "fields": {
                    "method": method,
                    "path": path,
                    "route": route,
                    "status": status,
                    "ms": round(elapsed * 1000, 1),
                }
            },
        )


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

    app.add_middleware(ObserveRequests, service=service, settings=settings, http=http)

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
