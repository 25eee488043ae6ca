"""Thin ops routes: recent alerts and negative-share trends (/health and /metrics come from
``verticals.serving.create_app``)."""

from __future__ import annotations

import io
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import Response

from verticals.news_monitor.store import NewsStore
from verticals.serving.types import IsoDatetime

router = APIRouter(tags=["news"])


def get_store(request: Request) -> NewsStore:
    store: NewsStore = request.app.state.store
    return store


Store = Annotated[NewsStore, Depends(get_store)]


@router.get("/alerts")
def alerts(
    store: Store,
    key: Annotated[str | None, Query(max_length=300, description="e.g. ticker:HLVB")] = None,
    rule: Annotated[str | None, Query(max_length=64)] = None,
    since: Annotated[IsoDatetime | None, Query(description="window end at or after")] = None,
    min_score: Annotated[float | None, Query()] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    """Recent alerts, newest window first."""
    rows = store.alerts(key, rule, since, min_score, limit)
    return {"count": len(rows), "alerts": rows}


@router.get(
    "/trends",
    response_model=None,
    responses={200: {"content": {"image/png": {}}, "description": "JSON points, or a PNG chart"}},
)
def trends(
    request: Request,
    store: Store,
    topic: Annotated[str | None, Query(max_length=64)] = None,
    bucket_minutes: Annotated[int, Query(ge=1, le=1440)] = 15,
    since: Annotated[IsoDatetime | None, Query()] = None,
    format: Annotated[Literal["json", "png"], Query()] = "json",
) -> dict[str, Any] | Response:
    """Negative share per topic over event time, as JSON or a PNG chart."""
    rows = store.trends(bucket_minutes * 60, topic, since.timestamp() if since else None)
    if format == "png":
        return Response(render_png(rows), media_type="image/png")
    return {"bucket_minutes": bucket_minutes, "points": rows}


def render_png(rows: list[dict[str, Any]]) -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    series: dict[str, tuple[list[datetime], list[float]]] = {}
    for row in rows:
        xs, ys = series.setdefault(row["topic"], ([], []))
        xs.append(datetime.fromisoformat(row["bucket_start"]))
        ys.append(row["negative_share"])
    for topic, (xs, ys) in sorted(series.items()):
        ax.plot(xs, ys, marker=".", label=topic)  # type: ignore[arg-type]
    ax.set_ylim(0, 1)
    ax.set_ylabel("negative share")
    ax.set_title("Negative share per topic (event time)")
    if series:
        ax.legend(fontsize=7, ncol=2, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no data yet", ha="center", transform=ax.transAxes)
    fig.autofmt_xdate()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", bbox_inches="tight")
    plt.close(fig)
    return buffer.getvalue()
