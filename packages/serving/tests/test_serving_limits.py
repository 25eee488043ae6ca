"""Slow or oversized clients against a real uvicorn server run as services run it
(``verticals.serving.server.uvicorn_config``, through the test toolkit's LiveServer), over raw
sockets: the body limit holds for any
transfer encoding, and a request head or body that does not arrive in time closes the
connection."""

from __future__ import annotations

import json
import select
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi import APIRouter, FastAPI
from pydantic import BaseModel
from pydantic_settings import SettingsConfigDict

from verticals.serving.app import create_app
from verticals.serving.settings import ServiceSettings
from verticals.serving.testing import LiveServer

LIMIT = 100_000
TIMEOUT = 1.0
MARGIN = 4.0
"""Slack for a loaded 2-core machine on top of a 1 s timeout."""


class LimitSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VERTICALS_LIMITS_TEST_", frozen=True)


class Items(BaseModel):
    items: list[str]


def make_app() -> tuple[FastAPI, ServiceSettings]:
    settings = LimitSettings(
        max_request_bytes=LIMIT, header_timeout_s=TIMEOUT, body_timeout_s=TIMEOUT
    )
    router = APIRouter()

    @router.post("/items")
    def count(body: Items) -> dict[str, int]:
        return {"count": len(body.items)}

    @router.get("/slow")
    def slow() -> dict[str, str]:
        time.sleep(TIMEOUT * 1.5)  # longer than the head deadline: it must not cut the answer
        return {"ok": "yes"}

    return create_app("limits", settings, [router]), settings


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    """The app under LiveServer, which runs an app from ``create_app`` with the services'
    server configuration (``verticals.serving.server.uvicorn_config``)."""
    app, _ = make_app()
    with LiveServer(app) as server:
        yield server.port


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers and whatever body arrives until the server closes the connection."""
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass  # reset after the answer: the server would not read what we still had sent
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
    return int(lines[0].split()[1]), headers, body


def chunked(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def rss_mb() -> float:
    fields = Path("/proc/self/status").read_text().split("VmRSS:")[1].split()
    return int(fields[0]) / 1024


def test_a_chunked_body_over_the_limit_is_refused_as_it_arrives(port: int) -> None:
    """60 MB of chunked JSON: the server answers 413 once LIMIT bytes have come in, closes the
    connection, and neither reads nor keeps the rest."""
    sock = connect(port)
    sock.sendall(
        b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    piece = b'"' + b"x" * 65_000 + b'",'
    before, sent = rss_mb(), 0
    try:
        sock.sendall(chunked(b'{"items": ['))
        while sent < 60_000_000:
            if select.select([sock], [], [], 0)[0]:
                break  # the answer is there
            sock.sendall(chunked(piece))
            sent += len(piece)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server closed the connection: expected once it answered
    status, headers, body = read_response(sock)
    sock.close()
    assert status == 413, body
    assert json.loads(body) == {"detail": f"request body over {LIMIT} bytes"}
    assert headers["connection"] == "close"
    assert sent < 20_000_000, f"{sent} bytes were taken before the answer"
    assert rss_mb() - before < 50


def test_a_declared_length_over_the_limit_is_refused_before_the_body(port: int) -> None:
    sock = connect(port)
    sock.sendall(
        b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Content-Length: 60000000\r\n\r\n"
    )
    status, headers, body = read_response(sock)
    assert status == 413 and headers["connection"] == "close", body


def test_a_chunked_body_within_the_limit_is_served(port: int) -> None:
    payload = json.dumps({"items": ["a"] * 1000}).encode()
    sock = connect(port)
    sock.sendall(
        b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + chunked(payload[:2000])
        + chunked(payload[2000:])
        + b"0\r\n\r\n"
    )
    status, _, body = read_response(sock)
    assert status == 200 and json.loads(body) == {"count": 1000}


def test_a_slowly_sent_request_head_is_cut_off(port: int) -> None:
    """Slowloris: half a request head, then a header byte every 0.2 s. uvicorn alone keeps such
    a connection open forever (every byte resets its keep-alive timer)."""
    sock = connect(port)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
    started = time.monotonic()
    closed_after = None
    data = b""
    sock.settimeout(0.2)
    while time.monotonic() - started < TIMEOUT + MARGIN + 5:
        try:
            sock.sendall(b"X")
        except (BrokenPipeError, ConnectionResetError):
            closed_after = time.monotonic() - started
            break
        try:
            got = sock.recv(4096)
        except TimeoutError:
            continue
        except ConnectionResetError:
            got = b""
        data += got
        if not got:
            closed_after = time.monotonic() - started
            break
    sock.close()
    assert closed_after is not None, "the server kept a never-ending request head open"
    assert closed_after < TIMEOUT + MARGIN
    assert data.startswith(b"HTTP/1.1 408") or not data


def test_a_silent_connection_is_closed(port: int) -> None:
    sock = connect(port)
    started = time.monotonic()
    sock.settimeout(TIMEOUT + MARGIN + 5)
    assert sock.recv(4096) == b""  # closed without a word: nothing was asked
    assert time.monotonic() - started < TIMEOUT + MARGIN
    sock.close()


def test_a_stalled_body_gets_408(port: int) -> None:
    sock = connect(port)
    sock.sendall(
        b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b'Content-Length: 100\r\n\r\n{"items": ['
    )
    started = time.monotonic()
    status, headers, _ = read_response(sock)
    assert status == 408 and headers["connection"] == "close"
    assert time.monotonic() - started < TIMEOUT + MARGIN
    sock.close()


def test_keep_alive_and_slow_answers_still_work(port: int) -> None:
    """Two requests on one connection, the second answered after the head deadline passed."""
    sock = connect(port)
    sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n\r\n")
    first = sock.recv(65536)
    assert first.startswith(b"HTTP/1.1 200")
    sock.sendall(b"GET /slow HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    status, _, body = read_response(sock)
    assert status == 200 and json.loads(body) == {"ok": "yes"}
    sock.close()


def test_an_endless_request_head_gets_431(port: int) -> None:
    """Headers sent fast and without end: cut off past 64 KiB, not kept until the deadline."""
    sock = connect(port)
    sent = 0
    try:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: t\r\n")
        while sent < 50_000_000:
            if select.select([sock], [], [], 0)[0]:
                break
            sock.sendall(b"X-Filler: " + b"y" * 1000 + b"\r\n")
            sent += 1012
    except (BrokenPipeError, ConnectionResetError):
        pass
    status, headers, body = read_response(sock)
    sock.close()
    assert status == 431 and headers["connection"] == "close", body
    assert sent < 10_000_000


def test_a_large_body_sent_at_once_is_not_taken_for_a_head(port: int) -> None:
    """Head and a 90 kB body in one write: the head check must not count the body."""
    payload = json.dumps({"items": ["z" * 100] * 800}).encode()
    assert 65_536 < len(payload) < LIMIT
    sock = connect(port)
    sock.sendall(
        b"POST /items HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
        b"Connection: close\r\nContent-Length: %d\r\n\r\n%s" % (len(payload), payload)
    )
    status, _, body = read_response(sock)
    assert status == 200 and json.loads(body) == {"count": 800}
