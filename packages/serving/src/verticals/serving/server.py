"""Run an app with uvicorn on the configured host and port (127.0.0.1 by default), with
timeouts on slow clients: a request head must arrive in time, a body must keep coming (the app
factory's middleware) and idle keep-alive connections are closed."""

from __future__ import annotations

import asyncio
import gc
import signal
import sys
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI

from verticals.serving.settings import ServiceSettings

if TYPE_CHECKING:
    import uvicorn

MAX_HEAD_BYTES = 64 * 1024
"""Largest request head (request line and headers); httptools sets no limit of its own."""


def _answer(status: bytes, detail: str) -> bytes:
    body = b'{"detail": "%s"}' % detail.encode()
    return (
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, len(body), body)
    )


REQUEST_TIMEOUT = _answer(b"408 Request Timeout", "request head not received in time")
HEAD_TOO_LARGE = _answer(
    b"431 Request Header Fields Too Large", f"request head over {MAX_HEAD_BYTES} bytes"
)


def _exit_cleanly(signum: int, _frame: object) -> None:
    sys.exit(128 + signum)


def freeze_loaded_objects() -> None:
    """What is loaded at start (models, indexes, catalogs) lives as long as the process: keep it
    out of the garbage collector's full passes. A full pass over a loaded model's half a million
    objects took 0.3 s, a stall for every request or batch in flight."""
    gc.collect()
    gc.freeze()


class HeadDeadline(asyncio.Protocol):
    """Mixed into uvicorn's HTTP/1.1 protocol (httptools or h11): a connection must deliver a
    complete request head within ``head_timeout`` seconds of opening or of its previous response,
    however slowly it trickles bytes in (uvicorn itself waits forever: its keep-alive timer is
    reset by every byte). Past the deadline the connection gets a 408 (when part of a head was
    sent) and is closed. A new request cycle (uvicorn's ``cycle``) means the head arrived. A head
    over ``MAX_HEAD_BYTES`` gets a 431 and the connection is closed."""

    head_timeout: float = 10.0
    _head_bytes = 0
    transport: asyncio.Transport
    loop: asyncio.AbstractEventLoop
    cycle: Any
    _deadline: asyncio.TimerHandle | None = None
    _waiting_on: Any = None
    _got_bytes = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        self._got_bytes = True
        super().data_received(data)
        if self.cycle is self._waiting_on and not self.transport.is_closing():
            self._head_bytes += len(data)  # and the head is still not complete
            if self._head_bytes > MAX_HEAD_BYTES:
                self.transport.write(HEAD_TOO_LARGE)
                self.transport.close()

    def on_response_complete(self) -> None:
        self._arm()  # before a pipelined request's cycle may start inside uvicorn's handler
        super().on_response_complete()  # type: ignore[misc]

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        super().connection_lost(exc)

    def _arm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
        self._waiting_on, self._got_bytes, self._head_bytes = self.cycle, False, 0
        self._deadline = self.loop.call_later(self.head_timeout, self._expire)

    def _expire(self) -> None:
        self._deadline = None
        if self.cycle is not self._waiting_on or self.transport.is_closing():
            return  # a request head arrived in time
        if self._got_bytes:
            self.transport.write(REQUEST_TIMEOUT)
        self.transport.close()


def guarded_protocol(head_timeout: float) -> type[asyncio.Protocol]:
    """uvicorn's default HTTP/1.1 protocol class with a request-head deadline."""
    from uvicorn.protocols.http.auto import AutoHTTPProtocol

    return type(
        f"Guarded{AutoHTTPProtocol.__name__}",
        (HeadDeadline, AutoHTTPProtocol),
        {"head_timeout": head_timeout},
    )


def uvicorn_config(
    app: FastAPI, settings: ServiceSettings, port: int | None = None, **options: Any
) -> uvicorn.Config:
    """The server every service runs (and tests start): the settings' host, port and timeouts."""
    import uvicorn

    return uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port if port is None else port,
        http=guarded_protocol(settings.header_timeout_s),
        timeout_keep_alive=settings.keep_alive_s,
        log_config=None,
        access_log=False,
        **options,
    )


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    """Serve until SIGINT or SIGTERM. uvicorn shuts down gracefully, then re-raises the signal
    to the handler installed before it: SIGTERM then raises SystemExit instead of killing the
    process, so the caller's ``finally`` blocks (stopping a broker, say) still run."""
    import uvicorn

    signal.signal(signal.SIGTERM, _exit_cleanly)
    freeze_loaded_objects()
    uvicorn.Server(uvicorn_config(app, settings)).run()
