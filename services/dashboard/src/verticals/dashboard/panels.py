"""What each section of the page shows, gathered from the services over HTTP (no web framework
here). Each panel is a JSON body with ``available`` and, when something failed, ``error``."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

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


RANGES = {1: 5, 6: 15, 24: 60}
"""The chart's time ranges (hours) and the bucket width each is drawn with (minutes)."""


def _within_hours(points: list[dict[str, Any]], hours: int) -> list[dict[str, Any]]:
    """The points of the last ``hours`` before the newest bucket (event time: a replayed or
    delayed feed shows its own latest hours, not an empty 'now')."""
    if not points:
        return []
    newest = max(datetime.fromisoformat(p["bucket_start"]) for p in points)
    since = newest - timedelta(hours=hours)
    return [p for p in points if datetime.fromisoformat(p["bucket_start"]) > since]


def _topics_by_volume(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    volume: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for p in points:
        volume[p["topic"]][0] += p["total"]
        volume[p["topic"]][1] += p["negative"]
    return [
        {"topic": topic, "total": total, "negative": negative}
        for topic, (total, negative) in sorted(volume.items(), key=lambda kv: (-kv[1][0], kv[0]))
    ]


async def news(
    upstream: Upstream, bucket_minutes: int, buckets: int, alerts: int, hours: int | None = None
) -> dict[str, Any]:
    """Negative share per topic over the latest buckets (or the latest ``hours``, with that
    range's bucket width), all topics together, the topics by volume, recent alerts."""
    if hours is not None:
        bucket_minutes = RANGES[hours]
    try:
        health, trends, recent = await asyncio.gather(
            upstream.get_json("/health"),
            upstream.get_json("/trends", bucket_minutes=bucket_minutes),
            upstream.get_json("/alerts", limit=alerts),
        )
    except UpstreamError as exc:
        return failure(upstream, exc)
    everything = trends.get("points", [])
    points = _within_hours(everything, hours) if hours else _latest_buckets(everything, buckets)
    return {
        "service": upstream.key,
        "url": upstream.base_url,
        "available": True,
        "model": health.get("model"),
        "consumer": health.get("consumer"),
        "observations": health.get("observations"),
        "alert_count": health.get("alerts"),
        "bucket_minutes": trends.get("bucket_minutes", bucket_minutes),
        "hours": hours,
        "topics": _topics_by_volume(points),
        "points": points,
        "overall": _overall(points),
        "alerts": recent.get("alerts", []),
        "png_url": f"{upstream.base_url}/trends?format=png&bucket_minutes={bucket_minutes}",
    }


async def _tenant(upstream: Upstream, tenant: str, entries: int) -> dict[str, Any]:
    try:
        info, handoffs, kb = await asyncio.gather(
            upstream.get_json(f"/v1/tenants/{tenant}"),
            upstream.get_json("/v1/handoffs", tenant=tenant, transcript="true"),
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
    """Per tenant: the handoff queue (open first, each with its conversation), the knowledge
    base's size and first entries.
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


# ---- the knowledge base: search, edit, delete, upload, test a question ----------------------
ENTRY_FIELDS = ("id", "kind", "title", "heading", "body", "category", "url", "source")
KB_SCAN = 1000
"""Entries read for a search (the support bot's page size): the search looks at this many."""


def _matches(entry: dict[str, Any], words: list[str]) -> bool:
    text = " ".join(str(entry.get(k) or "") for k in ("id", "title", "heading", "body", "category"))
    text = text.lower()
    return all(w in text for w in words)


async def kb_entries(upstream: Upstream, tenant: str, query: str, limit: int) -> dict[str, Any]:
    """The tenant's entries whose id, question, heading, answer or category hold every word of
    ``query`` (all entries when it is empty), the first ``limit`` of them."""
    rows = await upstream.get_json(f"/v1/tenants/{tenant}/entries", limit=KB_SCAN)
    words = query.lower().split()
    found = [e for e in rows if _matches(e, words)]
    return {
        "tenant": tenant,
        "query": query,
        "scanned": len(rows),
        "matches": len(found),
        "entries": [{k: e.get(k) for k in ENTRY_FIELDS} for e in found[:limit]],
    }


async def kb_save(upstream: Upstream, tenant: str, entry: dict[str, Any]) -> dict[str, Any]:
    """Create or replace one FAQ entry (the support bot re-indexes it)."""
    body = {"entries": [entry]}
    result: dict[str, Any] = await upstream.post_json(f"/v1/tenants/{tenant}/faq", body)
    return result


async def kb_delete(upstream: Upstream, tenant: str, entry_id: str) -> dict[str, Any]:
    path = f"/v1/tenants/{tenant}/entries/{quote(entry_id, safe='')}"
    result: dict[str, Any] = await upstream.delete(path)
    return result


async def kb_upload(
    upstream: Upstream, tenant: str, kind: str, name: str, content: bytes
) -> dict[str, Any]:
    """An FAQ file (``csv``, ``jsonl``) or a document (``markdown``, ``html``, ``text``: its
    passages are indexed under the file's name)."""
    if kind in ("csv", "jsonl"):
        result: dict[str, Any] = await upstream.post_content(
            f"/v1/tenants/{tenant}/faq/import", content, "text/plain", format=kind
        )
        return result
    stem = name.rsplit(".", 1)[0] if "." in name else name
    doc_id = "".join(c if c.isalnum() or c in "-_" else "-" for c in stem)[:100] or "document"
    body = {
        "id": doc_id,
        "content": content.decode("utf-8"),
        "format": kind,
        "title": stem,
    }
    result = await upstream.post_json(f"/v1/tenants/{tenant}/documents", body)
    return {**result, "id": doc_id}


async def kb_search(upstream: Upstream, tenant: str, question: str, k: int) -> dict[str, Any]:
    """What the bot would answer: candidates, scores and the decision."""
    body = {"question": question, "k": k}
    result: dict[str, Any] = await upstream.post_json(f"/v1/tenants/{tenant}/search", body)
    return result
