"""Settings of the core, read from the environment (prefix ``VERTICALS_``)."""

from __future__ import annotations

from collections.abc import Collection
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


def describe_validation_error(
    exc: ValidationError, prefix: str, secrets: Collection[str] = ()
) -> str:
    """One line naming each bad setting as the user would set it (``PREFIX_NAME``), with the
    value given, except for the ``secrets`` fields and whole-model errors (never echoed)."""
    problems = []
    for err in exc.errors():
        name = "_".join(str(part) for part in err["loc"]).upper()
        message = str(err["msg"]).removeprefix("Value error, ")
        shown = err["loc"] and str(err["loc"][0]) not in secrets and "input" in err
        got = f" (got {err['input']!r})" if shown else ""
        problems.append(f"{prefix}{name}: {message}{got}" if name else message)
    return "invalid settings: " + "; ".join(problems)


@lru_cache
def get_settings() -> CoreSettings:
    try:
        return CoreSettings()
    except ValidationError as exc:
        raise SettingsError(describe_validation_error(exc, "VERTICALS_")) from None
