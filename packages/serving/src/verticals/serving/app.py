"""The app factory every service uses: request ids, JSON logs, metrics, health, clear 4xx errors."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from pydantic import BaseModel
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
    request ids, the body-size limit and body timeout (counted on the bytes received, for any
    transfer encoding), Prometheus counts and latency, one access log line, and a JSON 500 that
    carries the request id for anything unhandled."""

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
            await _refuse(send, rid, 413, f"request body over {limit} bytes")
            self._observe(scope, 413, 0.0)
            return
        status = 500
        started_response = refused = body_done = False
        received = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status, started_response
            if refused:  # the app's answer to the disconnect it was given: already answered
                return
            if message["type"] == "http.response.start":
                status, started_response = message["status"], True
                MutableHeaders(scope=message)["x-request-id"] = rid
            await send(message)

        async def counted_receive() -> Message:
            """The body as it arrives, whatever the transfer encoding: past the limit (or
            stalled past the body timeout) the request is answered at once, the connection
            closed, and the app sees a disconnect; nothing more is read or kept."""
            nonlocal received, body_done
            if body_done or refused:
                return await receive()
            try:
                async with asyncio.timeout(self.settings.body_timeout_s):
                    message = await receive()
            except TimeoutError:
                return await refuse(408, "request body not received in time")
            if message["type"] != "http.request":
                return message
            received += len(message.get("body", b""))
            body_done = not message.get("more_body", False)
            if received > limit:
                return await refuse(413, f"request body over {limit} bytes")
            return message

        async def refuse(code: int, detail: str) -> Message:
            nonlocal status, started_response, refused
            refused = True
            if not started_response:
                status, started_response = code, True
                await _refuse(send, rid, code, detail)
            return {"type": "http.disconnect"}

        token = request_id.set(rid)
        started = time.perf_counter()
        try:
            try:
                await self.app(scope, counted_receive, send_with_id)
            except Exception:  # logged with its request id, answered as a JSON 500
                if refused:  # the app failed on the disconnect it was given: answered already
                    self._observe(scope, status, time.perf_counter() - started)
                    return
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


async def _refuse(send: Send, rid: str, code: int, detail: str) -> None:
    """A JSON error that also closes the connection (the rest of the body is never read)."""
    body = json.dumps({"detail": detail}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"x-request-id", rid.encode("latin-1", "replace")),
    ]
    await send({"type": "http.response.start", "status": code, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


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

    app.add_middleware(AllowedMethods, router=app.router)
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
    _document_responses(app)
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


class ErrorBody(BaseModel):
    """The body of every error answer."""

    detail: str


ERROR_DESCRIPTIONS = {
    400: "Malformed request (a body that is not valid JSON or UTF-8, or bad content)",
    401: "Missing or invalid X-API-Key",
    403: "The key may not do this",
    404: "Something the request names does not exist",
    408: "The request body did not arrive in time",
    409: "Conflicts with the current state",
    413: "Request body over the size limit",
    503: "A service this one depends on is unavailable",
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """Documented error answers (``{"detail": ...}``) for a router's or a route's ``responses``."""
    return {code: {"model": ErrorBody, "description": ERROR_DESCRIPTIONS[code]} for code in codes}


def _document_responses(app: FastAPI) -> None:
    """Make the OpenAPI schema describe what the app really answers: our 422 body, and the errors
    every route of a kind can get from the app factory or the auth dependency: 400, 408 and 413
    with a request body, 401 with an API key, 404 with a path parameter."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        schemas = schema.setdefault("components", {}).setdefault("schemas", {})
        if "HTTPValidationError" in schemas:
            schemas["HTTPValidationError"] = VALIDATION_ERROR_SCHEMA
        schemas.setdefault("ErrorBody", ErrorBody.model_json_schema())
        for operation in _operations(schema):
            codes = []
            if "requestBody" in operation:
                codes += [400, 408, 413]
            if operation.get("security"):
                codes.append(401)
            if any(p.get("in") == "path" for p in operation.get("parameters", [])):
                codes.append(404)
            responses = operation.setdefault("responses", {})
            for code in codes:
                responses.setdefault(
                    str(code),
                    {
                        "description": ERROR_DESCRIPTIONS[code],
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/ErrorBody"}
                            }
                        },
                    },
                )
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


def _operations(schema: dict[str, Any]) -> list[dict[str, Any]]:
    methods = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}
    return [
        operation
        for item in schema.get("paths", {}).values()
        for method, operation in item.items()
        if method in methods
    ]


class AllowedMethods:
    """A 405 with an ``Allow`` header that lists every method the URL supports (Starlette lists
    only the first matching route's). As OpenAPI reads paths, a concrete path
    (``/v1/items/delete``) takes precedence over a templated one (``/v1/items/{item_id}``): the
    other methods of a concrete path get a 405 instead of reaching the templated route."""

    def __init__(self, app: ASGIApp, router: APIRouter) -> None:
        self.app = app
        self.router = router
        self._table: list[tuple[re.Pattern[str], bool, frozenset[str]]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            allowed = self.allowed(scope["path"])
            if allowed and scope["method"] not in allowed:
                response = JSONResponse(
                    {"detail": "Method Not Allowed"},
                    status_code=405,
                    headers={"Allow": ", ".join(sorted(allowed))},
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def allowed(self, path: str) -> set[str]:
        """Methods of the routes with this path (concrete paths first); empty when none has."""
        matching = [(concrete, methods) for rx, concrete, methods in self.table() if rx.match(path)]
        chosen = [methods for concrete, methods in matching if concrete] or [
            methods for _, methods in matching
        ]
        return {method for methods in chosen for method in methods}

    def table(self) -> list[tuple[re.Pattern[str], bool, frozenset[str]]]:
        """(path regex, concrete, methods) of every route, included routers' flattened."""
        if self._table is None:
            self._table = [
                (route.path_regex, not route.param_convertors, frozenset(route.methods))
                for route in _flat_routes(self.router)
                if route.methods and getattr(route, "path_regex", None) is not None
            ]
        return self._table


def _flat_routes(router: APIRouter) -> list[Any]:
    """Every route, those of included routers too (FastAPI >= 0.16x keeps these nested)."""
    try:
        from fastapi.routing import iter_route_contexts
    except ImportError:  # older FastAPI copies included routes into the app's router
        return list(router.routes)
    return list(iter_route_contexts(router.routes))
