"""Event-time sliding windows with an EWMA + z-score baseline per key (no I/O inside).

Keys: ``topic:<predicted topic>``, ``ticker:<T>`` per ticker, ``entity:<name>`` for items without
tickers. Time is cut into buckets of ``bucket_seconds``; a window is the last ``window_seconds``
of buckets, evaluated once, when its last bucket closes (the watermark, the highest event time
seen minus ``allowed_lateness_seconds``, passed its end). Per (rule, key) the baseline is an EWMA
mean and variance of the metric over the key's earlier windows, starting from a prior, so new
keys are compared with a typical key. An alert fires when the window has enough volume and
negatives, its z-score (against the larger of the EWMA spread and the window's own sampling
noise) clears the threshold, and the key is not cooling down.

Determinism: duplicates (same item id) are ignored, each window end is evaluated once, and the
alert id is a hash of (rule, key, window end): replaying the same input yields the same alerts.
The state (``export_state``) is stored with the batch, so a restart resumes where it stopped.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from verticals.news_monitor.schemas import Alert, Evidence

Scope = Literal["topic", "ticker", "entity"]


class RuleConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=r"^[a-z0-9_]+$")
    metric: Literal["negative_share", "negative_volume"] = "negative_share"
    scopes: list[Scope] = ["topic", "ticker", "entity"]
    window_seconds: int = Field(1800, gt=0)
    min_volume: int = Field(5, ge=1)
    min_negative: int = Field(3, ge=0)
    min_share: float = Field(0.0, ge=0, le=1)
    z_threshold: float = Field(3.0, gt=0)
    ewma_alpha: float = Field(0.2, gt=0, le=1)
    prior_mean: float = Field(0.3, ge=0)
    prior_std: float = Field(0.15, gt=0)
    min_std: float = Field(0.05, gt=0)
    cooldown_seconds: int = Field(3600, ge=0)
    evidence: int = Field(5, ge=0, le=50)


class RulesConfig(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    bucket_seconds: int = Field(300, gt=0)
    allowed_lateness_seconds: int = Field(60, ge=0)
    idle_source_seconds: float = Field(30.0, gt=0)
    """A partition silent this long (wall clock) stops holding the watermark back."""
    rules: list[RuleConfig] = Field(min_length=1)

    @model_validator(mode="after")
    def _check(self) -> RulesConfig:
        names = [r.name for r in self.rules]
        if len(set(names)) != len(names):
            raise ValueError("rule names must be unique")
        for rule in self.rules:
            if rule.window_seconds % self.bucket_seconds:
                raise ValueError(
                    f"{rule.name}: window_seconds must be a multiple of bucket_seconds"
                )
        return self

    @classmethod
    def from_yaml(cls, path: str | Path) -> RulesConfig:
        path = Path(path)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
            return cls.model_validate(raw)
        except FileNotFoundError as exc:
            raise ValueError(f"{path}: no such rules file") from exc
        except (yaml.YAMLError, ValidationError) as exc:
            raise ValueError(f"{path}: invalid alert rules: {exc}") from exc


@dataclass(frozen=True)
class Observation:
    """A classified item as the alert engine sees it."""

    id: str
    event_ts: float
    keys: tuple[str, ...]
    negative: bool
    negative_probability: float
    title: str
    source: str = ""
    """Where it came from (topic/partition): each source has its own watermark."""


def keys_for(topic: str, tickers: list[str], entities: list[str]) -> tuple[str, ...]:
    keys = [f"topic:{topic}"] + [f"ticker:{t}" for t in dict.fromkeys(tickers)]
    if not tickers:
        keys += [f"entity:{e}" for e in dict.fromkeys(entities)]
    return tuple(keys)


@dataclass
class _Bucket:
    total: int = 0
    negative: int = 0
    evidence: list[tuple[float, str, str, float]] = field(default_factory=list)
    """(negative probability, id, title, event ts), the strongest negatives of the bucket."""


@dataclass
class KeyState:
    mean: float
    var: float
    windows: int = 0
    last_end: int = -1
    """Bucket index of the last evaluated window end."""
    cooldown_until: int = -1
    lagged: list[list[float]] = field(default_factory=list)
    """(mean, var) after each of the last window-width evaluations: the window is compared with
    the baseline from before it began, so a rising spike is not absorbed into its own baseline."""


def alert_id(rule: str, key: str, end_bucket: int) -> str:
    return hashlib.sha1(f"{rule}|{key}|{end_bucket}".encode()).hexdigest()[:24]


def _ts(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


BASELINE_CLIP = 2.0
"""How many standard deviations away one window may count when it moves a key's baseline."""


