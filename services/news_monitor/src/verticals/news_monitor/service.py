"""Assembly: settings -> store, default model, monitor and the FastAPI app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI
from prometheus_client import CollectorRegistry

from verticals.news_monitor import TASK
from verticals.news_monitor.alerts import RulesConfig
from verticals.news_monitor.consumer import NewsMonitor, ensure_topics
from verticals.news_monitor.metrics import MonitorMetrics
from verticals.news_monitor.settings import NewsSettings
from verticals.news_monitor.store import NewsStore

if TYPE_CHECKING:
    from verticals.core.registry import ModelRegistry

log = logging.getLogger("verticals.news_monitor")


def load_model(settings: NewsSettings, registry: ModelRegistry | None = None) -> Any:
    """The task's current model in ``registry`` (default: the configured one); the shipped
    default is imported into it first."""
    from verticals.core.inference import Predictor
    from verticals.core.registry import ModelRegistry

    registry = registry or ModelRegistry.default()
    if (settings.model_dir / "card.json").exists():
        registry.ensure(settings.model_dir)
    return Predictor.from_registry(TASK, registry=registry, batch_size=settings.max_batch)


def build_monitor(
    settings: NewsSettings,
    model: Any = None,
    metrics: MonitorMetrics | None = None,
    store: NewsStore | None = None,
    client_id: str | None = None,
) -> NewsMonitor:
    return NewsMonitor(
        settings,
        model if model is not None else load_model(settings),
        store or NewsStore(settings.sqlalchemy_url("news_monitor")),
        RulesConfig.from_yaml(settings.rules_path),
        metrics,
        client_id,
    )


def build_app(settings: NewsSettings, model: Any = None, consume: bool = True) -> FastAPI:
    """The ops API; with ``consume`` it also runs the monitor in a background thread."""
    from verticals.news_monitor.api import router
    from verticals.serving.app import create_app

    registry = CollectorRegistry()
    metrics = MonitorMetrics(registry)
    store = NewsStore(settings.sqlalchemy_url("news_monitor"))
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
