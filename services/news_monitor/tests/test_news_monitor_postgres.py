"""The monitor's store on a real local PostgreSQL server: windows rebuilt after a restart,
alerts deduplicated by their deterministic ids, and two consumers of one group writing the
enriched records' observations into one database."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from pydantic import ValidationError

from verticals.news_monitor.alerts import AlertEngine, Observation, keys_for
from verticals.news_monitor.api import build_monitor
from verticals.news_monitor.consumer import ensure_topics, load_engine
from verticals.news_monitor.feed import produce
from verticals.news_monitor.schemas import NewsItem
from verticals.news_monitor.settings import NewsSettings
from verticals.news_monitor.store import Store
from verticals.news_monitor.testing import SMALL_RULES, news, output_ids, topic_values, wait_for


def feed() -> list[Observation]:
    """Two items a minute, about 25% negative; after an hour ten minutes of bad news on X."""
    rng = random.Random(1)
    out = [
        Observation(f"n{i}", i * 30.0, (f"topic:{rng.choice(['markets', 'macro'])}",),
                    rng.random() < 0.25, 0.5, "t")
        for i in range(240)
    ]  # fmt: skip
    out += [
        Observation(f"s{j}", 3601 + j * 20.0, ("topic:regulation_legal", "ticker:X"), True, 0.9,
                    "bad \x00 news")
        for j in range(30)
    ]  # fmt: skip
    return sorted(out, key=lambda o: (o.event_ts, o.id))


def consume(store: Store, engine: AlertEngine, batch: list[Observation]) -> list[str]:
    """What the consumer does with a batch: skip known ids, process, save in one transaction."""
    known = store.known_ids([o.id for o in batch])
    alerts = engine.process([o for o in batch if o.id not in known])
    rows = [(o, o.keys[0].split(":")[1], "negative" if o.negative else "neutral") for o in batch]
    fresh = store.save_batch(rows, engine.export_state(only_dirty=True), alerts)
    engine.dirty.clear()
    return fresh


def test_restart_rebuilds_windows_and_alert_ids_deduplicate(postgres_url: str) -> None:
    obs = feed()
    whole = [a.id for a in AlertEngine(SMALL_RULES).process(obs)]
    assert len(whole) == 2
    cut = next(i for i, o in enumerate(obs) if o.id == "s5")  # mid-spike
    store = Store(postgres_url)
    assert store.db.dialect == "postgresql"
    engine = load_engine(SMALL_RULES, store)
    fresh = []
    for start in range(0, cut, 50):
        fresh += consume(store, engine, obs[start : min(start + 50, cut)])
    store.db.dispose()

    # a new process (or another replica taking the partitions over) on the same database
    store = Store(postgres_url)
    engine = load_engine(SMALL_RULES, store)
    for start in range(cut - 10, len(obs), 50):  # the redelivery overlaps the cut
        fresh += consume(store, engine, obs[start : start + 50])
    assert fresh == whole
    assert store.counts() == {"observations": len(obs), "alerts": 2}

    # the same alerts again (a replica's copy): their ids are already stored
    again = AlertEngine(SMALL_RULES).process(obs)
    assert store.save_batch([], AlertEngine(SMALL_RULES).export_state(), again) == []
    assert store.counts()["alerts"] == 2

    assert sorted(a["id"] for a in store.unpublished_alerts()) == sorted(whole)
    store.mark_published(whole)
    store.record_webhook(whole[0], delivered=False)
    store.record_webhook(whole[0], delivered=True)
    (x,) = store.alerts(key="ticker:X")
    assert x["published"] and x["webhook_delivered"] == (x["id"] == whole[0])
    assert x["evidence"]
    titles = {o.title for o in store.observations_since(3600)}
    assert "bad \ufffd news" in titles and not any("\x00" in t for t in titles)
    assert store.unpublished_alerts() == []
    trend = store.trends(300, topic="regulation_legal")
    assert sum(t["total"] for t in trend) == 30 and trend[0]["negative_share"] == 1.0
    store.db.dispose()


def test_two_consumers_write_one_database(
    settings: NewsSettings, model: Any, postgres_url: str
) -> None:
    settings = settings.model_copy(update={"database_url": postgres_url})
    ensure_topics(settings)
    monitors = [build_monitor(settings, model, client_id=c) for c in ("c1", "c2")]
    for monitor in monitors:
        monitor.start()
    try:
        wait_for(lambda: all(m.status["assigned"] for m in monitors), 60)
        produce(settings, news(60, prefix="pg"))
        wait_for(lambda: len(set(output_ids(settings))) >= 60, 90, every=0.5)
        store = Store(postgres_url)
        wait_for(lambda: store.counts()["observations"] >= 60, 30)
    finally:
        for monitor in monitors:
            monitor.stop()
    assert all(m.metrics.messages_in._value.get() > 0 for m in monitors)
    assert store.counts()["observations"] == 60
    output = topic_values(settings, settings.output_topic)
    records = {r["id"]: r for r in (json.loads(m.value) for m in output)}
    stored = {o.id: o for o in store.observations_since(0)}
    assert stored.keys() == records.keys()
    for item_id, record in records.items():
        assert stored[item_id].negative == (record["sentiment"]["label"] == "negative")
    store.db.dispose()


def test_the_longest_entity_key_fits_and_a_longer_one_is_rejected(postgres_url: str) -> None:
    item = {"id": "e1", "published_at": "2026-03-02T09:00:00Z", "source": "s", "title": "t"}
    with pytest.raises(ValidationError, match="entity over 200 characters"):
        NewsItem(**item, entities=["E" * 201])
    longest = NewsItem(**item, entities=["E" * 200])
    keys = keys_for("markets", [], longest.entities)
    store = Store(postgres_url)
    rules = SMALL_RULES.model_copy(
        update={"rules": [SMALL_RULES.rules[0].model_copy(update={"scopes": ["topic", "entity"]})]}
    )
    engine = AlertEngine(rules)
    batch = [Observation(f"o{i}", i * 30.0, keys, True, 0.9, "t") for i in range(20)]
    consume(store, engine, batch)
    state = store.load_engine_state()
    assert {key for _, key, _ in state["keys"]} >= {k for k in keys if k.startswith("entity:")}
    store.db.dispose()
