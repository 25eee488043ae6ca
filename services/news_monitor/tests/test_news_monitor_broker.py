"""`verticals broker up|status|down` owns a detached embedded broker by its PID and data dir."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from verticals.news_monitor.broker import free_port, pid_alive, port_open, running
from verticals.news_monitor.broker_cli import app


def test_broker_up_status_down(tmp_path: Path) -> None:
    runner = CliRunner()
    port = free_port()
    folder = tmp_path / "broker"
    result = runner.invoke(app, ["up", "--data-dir", str(folder), "--port", str(port)])
    assert result.exit_code == 0, result.output
    state = running(folder)
    assert state and state["port"] == port and port_open(port)
    try:
        assert runner.invoke(app, ["status", "--data-dir", str(folder)]).exit_code == 0
        again = runner.invoke(app, ["up", "--data-dir", str(folder), "--port", str(port)])
        assert "already running" in again.output
    finally:
        down = runner.invoke(app, ["down", "--data-dir", str(folder)])
    assert down.exit_code == 0 and f"stopped pid {state['pid']}" in down.output
    assert not pid_alive(state["pid"]) and not port_open(port)
    assert runner.invoke(app, ["status", "--data-dir", str(folder)]).exit_code == 1
    assert (folder / "noida" / "kafka.json").exists()  # the clean stop saved the log
