"""Tables and queries: classified observations, alert-engine state, alerts.

One transaction per batch (``save_batch``) holds the batch's observations, the engine state and
the new alerts; offsets are committed to Kafka only after it, so a restart rebuilds the windows
from here and a redelivered batch is recognised by its item ids.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Boolean, Float, Integer, String, Text, func, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from verticals.news_monitor.alerts import Observation
from verticals.news_monitor.schemas import Alert
from verticals.serving.database import Base, Database, insert_for


class NewsBase(Base):
    __abstract__ = True


class ObservationRow(NewsBase):
    __tablename__ = "news_observations"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    event_ts: Mapped[float] = mapped_column(Float, index=True)
    topic: Mapped[str] = mapped_column(String(64), index=True)
    keys: Mapped[str] = mapped_column(Text)
    negative: Mapped[bool] = mapped_column(Boolean)
    negative_probability: Mapped[float] = mapped_column(Float)
    sentiment: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(Text)


class EngineStateRow(NewsBase):
    __tablename__ = "news_engine_state"

    rule: Mapped[str] = mapped_column(String(64), primary_key=True)
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    state: Mapped[str] = mapped_column(Text)


class AlertRow(NewsBase):
    __tablename__ = "news_alerts"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    rule: Mapped[str] = mapped_column(String(64), index=True)
    key: Mapped[str] = mapped_column(String(300), index=True)
    window_end: Mapped[float] = mapped_column(Float, index=True)
    score: Mapped[float] = mapped_column(Float)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[float] = mapped_column(Float, index=True)
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0)
    webhook_delivered: Mapped[bool] = mapped_column(Boolean, default=False)


WATERMARK = ("_engine", "_watermark")


class Store:
    def __init__(self, url: str) -> None:
        self.db = Database(url)
        self.db.create_all(NewsBase)

    # ---- batch ------------------------------------------------------------------------------

    def save_batch(
        self,
        observations: list[tuple[Observation, str, str]],
        state: dict[str, Any],
        alerts: list[Alert],
    ) -> list[str]:
        """Store new observations (with topic, sentiment), engine state and alerts in one
        transaction; returns the ids of alerts that were not stored before. Ids already stored
        (a redelivery, or another replica's copy) are skipped by ``ON CONFLICT DO NOTHING``."""
        with self.db.session() as s:
            obs_rows = [
                {
                    "id": obs.id,
                    "event_ts": obs.event_ts,
                    "topic": topic,
                    "keys": json.dumps(obs.keys),
                    "negative": obs.negative,
                    "negative_probability": obs.negative_probability,
                    "sentiment": sentiment,
                    "title": obs.title,
                }
                for obs, topic, sentiment in observations
            ]
            if obs_rows:
                s.execute(insert_for(s, ObservationRow).on_conflict_do_nothing(), obs_rows)
            rows = [
                {"rule": rule, "key": key, "state": json.dumps(values)}
                for rule, key, values in state["keys"]
            ]
            rows.append(
                {
                    "rule": WATERMARK[0],
                    "key": WATERMARK[1],
                    "state": json.dumps(
                        {"max_event_ts": state["max_event_ts"], "sources": state["sources"]}
                    ),
                }
            )
            self._upsert_state(s, rows)
            alert_rows = [
                {
                    "id": alert.id,
                    "rule": alert.rule,
                    "key": alert.key,
                    "window_end": alert.window_end.timestamp(),
                    "score": alert.score,
                    "payload": json.dumps(alert.to_json()),
                    "created_at": alert.created_at.timestamp(),
                    "published": False,
                    "webhook_attempts": 0,
                    "webhook_delivered": False,
                }
                for alert in alerts
            ]
            if not alert_rows:
                return []
            stmt = insert_for(s, AlertRow).on_conflict_do_nothing().returning(AlertRow.id)
            stored = set(s.scalars(stmt, alert_rows))
        return [i for i in dict.fromkeys(a.id for a in alerts) if i in stored]

    def _upsert_state(self, session: Session, rows: list[dict[str, str]]) -> None:
        """One statement for all keys; rows in key order, so concurrent replicas lock them in
        the same order (no deadlock)."""
        latest = {(r["rule"], r["key"]): r for r in rows}
        stmt = insert_for(session, EngineStateRow).values([latest[k] for k in sorted(latest)])
        session.execute(
            stmt.on_conflict_do_update(
                index_elements=["rule", "key"], set_={"state": stmt.excluded.state}
            )
        )

    def known_ids(self, ids: list[str]) -> set[str]:
        """Which of these items were stored by an earlier batch (redeliveries)."""
        if not ids:
            return set()
        with self.db.session() as s:
            return set(s.scalars(select(ObservationRow.id).where(ObservationRow.id.in_(ids))))

    def load_engine_state(self) -> dict[str, Any]:
        with self.db.session() as s:
            rows = s.scalars(select(EngineStateRow)).all()
        state: dict[str, Any] = {"max_event_ts": None, "sources": {}, "keys": []}
        for row in rows:
            if (row.rule, row.key) == WATERMARK:
                mark = json.loads(row.state)
                state["max_event_ts"] = mark["max_event_ts"]
                state["sources"] = mark.get("sources") or {}
            else:
                state["keys"].append([row.rule, row.key, json.loads(row.state)])
        return state

    def latest_event_ts(self, limit: float) -> float | None:
        """The latest stored event time not after ``limit``."""
        with self.db.session() as s:
            latest = s.scalar(
                select(func.max(ObservationRow.event_ts)).where(ObservationRow.event_ts <= limit)
            )
        return None if latest is None else float(latest)

    def observations_since(self, ts: float) -> list[Observation]:
        with self.db.session() as s:
            rows = s.scalars(
                select(ObservationRow)
                .where(ObservationRow.event_ts >= ts)
                .order_by(ObservationRow.event_ts, ObservationRow.id)
            ).all()
        return [
            Observation(
                r.id,
                r.event_ts,
                tuple(json.loads(r.keys)),
                r.negative,
                r.negative_probability,
                r.title,
            )
            for r in rows
        ]

    # ---- alerts -----------------------------------------------------------------------------

    def unpublished_alerts(self, limit: int = 500) -> list[dict[str, Any]]:
        with self.db.session() as s:
            rows = s.scalars(
                select(AlertRow)
                .where(AlertRow.published.is_(False))
                .order_by(AlertRow.created_at, AlertRow.id)
                .limit(limit)
            ).all()
        return [json.loads(r.payload) for r in rows]

    def undelivered_alerts(self, limit: int = 100) -> list[dict[str, Any]]:
        with self.db.session() as s:
            rows = s.scalars(
                select(AlertRow)
                .where(AlertRow.webhook_delivered.is_(False), AlertRow.published.is_(True))
                .order_by(AlertRow.created_at.desc())
                .limit(limit)
            ).all()
        return [json.loads(r.payload) for r in rows]

    def mark_published(self, ids: list[str]) -> None:
        if ids:
            with self.db.session() as s:
                s.execute(update(AlertRow).where(AlertRow.id.in_(ids)).values(published=True))

    def record_webhook(self, alert_id: str, delivered: bool) -> None:
        with self.db.session() as s:
            s.execute(
                update(AlertRow)
                .where(AlertRow.id == alert_id)
                .values(webhook_attempts=AlertRow.webhook_attempts + 1, webhook_delivered=delivered)
            )

    def alerts(
        self,
        key: str | None = None,
        rule: str | None = None,
        since: datetime | None = None,
        min_score: float | None = None,
        limit: int = 50,
    ) -> list[dict[str, Any]]:
        query = select(AlertRow)
        if key:
            query = query.where(AlertRow.key == key)
        if rule:
            query = query.where(AlertRow.rule == rule)
        if since:
            moment = since if since.tzinfo else since.replace(tzinfo=UTC)
            query = query.where(AlertRow.window_end >= moment.timestamp())
        if min_score is not None:
            query = query.where(AlertRow.score >= min_score)
        query = query.order_by(AlertRow.window_end.desc(), AlertRow.id).limit(limit)
        with self.db.session() as s:
            rows = s.scalars(query).all()
        return [
            {
                **json.loads(r.payload),
                "published": r.published,
                "webhook_delivered": r.webhook_delivered,
                "webhook_attempts": r.webhook_attempts,
            }
            for r in rows
        ]

    # ---- trends -----------------------------------------------------------------------------

    def trends(
        self, bucket_seconds: int, topic: str | None = None, since: float | None = None
    ) -> list[dict[str, Any]]:
        """Per topic and event-time bucket: items, negatives and the negative share."""
        query = select(ObservationRow.topic, ObservationRow.event_ts, ObservationRow.negative)
        if topic:
            query = query.where(ObservationRow.topic == topic)
        if since is not None:
            query = query.where(ObservationRow.event_ts >= since)
        cells: dict[tuple[str, int], list[int]] = {}
        with self.db.session() as s:
            for t, ts, neg in s.execute(query):
                cell = cells.setdefault((t, int(ts // bucket_seconds)), [0, 0])
                cell[0] += 1
                cell[1] += int(neg)
        return [
            {
                "topic": t,
                "bucket_start": datetime.fromtimestamp(b * bucket_seconds, UTC).isoformat(),
                "total": total,
                "negative": neg,
                "negative_share": round(neg / total, 4),
            }
            for (t, b), (total, neg) in sorted(cells.items(), key=lambda kv: (kv[0][1], kv[0][0]))
        ]

    def counts(self) -> dict[str, int]:
        from sqlalchemy import func

        with self.db.session() as s:
            return {
                "observations": int(
                    s.scalar(select(func.count()).select_from(ObservationRow)) or 0
                ),
                "alerts": int(s.scalar(select(func.count()).select_from(AlertRow)) or 0),
            }
