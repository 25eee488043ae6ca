"""The ops API: recent alerts and negative-share trends (/health and /metrics come from
``verticals.serving.create_app``), and ``build_app``: settings -> store, model, monitor, app."""

from __future__ import annotations

import io
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.responses import Response
from prometheus_client import CollectorRegistry

from verticals.news_monitor.alerts import RulesConfig
from verticals.news_monitor.consumer import NewsMonitor, ensure_topics
from verticals.news_monitor.metrics import MonitorMetrics
from verticals.news_monitor.pipeline import load_model
from verticals.news_monitor.settings import NewsSettings
from verticals.news_monitor.store import Store
from verticals.serving.types import IsoDatetime

router = APIRouter(tags=["news"])


def get_store(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


Stored = Annotated[Store, Depends(get_store)]


@router.get("/alerts")
def alerts(
    store: Stored,
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
    store: Stored,
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


def build_monitor(
    settings: NewsSettings,
    model: Any = None,
    metrics: MonitorMetrics | None = None,
    store: Store | None = None,
    client_id: str | None = None,
) -> NewsMonitor:
    return NewsMonitor(
        settings,
        model if model is not None else load_model(settings),
        store or Store(settings.sqlalchemy_url("news_monitor")),
        RulesConfig.from_yaml(settings.rules_path),
        metrics,
        client_id,
    )


def build_app(settings: NewsSettings, model: Any = None, consume: bool = True) -> FastAPI:
    """The ops API; with ``consume`` it also runs the monitor in a background thread."""
    from verticals.serving.app import create_app

    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry)
    store = Store(settings.sqlalchemy_url("news_monitor"))
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if consume:
            ensure_topics(settings)
            monitor = build_monitor(settings, model, metrics, store)
            app.state.monitor = state["monitor"] = monitor
            monitor.start()
        try:
            yield
        finally:
            if "monitor" in state:
                state["monitor"].stop()

    def health() -> dict[str, Any]:
        monitor = state.get("monitor")
        info: dict[str, Any] = {"bootstrap": settings.bootstrap, **store.counts()}
        if monitor is not None:
            info["consumer"] = monitor.status
            info["model"] = monitor.model.version
            info["webhook_queue"] = monitor.sink.pending()
        return info

    app = create_app(
        "news_monitor",
        settings,
        [router],
        lifespan=lifespan,
        registry=registry,
        health=health,
        description="Financial news monitor: sentiment + topic stream with alerts",
    )
    for noisy in ("kafka", "httpx"):  # client chatter (connections, rebalances) at INFO
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app.state.store = store
    app.state.metrics = metrics
    return app
