"""One JSON log format for every service, carrying the request id."""

from __future__ import annotations

import json
import logging
import sys
import warnings
from contextvars import ContextVar
from datetime import UTC, datetime

request_id: ContextVar[str] = ContextVar("request_id", default="-")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, service, logger, msg, request_id (+ the record's
    ``fields`` dict, + ``exc`` with the traceback)."""

    def __init__(self, service: str = "-") -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
            "request_id": request_id.get(),
        }
        extra = getattr(record, "fields", None)
        if isinstance(extra, dict):
            entry.update(extra)
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


class ThirdPartyNoise(logging.Filter):
    """Drops what libraries say that is no news to anyone running the service: bm25s logs every
    index build at DEBUG (it sets its own logger to DEBUG when imported), onnxruntime's int8
    quantisation suggests a pre-processing step on every export."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name.startswith("bm25s") and record.levelno < logging.WARNING:
            return False
        quantization = "onnxruntime" in record.pathname and "quantization" in record.pathname
        return not (quantization and record.levelno < logging.ERROR)


def quiet_warnings() -> None:
    """Python warnings become log records (JSON like the rest); deprecation notices that
    libraries raise about one another (transformers' FutureWarnings when peft or
    sentence-transformers call it) are not shown."""
    logging.captureWarnings(True)
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)\b")


def configure_logging(level: str = "INFO", service: str = "-") -> None:
    """Route every logger (uvicorn's, kafka's, ours) and Python's warnings to stderr as JSON
    lines, without the third-party noise (``ThirdPartyNoise``, ``quiet_warnings``). Called
    before anything loads a model, so that libraries find a handler and never install their
    own (``logging.warning`` on an unconfigured root would)."""
    quiet_warnings()
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(service))
    handler.addFilter(ThirdPartyNoise())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
