"""What each section of the page shows, gathered from the services over HTTP (no web framework
here). Each panel is a JSON body with ``available`` and, when something failed, ``error``."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from verticals.dashboard.upstream import Upstream, UpstreamError, failure

TRENDING_PROBE_USER = "dashboard-probe"
"""A user id without events: the recommender answers it with its trending items."""


async def status(upstreams: dict[str, Upstream]) -> dict[str, Any]:
    """Each service's /health (model version, counts) or why it cannot be reached."""

    async def one(upstream: Upstream) -> dict[str, Any]:
        try:
            health = await upstream.get_json("/health")
        except UpstreamError as exc:
            return failure(upstream, exc)
        return {**health, "service": upstream.key, "url": upstream.base_url, "available": True}

    results = await asyncio.gather(*(one(u) for u in upstreams.values()))
    return {"services": list(results)}


def _latest_buckets(points: list[dict[str, Any]], buckets: int) -> list[dict[str, Any]]:
    starts = sorted({p["bucket_start"] for p in points})[-buckets:]
    keep = set(starts)
    return [p for p in points if p["bucket_start"] in keep]


def _overall(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    cells: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for p in points:
        cells[p["bucket_start"]][0] += p["total"]
        cells[p["bucket_start"]][1] += p["negative"]
    return [
        {
            "bucket_start": start,
            "total": total,
            "negative": negative,
            "negative_share": round(negative / total, 4) if total else 0.0,
        }
        for start, (total, negative) in sorted(cells.items())
    ]


async def news(
    upstream: Upstream, bucket_minutes: int, buckets: int, alerts: int
) -> dict[str, Any]:
    """Negative share per topic over the latest buckets, all topics together, recent alerts."""
    try:
        health, trends, recent = await asyncio.gather(
            upstream.get_json("/health"),
            upstream.get_json("/trends", bucket_minutes=bucket_minutes),
            upstream.get_json("/alerts", limit=alerts),
        )
    except UpstreamError as exc:
        return failure(upstream, exc)
    points = _latest_buckets(trends.get("points", []), buckets)
    return {
        "service": upstream.key,
        "url": upstream.base_url,
        "available": True,
        "model": health.get("model"),
        "consumer": health.get("consumer"),
        "observations": health.get("observations"),
        "alert_count": health.get("alerts"),
        "bucket_minutes": trends.get("bucket_minutes", bucket_minutes),
        "points": points,
        "overall": _overall(points),
        "alerts": recent.get("alerts", []),
        "png_url": f"{upstream.base_url}/trends?format=png&bucket_minutes={bucket_minutes}",
    }


async def _tenant(upstream: Upstream, tenant: str, entries: int) -> dict[str, Any]:
    try:
        info, handoffs, kb = await asyncio.gather(
            upstream.get_json(f"/v1/tenants/{tenant}"),
            upstream.get_json("/v1/handoffs", tenant=tenant),
            upstream.get_json(f"/v1/tenants/{tenant}/entries", limit=entries),
        )
    except UpstreamError as exc:
        if exc.unavailable:
            raise
        return {"tenant": tenant, "error": exc.message}
    handoffs = sorted(handoffs, key=lambda h: (h["status"] != "open", -h["id"]))
    return {
        "tenant": tenant,
        "name": info.get("name"),
        "entries": info.get("entries"),
        "indexed": info.get("indexed"),
        "encoder": info.get("encoder"),
        "open_handoffs": sum(h["status"] == "open" for h in handoffs),
        "handoffs": handoffs,
        "kb": [
            {k: e.get(k) for k in ("id", "kind", "title", "heading", "category", "url")} for e in kb
        ],
    }


async def support(upstream: Upstream, tenants: list[str], entries: int) -> dict[str, Any]:
    """Per tenant: the handoff queue (open first), the knowledge base's size and first entries.
    No ``tenants``: every tenant the support bot has."""
    try:
        if not tenants:
            listed = await upstream.get_json("/v1/tenants")
            tenants = [t["tenant"] for t in listed]
        rows = await asyncio.gather(*(_tenant(upstream, t, entries) for t in tenants))
    except UpstreamError as exc:
        return failure(upstream, exc)
    return {"service": upstream.key, "url": upstream.base_url, "available": True, "tenants": rows}


async def reply(
    upstream: Upstream, handoff_id: int, tenant: str, text: str, close: bool
) -> dict[str, Any]:
    """A staff answer to a handoff (shown in the customer's widget)."""
    body = {"tenant": tenant, "text": text, "close": close}
    result: dict[str, Any] = await upstream.post_json(f"/v1/handoffs/{handoff_id}/reply", body)
    return result


def http_summary(metrics_text: str) -> list[dict[str, Any]]:
    """Per route: requests, 4xx/5xx answers, mean and p95 latency (from the histogram)."""
    routes: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"requests": 0, "client_errors": 0, "server_errors": 0, "buckets": {}}
    )
    for family in text_string_to_metric_families(metrics_text):
        for sample in family.samples:
            route = sample.labels.get("route")
            if route is None:
                continue
            row = routes[route]
            if sample.name == "http_requests_total":
                code = sample.labels.get("status", "")
                row["requests"] += int(sample.value)
                if code.startswith("4"):
                    row["client_errors"] += int(sample.value)
                elif code.startswith("5"):
                    row["server_errors"] += int(sample.value)
            elif sample.name == "http_request_seconds_sum":
                row["seconds"] = sample.value
            elif sample.name == "http_request_seconds_count":
                row["count"] = sample.value
            elif sample.name == "http_request_seconds_bucket":
                row["buckets"][float(sample.labels["le"])] = sample.value
    out = []
    for route, row in sorted(routes.items(), key=lambda kv: -kv[1]["requests"]):
        count = row.get("count") or 0
        p95 = None
        for le, cumulative in sorted(row["buckets"].items()):
            if count and cumulative >= 0.95 * count:
                p95 = le
                break
        out.append(
            {
                "route": route,
                "requests": row["requests"],
                "client_errors": row["client_errors"],
                "server_errors": row["server_errors"],
                "mean_ms": round(1000 * row.get("seconds", 0.0) / count, 2) if count else None,
                "p95_ms_at_most": None if p95 is None else round(1000 * p95, 1),
            }
        )
    return out


async def recommender(upstream: Upstream, k: int) -> dict[str, Any]:
    """Catalog and user counts, the index, the encoder, trending items, HTTP figures."""
    try:
        health, metrics, trending = await asyncio.gather(
            upstream.get_json("/health"),
            upstream.get_text("/metrics"),
            upstream.get_json(f"/v1/users/{TRENDING_PROBE_USER}/recommendations", k=k),
        )
    except UpstreamError as exc:
        return failure(upstream, exc)
    return {
        "service": upstream.key,
        "url": upstream.base_url,
        "available": True,
        "items": health.get("items"),
        "users": health.get("users"),
        "index": health.get("index"),
        "model_version": health.get("model_version"),
        "trending": {
            "strategy": trending.get("strategy"),
            "items": trending.get("items", []),
        },
        "http": http_summary(metrics),
    }
