"""Assembly: settings -> store, default model, monitor and the FastAPI app."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
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
    from verticals.core.inference import Form
    from verticals.core.registry import ModelRegistry

log = logging.getLogger("verticals.news_monitor")


def load_model(settings: NewsSettings, registry: ModelRegistry | None = None) -> Any:
    """The task's current model in ``registry`` (default: the configured one); the shipped
    default is imported into it first."""
    from verticals.core.inference import Predictor
    from verticals.core.registry import ModelRegistry

    registry = registry or ModelRegistry.default()
    if (settings.model_dir / "card.json").exists():
        ensure_shipped(registry, settings.model_dir)
    form = model_form(settings.model_form, registry.card(TASK))
    log.info("news model %s in form %s", registry.current_version(TASK), form)
    return Predictor.from_registry(
        TASK, registry=registry, batch_size=settings.max_batch, form=form
    )


def ensure_shipped(registry: ModelRegistry, model_dir: Path) -> int:
    """Import the shipped default when the task has no model, and again when the checkout ships
    a newer default than the current version, as long as that current version is itself an
    imported default (a model the user trained and promoted is never replaced)."""
    current = registry.current_version(TASK)
    if current is None:
        return registry.ensure(model_dir)
    shipped = json.loads((model_dir / "card.json").read_text())
    card = registry.card(TASK)
    known = {c.get("created_at") for c in registry.cards(TASK)}
    if not card.get("imported_from") or shipped.get("created_at") in known:
        return current
    version = registry.import_version(model_dir, first_becomes_current=False)
    registry.promote(TASK, version, force=True)
    log.info("news model: the shipped default replaced v%s by v%s", current, version)
    return version


INT8_MAX_LOSS_POINTS = 1.0


def model_form(setting: str, card: dict[str, Any]) -> Form:
    """The core's form for a setting; ``auto`` trusts the card's real-data measurement of the
    int8 form (``bench/news_model.py --record``) and falls back to fp32 without one."""
    if setting == "auto":
        loss = card.get("real_eval", {}).get("int8_macro_f1_loss_points")
        setting = "int8" if loss is not None and loss < INT8_MAX_LOSS_POINTS else "fp32"
    return "onnx-int8" if setting == "int8" else "torch"


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
