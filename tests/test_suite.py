"""The suite as a user runs it: one `verticals up` starts every service; Ctrl-C stops them all."""

from __future__ import annotations

import ast
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

REPO = Path(__file__).resolve().parents[1]
SERVICES = ["news_monitor", "support_bot", "recommender"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


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
    for command in ("train", "models", "news", "broker", "support", "recommend", "up", "down"):
        assert command in out


@pytest.mark.timeout(300)
def test_up_starts_all_services_and_ctrl_c_stops_them(tmp_path: Path) -> None:
    ports = {"news": free_port(), "support": free_port(), "recommender": free_port()}
    broker_port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VERTICALS_REGISTRY_DIR": str(tmp_path / "registry"),
        "VERTICALS_NEWS_DATA_DIR": str(tmp_path / "news"),
        "VERTICALS_NEWS_PORT": str(ports["news"]),
        "VERTICALS_NEWS_BROKER_PORT": str(broker_port),
        "VERTICALS_SUPPORT_DATA_DIR": str(tmp_path / "support"),
        "VERTICALS_SUPPORT_PORT": str(ports["support"]),
        "VERTICALS_RECOMMENDER_DATA_DIR": str(tmp_path / "recommender"),
        "VERTICALS_RECOMMENDER_PORT": str(ports["recommender"]),
    }
    log = (tmp_path / "suite.log").open("w")
    suite = subprocess.Popen(
        [sys.executable, "-m", "verticals.core.cli", "up", "--data-dir", str(tmp_path / "var")],
        stdout=log,
        stderr=subprocess.STDOUT,
        env=env,
        cwd=REPO,
    )
    try:
        pending = dict(ports)
        deadline = time.monotonic() + 240
        while pending and time.monotonic() < deadline:
            assert suite.poll() is None, (tmp_path / "suite.log").read_text()[-3000:]
            for name, port in list(pending.items()):
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                        del pending[name]
                except httpx.HTTPError:
                    pass
            time.sleep(1)
        assert not pending, f"not up: {pending}\n" + (tmp_path / "suite.log").read_text()[-3000:]
        output = (tmp_path / "suite.log").read_text()
        assert f"127.0.0.1:{ports['support']}" in output  # each service prints its URL
        assert f"127.0.0.1:{ports['recommender']}" in output
        recs = httpx.get(
            f"http://127.0.0.1:{ports['recommender']}/v1/users/new-user/recommendations?k=3"
        )
        assert recs.status_code == 200
    finally:
        suite.send_signal(signal.SIGINT)  # what Ctrl-C sends
        suite.wait(timeout=60)
        log.close()
    output = (tmp_path / "suite.log").read_text()
    assert "all services stopped" in output
    for port in [*ports.values(), broker_port]:
        with socket.socket() as sock:
            assert sock.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
