"""Settings of the core, read from the environment (prefix ``VERTICALS_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict


class CoreSettings(BaseSettings):
    """Where models live and which hardware trains them."""

    model_config = SettingsConfigDict(env_prefix="VERTICALS_", frozen=True, extra="ignore")

    registry_dir: Path = Path("var/registry")
    """Root of the local model registry."""
    cache_dir: Path = Path("var/cache")
    """Files derived from models and safe to delete (ONNX exports of base models)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto`` takes CUDA when present, else the CPU."""
    onnx_threads: int = 0
    """Intra-op threads of ONNX Runtime sessions; 0: one per core."""


class SettingsError(ValueError):
    """A setting failed validation; the message names it."""


def describe_validation_error(exc: ValidationError, prefix: str) -> str:
    """One line per bad setting, named as the user would set it (``PREFIX_NAME``)."""
    lines = []
    for err in exc.errors():
        name = "_".join(str(part) for part in err["loc"]).upper()
        lines.append(f"{prefix}{name}: {err['msg']} (got {err.get('input')!r})")
    return "invalid settings:\n  " + "\n  ".join(lines)


@lru_cache
def get_settings() -> CoreSettings:
    try:
        return CoreSettings()
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc, "VERTICALS_")) from exc
