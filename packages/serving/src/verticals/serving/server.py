"""Run an app with uvicorn on the configured host and port (127.0.0.1 by default)."""

from __future__ import annotations

from fastapi import FastAPI

from verticals.serving.settings import ServiceSettings


def serve(app: FastAPI, settings: ServiceSettings) -> None:
    import uvicorn

    uvicorn.run(app, host=settings.host, port=settings.port, log_config=None, access_log=False)
