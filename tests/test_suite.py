"""The suite as a user runs it: one `verticals up` starts every service; Ctrl-C stops them all."""

from __future__ import annotations

import ast
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from verticals.serving.testing import free_port

REPO = Path(__file__).resolve().parents[1]
SERVICES = ["news_monitor", "support_bot", "recommender", "dashboard"]
ADMIN = {"X-API-Key": "change-me"}  # the local default admin key


def test_services_never_import_each_other() -> None:
    for service in SERVICES:
        others = {f"verticals.{s}" for s in SERVICES if s != service}
        for path in (REPO / "services" / service / "src").rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                names = (
                    [a.name for a in node.names]
                    if isinstance(node, ast.Import)
                    else [node.module or ""]
                    if isinstance(node, ast.ImportFrom)
                    else []
                )
                for name in names:
                    assert not any(name.startswith(o) for o in others), f"{path} imports {name}"


def test_cli_lists_every_service() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "verticals.core.cli", "--help"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    # the first word of each row of the help's command table (not a substring of the page:
    # "up" is inside "support")
    listed = set(re.findall(r"^\W ([a-z][a-z-]*)  ", out, flags=re.MULTILINE))
    expected = {"train", "models", "news", "broker", "support", "recommend", "dashboard", "up"}
    assert expected <= listed, sorted(listed)


class Suite:
    """``verticals up`` in a subprocess, stopped with SIGINT (what Ctrl-C sends)."""

    def __init__(self, tmp_path: Path, env: dict[str, str], ports: dict[str, int]) -> None:
        env = {
            **env,
            **{f"VERTICALS_{name.upper()}_PORT": str(port) for name, port in ports.items()},
        }
        self.log_path = tmp_path / f"suite-{time.monotonic_ns()}.log"
        self.ports = ports
        self._log = self.log_path.open("w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "verticals.core.cli", "up", "--data-dir", str(tmp_path / "var")],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=REPO,
        )

    def output(self) -> str:
        return self.log_path.read_text()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}"

    def wait_healthy(self, timeout: float = 240) -> None:
        pending = {name: port for name, port in self.ports.items() if name != "news_broker"}
        deadline = time.monotonic() + timeout
        while pending and time.monotonic() < deadline:
            assert self.proc.poll() is None, self.output()[-3000:]
            for name, port in list(pending.items()):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            time.sleep(0.2)
        assert not pending, f"not up: {pending}\n" + self.output()[-3000:]

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGINT)
        self.proc.wait(timeout=60)
        self._log.close()
        return self.output()


def wait_for_ready_block(suite: Suite, timeout: float = 60) -> None:
    """The suite prints its ready block once it has seen every service healthy."""
    deadline = time.monotonic() + timeout
    while "verticals is ready" not in suite.output():
        assert time.monotonic() < deadline and suite.proc.poll() is None, suite.output()[-3000:]
        time.sleep(0.2)


def start_suite(tmp_path: Path, env: dict[str, str]) -> Suite:
    """`verticals up` must be told its ports: each is free when chosen, but another process may
    take one before the service binds it; then the suite is started again on new ports."""
    names = ("news", "support", "recommender", "dashboard", "news_broker")
    for attempt in range(3):
        suite = Suite(tmp_path, env, {name: free_port() for name in names})
        try:
            suite.wait_healthy()
            return suite
        except AssertionError:
            output = suite.stop()
            if attempt == 2 or "address already in use" not in output.lower():
                raise
    raise AssertionError("unreachable")


@pytest.mark.timeout(480)
def test_up_starts_all_services_ctrl_c_stops_them_and_a_second_up_finds_the_data(
    tmp_path: Path,
) -> None:
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VERTICALS_REGISTRY_DIR": str(tmp_path / "registry"),
        "VERTICALS_CACHE_DIR": str(tmp_path / "cache"),
        "VERTICALS_RECOMMENDER_DATA_DIR": str(tmp_path / "recommender"),
        "VERTICALS_NEWS_DATA_DIR": str(tmp_path / "news"),
        "VERTICALS_SUPPORT_DATA_DIR": str(tmp_path / "support"),
        "VERTICALS_DASHBOARD_DATA_DIR": str(tmp_path / "dashboard"),
    }
    entry = {"id": "suite-kept", "question": "Do you keep my data?", "answer": "We keep it."}
    item = {
        "id": "suite-lamp",
        "title": "Suite test lamp",
        "description": "kept across restarts",
        "category": "home",
    }

    first = start_suite(tmp_path, env)
    try:
        wait_for_ready_block(first)
        output = first.output()
        block = output[output.index("verticals is ready") :]
        for name in ("news", "support", "recommender", "dashboard"):
            assert first.url(name) in block  # each service's URL in the one ready block
        assert "widget key (public): wk_" in block and "admin key" in block
        assert "verticals news produce" in block and "VERTICALS_NEWS_BROKER_PORT" in block
        for noise in ("DEBUG:bm25s", "FutureWarning", "WARNING:root", '{"ts"'):
            assert noise not in output, noise  # logs go to files, third-party noise nowhere
        logs = tmp_path / "var" / "logs"
        assert {p.name for p in logs.iterdir()} == {
            f"{n}.log" for n in ("news", "support", "recommend", "dashboard")
        }
        for path in logs.iterdir():
            entries = [json.loads(line) for line in path.read_text().splitlines()]
            assert any("Uvicorn running" in e["msg"] for e in entries), path
            assert not any("bm25s" in e.get("logger", "") for e in entries), path
        recs = httpx.get(first.url("recommender") + "/v1/users/new-user/recommendations?k=3")
        assert recs.status_code == 200
        dashboard = first.url("dashboard")  # its admin key is the local default too
        status = httpx.get(dashboard + "/api/status", headers=ADMIN, timeout=10).json()
        assert all(s["available"] for s in status["services"]), status
        saved = httpx.post(
            first.url("support") + "/v1/tenants/demo/faq", json={"entries": [entry]}, headers=ADMIN
        )
        assert saved.status_code == 200, saved.text
        put = httpx.put(first.url("recommender") + "/v1/items/suite-lamp", json=item, headers=ADMIN)
        assert put.status_code == 200, put.text
    finally:
        output = first.stop()
    assert "all services stopped" in output
    widget_key = re.search(r"widget key \(public\): (\S+)", output)
    assert widget_key, output[-3000:]
    for port in first.ports.values():
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"

    second = start_suite(tmp_path, env)
    try:
        wait_for_ready_block(second)  # the widget key is printed in it
        kept = httpx.get(
            second.url("support") + "/v1/tenants/demo/entries/suite-kept", headers=ADMIN
        )
        assert kept.status_code == 200 and kept.json()["body"] == entry["answer"], kept.text
        lamp = httpx.get(second.url("recommender") + "/v1/items/suite-lamp")
        assert lamp.status_code == 200 and lamp.json()["title"] == item["title"], lamp.text
    finally:
        output = second.stop()
    assert "all services stopped" in output
    assert f"widget key (public): {widget_key.group(1)}" in output  # embedded pages keep working
