"""``verticals up`` / ``verticals down``: run every installed service together.

A service is a package that lists itself in the ``verticals.services`` entry-point group.
Each runs as its own process (``verticals <name> up``). Its output goes to
``<data dir>/logs/<name>.log``, one JSON object per line (a plain line it prints is wrapped
into one). The console shows each service's progress, then one block once every service
answers ``/health``: the URLs and keys the services printed, and the next commands.
Ctrl-C or ``verticals down`` stops them all, the suite waiting for each to shut down cleanly.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import IO, Annotated

import typer

from verticals.serving.settings import DEFAULT_ADMIN_KEY

STOP_GRACE_SECONDS = 20
READY_TIMEOUT_S = 600
URL_LINE = re.compile(r"Uvicorn running on (http://\S+)")
SHOWN_LEVELS = {"ERROR", "CRITICAL"}
"""Log lines at these levels are also shown on the console."""


def service_commands() -> list[str]:
    """The services installed: packages listed in the ``verticals.services`` entry-point group,
    each started with ``verticals <name> up``."""
    return sorted(ep.name for ep in entry_points(group="verticals.services"))


def _pid_file(data_dir: Path) -> Path:
    return data_dir / "suite.json"


def log_dir(data_dir: Path) -> Path:
    return data_dir / "logs"


@dataclass
class Service:
    """One service process, its log file, and what it told us: its URL and summary lines."""

    name: str
    proc: subprocess.Popen[str]
    log: Path
    url: str | None = None
    summary: list[str] = field(default_factory=list)
    """The plain (non-JSON) lines it printed before it was ready: its URLs, keys and hints."""
    ready_after: float | None = None


def as_json_line(name: str, line: str) -> tuple[str, str | None]:
    """(the line as one JSON object, its level when it was a JSON log line else None)."""
    text = line.rstrip("\n")
    try:
        entry = json.loads(text)
    except ValueError:
        entry = None
    if isinstance(entry, dict):
        return text, str(entry.get("level", ""))
    wrapped = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "level": "INFO",
        "service": name,
        "logger": "stdout",
        "msg": text,
    }
    return json.dumps(wrapped), None


def _relay(service: Service, stream: IO[str]) -> None:
    with service.log.open("a", encoding="utf-8") as out:
        for line in stream:
            text, level = as_json_line(service.name, line)
            out.write(text + "\n")
            out.flush()
            if level is None:
                if service.ready_after is None and line.strip():
                    service.summary.append(line.rstrip())
                continue
            msg = json.loads(text).get("msg", "")
            found = URL_LINE.search(str(msg))
            if found and service.url is None:
                service.url = found.group(1)
            if level in SHOWN_LEVELS:
                typer.echo(f"{service.name}: {level.lower()}: {msg}", err=True)


def healthy(url: str) -> bool:
    try:
        with urllib.request.urlopen(url.rstrip("/") + "/health", timeout=2) as response:
            return bool(response.status == 200)
    except (OSError, ValueError):
        return False


def ready_block(services: list[Service], data_dir: Path, seconds: float) -> str:
    """What a person needs once everything is up: each service's URL and the lines it printed
    (keys, hints), the admin key when it is the local default, the logs, the next commands."""
    rule = "=" * 78
    lines = [rule, f"verticals is ready ({seconds:.0f} s): {len(services)} services", ""]
    for s in services:
        lines.append(f"{s.name:<10} {s.url}")
        lines += [f"{'':<10}   {text.strip()}" for text in s.summary]
    admin_vars = [k for k in os.environ if k.startswith("VERTICALS_") and "ADMIN_API_KEY" in k]
    lines.append("")
    if not admin_vars:
        lines.append(f"admin key (every service and the dashboard login): {DEFAULT_ADMIN_KEY}")
    lines += [
        f"logs (JSON, one file per service): {log_dir(data_dir)}/",
        "",
        "next, in a second shell: the `demo:` and `try:` lines above",
        "  (`source .venv/bin/activate` first; `make news-demo` runs the news demo);",
        "  Ctrl-C here or `make down` stops everything",
        rule,
    ]
    return "\n".join(lines)


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


def _tail(path: Path, n: int = 15) -> str:
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()[-n:]
    return "\n".join(f"  {json.loads(line).get('msg', line)}" for line in lines)


def _watch(services: list[Service], data_dir: Path, stopping: threading.Event) -> None:
    """Report each service as it becomes healthy, then the ready block; stop when one exits."""
    started = time.monotonic()
    announced = False
    while not stopping.is_set():
        for s in services:
            code = s.proc.poll()
            if code is not None:
                typer.echo(f"{s.name} exited (code {code}); the end of {s.log}:", err=True)
                typer.echo(_tail(s.log), err=True)
                return
            if s.ready_after is None and s.url and healthy(s.url):
                s.ready_after = time.monotonic() - started
                typer.echo(f"  {s.name} ready at {s.url} ({s.ready_after:.0f} s)")
        if not announced and all(s.ready_after is not None for s in services):
            announced = True
            typer.echo(ready_block(services, data_dir, time.monotonic() - started))
        if not announced and time.monotonic() - started > READY_TIMEOUT_S:
            waiting = [s.name for s in services if s.ready_after is None]
            typer.echo(f"still waiting for {', '.join(waiting)}: see {log_dir(data_dir)}/")
            started = time.monotonic()
        stopping.wait(0.5)


def up(
    only: Annotated[list[str] | None, typer.Option(help="Start only these services.")] = None,
    data_dir: Annotated[Path, typer.Option(help="Where the suite keeps its state.")] = Path("var"),
) -> None:
    """Start every service (embedded broker, SQLite, local registry, demo data) until Ctrl-C."""
    names = [n for n in service_commands() if not only or n in only]
    if not names:
        raise typer.BadParameter("no installed service has an 'up' command")
    logs = log_dir(data_dir)
    logs.mkdir(parents=True, exist_ok=True)
    services: list[Service] = []
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
        service = Service(name, proc, logs / f"{name}.log")
        services.append(service)
        assert proc.stdout is not None
        threading.Thread(target=_relay, args=(service, proc.stdout), daemon=True).start()
    processes = {s.name: s.proc for s in services}
    _pid_file(data_dir).write_text(
        json.dumps({"suite": os.getpid(), **{n: p.pid for n, p in processes.items()}})
    )
    typer.echo(f"starting {', '.join(names)} (logs in {logs}/); Ctrl-C stops everything")
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    try:
        _watch(services, data_dir, stopping)
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
