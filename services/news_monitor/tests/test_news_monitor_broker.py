"""`verticals broker up|status|down` owns a detached embedded broker by its PID and data dir."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner, Result

from verticals.news_monitor.broker import free_port, pid_alive, port_open, running
from verticals.news_monitor.broker_cli import app


def up_on_a_free_port(runner: CliRunner, folder: Path) -> tuple[int, Result]:
    """The CLI must be told a port: one free when chosen, retried if taken before the bind."""
    for _ in range(3):
        port = free_port()
        result = runner.invoke(app, ["up", "--data-dir", str(folder), "--port", str(port)])
        if result.exit_code == 0 or not ("in use" in result.output or "exited" in result.output):
            break
    return port, result


def test_broker_up_status_down(tmp_path: Path) -> None:
    runner = CliRunner()
    folder = tmp_path / "broker"
    port, result = up_on_a_free_port(runner, folder)
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