class AlertEngine:
    def __init__(self, config: RulesConfig, state: dict[str, Any] | None = None) -> None:
        self.config = config
        self.bucket_s = config.bucket_seconds
        self.max_evidence = max((r.evidence for r in config.rules), default=0)
        self.buckets: dict[str, dict[int, _Bucket]] = {}
        self.seen: dict[str, int] = {}
        self.max_event_ts: float | None = None
        self.source_max: dict[str, float] = {}
        self.source_seen: dict[str, float] = {}
        self.expected: set[str] = set()
        self.first_item_at: float | None = None
        """When this process counted its first item: an expected source's silence runs from then."""
        self.states: dict[tuple[str, str], KeyState] = {}
        self.dirty: set[tuple[str, str]] = set()
        self.late = 0
        self.duplicates = 0
        if state:
            self.max_event_ts = state.get("max_event_ts")
            self.source_max = dict(state.get("sources") or {})
            for rule, key, values in state.get("keys", []):
                self.states[(rule, key)] = KeyState(**values)

    # ---- input -----------------------------------------------------------------------------

    def bucket_of(self, ts: float) -> int:
        return math.floor(ts / self.bucket_s)

    @property
    def watermark(self) -> float | None:
        """The lowest of the sources' highest event times (partitions are read at different
        speeds), leaving out sources that went idle while others kept going."""
        now = time.monotonic()
        idle = self.config.idle_source_seconds
        if not self.source_max:
            return None
        started = self.first_item_at if self.first_item_at is not None else now
        if now - started <= idle and any(s not in self.source_max for s in self.expected):
            return None  # an assigned source has sent nothing yet: it may still be behind
        active = [
            ts
            for source, ts in self.source_max.items()
            if now - self.source_seen.get(source, now) <= idle
        ]
        return min(active or self.source_max.values())

    def expect(self, sources: Iterable[str]) -> None:
        """Sources (assigned partitions) that hold the watermark back until their first item
        arrives, or for ``idle_source_seconds`` after the first item of any source: otherwise
        the first partition read would close every window before the others' items of the same
        time arrive."""
        self.expected.update(sources)

    @property
    def closed_bucket(self) -> int | None:
        """The last bucket no on-time event can still fall into."""
        mark = self.watermark
        if mark is None:
            return None
        return self.bucket_of(mark - self.config.allowed_lateness_seconds) - 1

    def add(self, obs: Observation, update_watermark: bool = True) -> bool:
        """Count one item; False for a duplicate id (a redelivery)."""
        if obs.id in self.seen:
            self.duplicates += 1
            return False
        bucket = self.bucket_of(obs.event_ts)
        self.seen[obs.id] = bucket
        closed = self.closed_bucket
        if closed is not None and bucket <= closed:
            self.late += 1
        for key in obs.keys:
            cell = self.buckets.setdefault(key, {}).setdefault(bucket, _Bucket())
            cell.total += 1
            if obs.negative:
                cell.negative += 1
                cell.evidence.append((obs.negative_probability, obs.id, obs.title, obs.event_ts))
                cell.evidence.sort(key=lambda e: (-e[0], e[1]))
                del cell.evidence[self.max_evidence :]
        if update_watermark:
            if self.max_event_ts is None or obs.event_ts > self.max_event_ts:
                self.max_event_ts = obs.event_ts
            if obs.event_ts > self.source_max.get(obs.source, -math.inf):
                self.source_max[obs.source] = obs.event_ts
            self.source_seen[obs.source] = time.monotonic()
            if self.first_item_at is None:
                self.first_item_at = self.source_seen[obs.source]
        return True

    def process(self, observations: list[Observation], now: datetime | None = None) -> list[Alert]:
        """Add items in order, evaluating whenever the watermark closes a bucket, so that the
        alerts depend only on the input order, never on how it was cut into batches."""
        alerts: list[Alert] = []
        for obs in observations:
            before = self.closed_bucket
            if self.add(obs) and self.closed_bucket != before:
                alerts += self.advance(now)
        return alerts

    # ---- evaluation ------------------------------------------------------------------------

    def advance(self, now: datetime | None = None) -> list[Alert]:
        """Evaluate every window that closed since the last call; returns new alerts."""
        closed = self.closed_bucket
        if closed is None:
            return []
        alerts: list[Alert] = []
        created = now or datetime.now(UTC)
        for rule in self.config.rules:
            width = rule.window_seconds // self.bucket_s
            for key, cells in self.buckets.items():
                if key.split(":", 1)[0] not in rule.scopes:
                    continue
                state = self.states.get((rule.name, key))
                if state is None:
                    state = KeyState(mean=rule.prior_mean, var=rule.prior_std**2)
                ends = sorted(
                    {b + i for b in cells for i in range(width) if state.last_end < b + i <= closed}
                )
                if not ends:
                    continue
                for end in ends:
                    alert = self._evaluate(rule, key, cells, state, end, width, created)
                    if alert:
                        alerts.append(alert)
                state.last_end = max(state.last_end, closed)
                self.states[(rule.name, key)] = state
                self.dirty.add((rule.name, key))
        self._prune(closed)
        return alerts

    def _evaluate(
        self,
        rule: RuleConfig,
        key: str,
        cells: dict[int, _Bucket],
        state: KeyState,
        end: int,
        width: int,
        created: datetime,
    ) -> Alert | None:
        window = [cells[b] for b in range(end - width + 1, end + 1) if b in cells]
        total = sum(c.total for c in window)
        negative = sum(c.negative for c in window)
        state.last_end = end
        if total < rule.min_volume:
            return None
        share = negative / total
        value = share if rule.metric == "negative_share" else float(negative)
        mean, var = state.lagged[0] if len(state.lagged) >= width else (state.mean, state.var)
        # sampling noise of this window's metric under the baseline (binomial / Poisson), so
        # small windows need a larger deviation than big ones
        p = min(max(mean, 0.0), 1.0)
        noise = (
            math.sqrt(p * (1 - p) / total)
            if rule.metric == "negative_share"
            else math.sqrt(max(mean, 0.0))
        )
        std = max(math.sqrt(var), noise, rule.min_std)
        z = (value - mean) / std
        fire = (
            z >= rule.z_threshold
            and negative >= rule.min_negative
            and share >= rule.min_share
            and end > state.cooldown_until
        )
        baseline, baseline_std = mean, std
        # the baseline follows the key, but an anomalous window moves it only a little: it
        # counts at most BASELINE_CLIP deviations away (a Huber-type EWMA), so the leading edge
        # of a spike, not yet past the threshold, cannot widen the baseline enough to hide the
        # rest of the spike (which window is the edge depends on where the bucket grid falls)
        alpha = rule.ewma_alpha / 4 if z >= rule.z_threshold else rule.ewma_alpha
        bound = BASELINE_CLIP * std
        diff = min(max(value - state.mean, -bound), bound)
        state.mean += alpha * diff
        state.var = (1 - alpha) * (state.var + alpha * diff * diff)
        state.windows += 1
        state.lagged = [*state.lagged, [state.mean, state.var]][-width:]
        if not fire:
            return None
        state.cooldown_until = end + rule.cooldown_seconds // self.bucket_s
        evidence = []
        titles: set[str] = set()
        for e in sorted((e for c in window for e in c.evidence), key=lambda e: (-e[0], e[1])):
            if e[2] not in titles:  # the same headline from several sources counts once here
                titles.add(e[2])
                evidence.append(e)
        start_ts = (end - width + 1) * self.bucket_s
        return Alert(
            id=alert_id(rule.name, key, end),
            rule=rule.name,
            metric=rule.metric,
            key=key,
            window_start=_ts(start_ts),
            window_end=_ts((end + 1) * self.bucket_s),
            total=total,
            negative=negative,
            negative_share=round(share, 4),
            baseline=round(baseline, 4),
            baseline_std=round(baseline_std, 4),
            score=round(z, 3),
            evidence=[
                Evidence(id=i, title=t, published_at=_ts(ts), negative_probability=round(p, 4))
                for p, i, t, ts in evidence[: rule.evidence]
            ],
            created_at=created,
        )

    def _prune(self, closed: int) -> None:
        """Forget buckets no future window can reach."""
        widest = max(r.window_seconds for r in self.config.rules) // self.bucket_s
        horizon = closed - widest
        for key in list(self.buckets):
            cells = self.buckets[key]
            for b in [b for b in cells if b <= horizon]:
                del cells[b]
            if not cells:
                del self.buckets[key]
        for item in [i for i, b in self.seen.items() if b <= horizon - widest]:
            del self.seen[item]

    def clamp_future(self, limit: float, fallback: float | None) -> int:
        """Undo event times beyond ``limit`` that an older version let into the stored state
        (a year-9999 item held the watermark, and with it every window end, far ahead, so no
        alert could fire again): such a source's mark drops to ``fallback`` (the latest stored
        event time within the limit; the source is forgotten without one), window ends and
        cool-downs return to what the corrected watermark allows. Returns how many were fixed."""
        fixed = 0
        for source, ts in list(self.source_max.items()):
            if ts > limit:
                fixed += 1
                if fallback is None:
                    del self.source_max[source]
                else:
                    self.source_max[source] = fallback
        if self.max_event_ts is not None and self.max_event_ts > limit:
            fixed += 1
            self.max_event_ts = max(self.source_max.values(), default=None)
        possible = self.bucket_of(limit - self.config.allowed_lateness_seconds) - 1
        closed = min(possible, self.closed_bucket if self.closed_bucket is not None else possible)
        cooldowns = {r.name: r.cooldown_seconds // self.bucket_s for r in self.config.rules}
        for (rule, key), state in self.states.items():
            cooldown = cooldowns.get(rule, 0)
            if state.last_end > possible or state.cooldown_until > possible + 1 + cooldown:
                fixed += 1
                state.last_end = min(state.last_end, closed)
                state.cooldown_until = min(state.cooldown_until, closed + 1 + cooldown)
                self.dirty.add((rule, key))
        return fixed

    def retention_start(self) -> float | None:
        """Event time from which observations must be replayed to rebuild the windows."""
        closed = self.closed_bucket
        if closed is None:
            return None
        widest = max(r.window_seconds for r in self.config.rules) // self.bucket_s
        return float((closed - 2 * widest) * self.bucket_s)

    # ---- persistence -----------------------------------------------------------------------

    def export_state(self, only_dirty: bool = False) -> dict[str, Any]:
        items = self.dirty if only_dirty else set(self.states)
        return {
            "max_event_ts": self.max_event_ts,
            "sources": dict(self.source_max),
            "keys": [[rule, key, vars(self.states[(rule, key)])] for rule, key in sorted(items)],
        }
