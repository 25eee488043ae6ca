"""Soak: the news monitor (with a broker), the support bot and the recommender under mixed
load, a news consumer and a service killed (SIGKILL) and restarted -> bench/results/soak.json.

Each service runs as its own process, started the way `verticals up` starts it
(``verticals <service> ...``), on 127.0.0.1, with its data in a temporary folder:

- the broker: the embedded noida-db (``NoidaBroker``), owned by this script;
- the news monitor: ``verticals news serve`` (API with the consumer inside) on that broker;
- the support bot: ``verticals support up`` (the demo tenant), the recommender:
  ``verticals recommend up`` (the sample catalog).

Load, paced (``--scale`` multiplies every rate): chats with the demo widget key; knowledge-base
entries written with the admin key; events (some dated 9999, which must be refused with 422)
and recommendation requests; news published to the input topic (valid, malformed and dated 9999).
At 30 % of the run the news consumer is killed, at 60 % the recommender; both are restarted at
once. At the end every published message must be enriched or dead-lettered (accounted by its
input partition and offset, duplicates allowed) and every acknowledged write must still be
there: events (read from the recommender's database) and KB entries (read over the API).

``python bench/soak.py [--duration 600] [--out bench/results/soak.json]``; ``make soak``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "bench" / "results" / "soak.json"
ADMIN_KEY = "soak-admin-key-0123456789abcdef"
FAR_FUTURE = "9999-12-31T00:00:00Z"
HEALTH_TIMEOUT_S = 300.0
DRAIN_TIMEOUT_S = 240.0
QUESTIONS = [
    "How long does delivery take?",
    "Can I return an item I bought last week?",
    "Do you ship to Canada?",
    "My order arrived damaged, what now?",
    "How do I change my delivery address?",
    "Is there a warranty on lamps?",
]
TITLES = [
    "Atlas Freight beats estimates as quarterly profit jumps",
    "Regulators fine Mariner Insurance over compliance failures",
    "Euro zone inflation steady in latest reading",
    "Bitcoin slides as exchange halts withdrawals",
]


def free_port() -> int:
    from verticals.serving.testing import free_port as pick

    return pick()


def rss_mb(pid: int) -> float:
    """Resident memory of one process (0 when it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


@dataclass
class Service:
    """One service process; ``kill()`` is a SIGKILL, ``start()`` (re)starts it."""

    name: str
    args: list[str]
    port: int
    env: dict[str, str]
    log_dir: Path
    proc: subprocess.Popen[bytes] | None = None
    starts: int = 0
    max_rss: float = 0.0

    def start(self) -> None:
        self.starts += 1
        log = (self.log_dir / f"{self.name}-{self.starts}.log").open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "verticals.core.cli", *self.args],
            stdout=log,
            stderr=subprocess.STDOUT,
            env=self.env,
            cwd=REPO,
            start_new_session=True,
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def wait_healthy(self, timeout: float = HEALTH_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.output()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise RuntimeError(f"{self.name} not healthy after {timeout:.0f}s: {self.output()[-2000:]}")

    def output(self) -> str:
        return (self.log_dir / f"{self.name}-{self.starts}.log").read_text(errors="replace")

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def sample(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.max_rss = max(self.max_rss, rss_mb(self.proc.pid))


@dataclass
class Tally:
    """What the load saw, shared by the load threads."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: Counter[str] = field(default_factory=Counter)
    status: Counter[str] = field(default_factory=Counter)
    errors_5xx: list[str] = field(default_factory=list)
    unavailable: Counter[str] = field(default_factory=Counter)
    unexpected: list[str] = field(default_factory=list)
    acked_events: dict[str, int] = field(default_factory=dict)
    acked_entries: list[str] = field(default_factory=list)

    def record(self, kind: str, response: httpx.Response | None, error: str = "") -> None:
        with self.lock:
            self.requests[kind] += 1
            if response is None:
                self.unavailable[kind] += 1  # refused or reset: the service was being killed
                return
            self.status[f"{kind} {response.status_code}"] += 1
            if response.status_code >= 500:
                self.errors_5xx.append(f"{kind} {response.status_code} {response.text[:200]}")


def call(
    tally: Tally, kind: str, client: httpx.Client, method: str, url: str, **kwargs: Any
) -> httpx.Response | None:
    try:
        response = client.request(method, url, **kwargs)
    except httpx.HTTPError as exc:
        tally.record(kind, None, str(exc))
        return None
    tally.record(kind, response)
    return response


def paced(stop: threading.Event, rate: float, work: Any) -> None:
    """Call ``work(n)`` ``rate`` times a second until ``stop``."""
    n, start = 0, time.monotonic()
    while not stop.is_set():
        work(n)
        n += 1
        wait = start + n / rate - time.monotonic()
        if wait > 0:
            stop.wait(wait)


def news_line(n: int, run: str) -> bytes:
    """Every 10th message is malformed, every 25th dated 9999; the rest are valid and fresh."""
    if n % 10 == 9:
        return random.choice([b"{not json", b'["a list"]', b'{"id": "x", "title": "no date"}'])
    when = FAR_FUTURE if n % 25 == 24 else datetime.now(UTC).isoformat()
    item = {
        "id": f"{run}-{n}",
        "published_at": when,
        "source": "soak",
        "title": TITLES[n % len(TITLES)],
        "tickers": [["ATF"], [], ["MRIN"], []][n % 4],
    }
    return json.dumps(item).encode()


class Soak:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.root = Path(tempfile.mkdtemp(prefix="soak-"))
        self.run_id = uuid.uuid4().hex[:6]
        self.tally = Tally()
        self.stop_load = threading.Event()
        self.restarts: list[dict[str, Any]] = []
        self.published = 0
        self.publish_failed = 0
        env = {
            **os.environ,
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
            "VERTICALS_REGISTRY_DIR": str(self.root / "registry"),
            "VERTICALS_ADMIN_API_KEY": ADMIN_KEY,
            "VERTICALS_SUPPORT_ADMIN_API_KEY": ADMIN_KEY,
            "VERTICALS_RECOMMENDER_ADMIN_API_KEY": ADMIN_KEY,
            "VERTICALS_NEWS_ADMIN_API_KEY": ADMIN_KEY,
        }
        from verticals.news_monitor.broker import NoidaBroker

        self.broker = NoidaBroker(self.root / "broker")
        ports = {name: free_port() for name in ("news", "support", "recommender")}
        env.update(
            {
                "VERTICALS_NEWS_BOOTSTRAP_SERVERS": self.broker.bootstrap,
                # static membership: the restarted consumer takes the killed one's partitions
                # at once (without it the group waits for the dead member up to the
                # rebalance timeout, max_poll_interval_ms: 5 minutes by default)
                "VERTICALS_NEWS_GROUP_INSTANCE_ID": "soak-news-1",
                "VERTICALS_NEWS_DATA_DIR": str(self.root / "news"),
                "VERTICALS_NEWS_PORT": str(ports["news"]),
                "VERTICALS_SUPPORT_DATA_DIR": str(self.root / "support"),
                "VERTICALS_SUPPORT_PORT": str(ports["support"]),
                "VERTICALS_RECOMMENDER_DATA_DIR": str(self.root / "recommender"),
                "VERTICALS_RECOMMENDER_PORT": str(ports["recommender"]),
            }
        )
        logs = self.root / "logs"
        logs.mkdir()
        self.services = {
            "news_monitor": Service("news_monitor", ["news", "serve"], ports["news"], env, logs),
            "support_bot": Service("support_bot", ["support", "up"], ports["support"], env, logs),
            "recommender": Service(
                "recommender", ["recommend", "up"], ports["recommender"], env, logs
            ),
        }
        self.broker_rss = 0.0

    # ---- run -------------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        from verticals.news_monitor.consumer import ensure_topics
        from verticals.news_monitor.settings import NewsSettings

        self.broker.start()
        self.news_settings = NewsSettings(
            bootstrap_servers=self.broker.bootstrap, data_dir=self.root / "news"
        )
        ensure_topics(self.news_settings)
        try:
            for service in self.services.values():
                service.start()
            for service in self.services.values():
                service.wait_healthy()
            self.widget_key = self._widget_key()
            self.item_ids = self._item_ids()
            return self._soak()
        finally:
            self.stop_load.set()
            for service in self.services.values():
                service.stop()
            self.broker.stop()

    def _widget_key(self) -> str:
        for line in self.services["support_bot"].output().splitlines():
            if "widget key (public):" in line:
                return line.rsplit(":", 1)[1].strip()
        raise RuntimeError("the support bot printed no widget key")

    def _item_ids(self) -> list[str]:
        url = self.services["recommender"].url + "/v1/items?limit=500"
        items = httpx.get(url, timeout=30).json()["items"]
        return [i["id"] for i in items]

    def _soak(self) -> dict[str, Any]:
        duration = self.args.duration
        scale = self.args.scale
        threads = [
            threading.Thread(target=paced, args=(self.stop_load, 2 * scale, self._chat)),
            threading.Thread(target=paced, args=(self.stop_load, 0.5 * scale, self._kb_write)),
            threading.Thread(target=paced, args=(self.stop_load, 5 * scale, self._event)),
            threading.Thread(target=paced, args=(self.stop_load, 5 * scale, self._recommend)),
            threading.Thread(target=self._publish, args=(10 * scale,)),
            threading.Thread(target=self._sample_memory),
        ]
        started = time.monotonic()
        for thread in threads:
            thread.start()
        chaos = []
        for at, name in [(0.3, "news_monitor"), (0.6, "recommender")]:
            self.stop_load.wait(max(0.0, started + at * duration - time.monotonic()))
            chaos.append(threading.Thread(target=self._kill_and_restart, args=(name, started)))
            chaos[-1].start()
        self.stop_load.wait(max(0.0, started + duration - time.monotonic()))
        for thread in chaos:  # a restart still under way finishes before the load stops
            thread.join()
        self.stop_load.set()
        load_seconds = time.monotonic() - started
        for thread in threads:
            thread.join(timeout=60)
        accounted, dlq_reasons, duplicates = self._drain()
        lost_events, lost_entries = self._check_writes()
        t = self.tally
        return {
            "what": "the three services and the broker under mixed load (chats, KB writes, "
            "events, recommendations, news) with a news consumer and the recommender killed "
            "(SIGKILL) and restarted during the run",
            "date": datetime.now(UTC).isoformat(timespec="seconds"),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores (shared)",
            "duration_s": round(load_seconds, 1),
            "requests": sum(t.requests.values()),
            "requests_by_kind": dict(t.requests),
            "responses_by_status": dict(sorted(t.status.items())),
            "errors_5xx": len(t.errors_5xx),
            "errors_5xx_examples": t.errors_5xx[:5],
            "unavailable_during_restarts": dict(t.unavailable),
            "unexpected_responses": t.unexpected[:10],
            "messages_in": self.published,
            "messages_publish_failed": self.publish_failed,
            "messages_accounted": accounted,
            "messages_duplicated": duplicates,
            "dead_lettered_by_reason": dlq_reasons,
            "acknowledged_writes": sum(t.acked_events.values()) + len(t.acked_entries),
            "acknowledged_events": sum(t.acked_events.values()),
            "acknowledged_kb_entries": len(t.acked_entries),
            "acknowledged_writes_lost": lost_events + lost_entries,
            "restarts": len(self.restarts),
            "restart_log": self.restarts,
            "max_rss_mb": {
                **{n: round(s.max_rss, 1) for n, s in self.services.items()},
                "broker": round(self.broker_rss, 1),
            },
        }

    # ---- chaos -----------------------------------------------------------------------------

    def _kill_and_restart(self, name: str, started: float) -> None:
        service = self.services[name]
        service.sample()
        service.kill()
        killed = time.monotonic()
        service.start()
        service.wait_healthy()
        self.restarts.append(
            {
                "service": name,
                "killed_at_s": round(killed - started, 1),
                "healthy_after_s": round(time.monotonic() - killed, 1),
            }
        )

    def _sample_memory(self) -> None:
        while not self.stop_load.wait(1.0):
            for service in self.services.values():
                service.sample()
            if self.broker.process is not None:
                self.broker_rss = max(self.broker_rss, rss_mb(self.broker.process.pid))

    # ---- load ------------------------------------------------------------------------------

    def _chat(self, n: int) -> None:
        with httpx.Client(timeout=30) as client:
            body = {
                "tenant": "demo",
                "session_id": f"soak-{self.run_id}-{n % 50}",
                "message": QUESTIONS[n % len(QUESTIONS)],
            }
            url = self.services["support_bot"].url + "/v1/chat"
            call(
                self.tally,
                "chat",
                client,
                "POST",
                url,
                json=body,
                headers={"X-API-Key": self.widget_key},
            )

    def _kb_write(self, n: int) -> None:
        entry_id = f"soak-{self.run_id}-{n}"
        entry = {
            "id": entry_id,
            "question": f"Soak question number {n}: is the store open on holiday {n}?",
            "answer": f"Soak answer {n}: yes, from nine to five.",
        }
        url = self.services["support_bot"].url + "/v1/tenants/demo/faq"
        with httpx.Client(timeout=60) as client:
            r = call(
                self.tally,
                "kb_write",
                client,
                "POST",
                url,
                json={"entries": [entry]},
                headers={"X-API-Key": ADMIN_KEY},
            )
        if r is not None and r.status_code == 200:
            with self.tally.lock:
                self.tally.acked_entries.append(entry_id)

    def _event(self, n: int) -> None:
        user = f"soak-{self.run_id}-{n}"
        url = self.services["recommender"].url + "/v1/events"
        with httpx.Client(timeout=30) as client:
            if n % 20 == 19:  # far future: must be refused, never stored
                bad = {
                    "user_id": user,
                    "item_id": self.item_ids[0],
                    "type": "purchase",
                    "timestamp": FAR_FUTURE,
                }
                r = call(self.tally, "event_future", client, "POST", url, json=bad)
                if r is not None and r.status_code != 422:
                    self.tally.unexpected.append(f"future event answered {r.status_code}")
                return
            items = random.sample(self.item_ids, 3)
            events = [
                {
                    "user_id": user,
                    "item_id": i,
                    "type": random.choice(["view", "click", "add_to_cart", "purchase"]),
                }
                for i in items
            ]
            r = call(self.tally, "events", client, "POST", url, json=events)
        if r is not None and r.status_code == 200:
            with self.tally.lock:
                self.tally.acked_events[user] = r.json()["accepted"]

    def _recommend(self, n: int) -> None:
        user = f"soak-{self.run_id}-{random.randrange(max(n, 1))}"
        url = self.services["recommender"].url + f"/v1/users/{user}/recommendations?k=10"
        with httpx.Client(timeout=30) as client:
            call(self.tally, "recommend", client, "GET", url)

    def _publish(self, rate: float) -> None:
        from verticals.news_monitor.consumer import make_producer
        from verticals.news_monitor.feed import key_of

        producer = make_producer(self.news_settings)
        futures = []

        def send(n: int) -> None:
            line = news_line(n, self.run_id)
            futures.append(
                producer.send(self.news_settings.input_topic, key=key_of(line), value=line)
            )

        try:
            paced(self.stop_load, rate, send)
            producer.flush(timeout=60)
        finally:
            producer.close()
        for future in futures:
            if future.is_done and future.succeeded():
                self.published += 1
            else:
                self.publish_failed += 1

    # ---- accounting ------------------------------------------------------------------------

    def _drain(self) -> tuple[int, dict[str, int], int]:
        """Wait until every published message is enriched or dead-lettered (or time is up);
        returns (accounted, dead letters by reason, duplicated outputs)."""
        from verticals.news_monitor.testing import TopicReader

        settings = self.news_settings
        outputs, dead = (
            TopicReader(settings, settings.output_topic),
            TopicReader(settings, settings.dlq_topic),
        )
        try:
            deadline = time.monotonic() + DRAIN_TIMEOUT_S
            while True:
                seen: list[tuple[int, int]] = []
                for m in outputs.poll(500):
                    record = json.loads(m.value)
                    seen.append((record["source_partition"], record["source_offset"]))
                reasons: Counter[str] = Counter()
                for m in dead.poll(500):
                    h = {k: v.decode() for k, v in m.headers}
                    seen.append((int(h["source_partition"]), int(h["source_offset"])))
                    reasons[h["error"]] += 1
                accounted = len(set(seen))
                if accounted >= self.published or time.monotonic() > deadline:
                    return accounted, dict(reasons), len(seen) - accounted
                time.sleep(1.0)
        finally:
            outputs.close()
            dead.close()

    def _check_writes(self) -> tuple[int, int]:
        """Acknowledged writes missing now: events (in the recommender's database, read after
        the run) and knowledge-base entries (over the API)."""
        db = self.root / "recommender" / "recommender.db"
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
            stored = dict(
                conn.execute(
                    "SELECT user_id, count(*) FROM rec_events WHERE user_id LIKE ? "
                    "GROUP BY user_id",
                    (f"soak-{self.run_id}-%",),
                ).fetchall()
            )
            future = conn.execute(
                "SELECT count(*) FROM rec_events WHERE ts > ?", (time.time() + 3600,)
            ).fetchone()[0]
        if future:
            self.tally.unexpected.append(f"{future} far-future events stored")
        lost_events = sum(max(0, n - stored.get(u, 0)) for u, n in self.tally.acked_events.items())
        lost_entries = 0
        base = self.services["support_bot"].url + "/v1/tenants/demo/entries/"
        with httpx.Client(timeout=30, headers={"X-API-Key": ADMIN_KEY}) as client:
            for entry_id in self.tally.acked_entries:
                if client.get(base + entry_id).status_code != 200:
                    lost_entries += 1
        return lost_events, lost_entries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--duration", type=float, default=600.0, help="Seconds of load.")
    parser.add_argument("--scale", type=float, default=1.0, help="Multiplies every load rate.")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    result = Soak(args).run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: v for k, v in result.items() if not isinstance(v, (dict, list))}))
    ok = (
        result["errors_5xx"] == 0
        and result["acknowledged_writes_lost"] == 0
        and result["messages_accounted"] == result["messages_in"]
        and not result["unexpected_responses"]
    )
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
