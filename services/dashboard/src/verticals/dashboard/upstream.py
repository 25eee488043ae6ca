"""HTTP access to the other services: a service that is down or failing becomes an error the
page can show, never an exception out of a route."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import httpx

from verticals.serving.logging import request_id

NAMES = {"news": "news monitor", "support": "support bot", "recommender": "recommender"}


class UpstreamError(Exception):
    """A request to another service failed. ``unavailable``: it could not be reached or
    answered with a server error; otherwise it refused the request (a 4xx, e.g. a bad key)."""

    def __init__(self, message: str, unavailable: bool, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.unavailable = unavailable
        self.status = status


def _forwarded_request_id() -> dict[str, str]:
    """The id of the request being answered, so the services log the call under the same id."""
    rid = request_id.get()
    return {"x-request-id": rid} if rid != "-" else {}


def _detail(response: httpx.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:300]
    detail = body.get("detail") if isinstance(body, dict) else None
    return str(detail if detail is not None else body)[:300]


@dataclass
class Upstream:
    """One service at ``base_url``; ``headers`` go with every request (its admin key)."""

    key: str
    base_url: str
    client: httpx.AsyncClient
    headers: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return NAMES.get(self.key, self.key)

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        url = f"{self.base_url}{path}"
        try:
            headers = {**self.headers, **_forwarded_request_id(), **kwargs.pop("headers", {})}
            response = await self.client.request(method, url, headers=headers, **kwargs)
        except httpx.TimeoutException:
            raise UpstreamError(
                f"{self.name} unavailable at {self.base_url}: no answer in time", True
            ) from None
        except httpx.HTTPError as exc:
            reason = str(exc) or type(exc).__name__
            raise UpstreamError(
                f"{self.name} unavailable at {self.base_url}: {reason}", True
            ) from None
        if response.status_code >= 500:
            raise UpstreamError(
                f"{self.name} at {self.base_url} failed on {path}: "
                f"{response.status_code} {_detail(response)}",
                True,
                response.status_code,
            )
        if response.status_code >= 400:
            raise UpstreamError(
                f"{self.name} refused {method} {path}: {response.status_code} {_detail(response)}",
                False,
                response.status_code,
            )
        return response

    async def get_json(self, path: str, **params: Any) -> Any:
        response = await self.request("GET", path, params=params or None)
        try:
            return response.json()
        except ValueError:
            raise UpstreamError(
                f"{self.name} at {self.base_url}: {path} did not answer JSON", True
            ) from None

    async def get_text(self, path: str) -> str:
        return (await self.request("GET", path)).text

    async def post_json(self, path: str, body: dict[str, Any]) -> Any:
        return (await self.request("POST", path, json=body)).json()

    async def post_content(
        self, path: str, content: bytes, content_type: str, **params: Any
    ) -> Any:
        """A raw body (an uploaded file) as it came."""
        headers = {"Content-Type": content_type}
        kwargs: dict[str, Any] = {"content": content, "headers": headers, "params": params or None}
        response = await self.request("POST", path, **kwargs)
        return response.json()

    async def delete(self, path: str) -> Any:
        return (await self.request("DELETE", path)).json()


def failure(upstream: Upstream, exc: UpstreamError) -> dict[str, Any]:
    """A panel's body when its service failed."""
    return {
        "service": upstream.key,
        "url": upstream.base_url,
        "available": not exc.unavailable,
        "error": exc.message,
    }
