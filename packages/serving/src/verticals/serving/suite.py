"""``verticals up`` / ``verticals down``: run every installed service together.

A service is a package that lists itself in the ``verticals.services`` entry-point group.
Each runs as its own process (``verticals <name> up``) with its output prefixed by its name;
Ctrl-C or ``verticals down`` stops them all, the suite waiting for each to shut down cleanly.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, Annotated

import typer

STOP_GRACE_SECONDS = 20


def service_commands() -> list[str]:
    """The services installed: packages listed in the ``verticals.services`` entry-point group,
    each started with ``verticals <name> up``."""
    return sorted(ep.name for ep in entry_points(group="verticals.services"))


def _pid_file(data_dir: Path) -> Path:
    return data_dir / "suite.json"


def _relay(name: str, stream: IO[str]) -> None:
    width = 10
    for line in stream:
        sys.stdout.write(f"{name:<{width}}| {line}")
        sys.stdout.flush()


def _stop(processes: dict[str, subprocess.Popen[str]]) -> None:
    for proc in processes.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for name, proc in processes.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            typer.echo(f"{name} did not stop in {STOP_GRACE_SECONDS}s: killing it", err=True)
            proc.kill()


def up(
    only: Annotated[list[str] | None, typer.Option(help="Start only these services.")] = None,
    data_dir: Annotated[Path, typer.Option(help="Where the suite keeps its state.")] = Path("var"),
) -> None:
    """Start every service (embedded broker, SQLite, local registry, demo data) until Ctrl-C."""
    names = [n for n in service_commands() if not only or n in only]
    if not names:
        raise typer.BadParameter("no installed service has an 'up' command")
    data_dir.mkdir(parents=True, exist_ok=True)
    processes: dict[str, subprocess.Popen[str]] = {}
    for name in names:
        proc = subprocess.Popen(
            [sys.executable, "-m", "verticals.core.cli", name, "up"],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            start_new_session=True,
        )
        processes[name] = proc
        assert proc.stdout is not None
        threading.Thread(target=_relay, args=(name, proc.stdout), daemon=True).start()
    _pid_file(data_dir).write_text(
        json.dumps({"suite": os.getpid(), **{n: p.pid for n, p in processes.items()}})
    )
    typer.echo(f"started {', '.join(names)}; Ctrl-C or `verticals down` stops everything")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        while not stopping.is_set():
            exited = {n: p.returncode for n, p in processes.items() if p.poll() is not None}
            if exited:
                typer.echo(f"stopping: {exited} exited", err=True)
                break
            stopping.wait(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        _stop(processes)
        _pid_file(data_dir).unlink(missing_ok=True)
        typer.echo("all services stopped")


def down(
    data_dir: Annotated[Path, typer.Option(help="Where the suite keeps its state.")] = Path("var"),
) -> None:
    """Stop a suite started by ``verticals up``."""
    path = _pid_file(data_dir)
    if not path.exists():
        typer.echo("no running suite found")
        return
    pids = json.loads(path.read_text())
    try:
        os.kill(pids["suite"], signal.SIGTERM)
    except ProcessLookupError:
        typer.echo("the suite had already stopped")
        path.unlink(missing_ok=True)
        return
    deadline = time.monotonic() + STOP_GRACE_SECONDS + 5
    while path.exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    typer.echo("stopped" if not path.exists() else "the suite is still stopping")
