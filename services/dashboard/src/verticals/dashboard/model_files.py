"""A model version's files the page links to: its card and its reports (confusion matrices,
training curve, metrics), read from the registry through the core."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from verticals.core.registry import ModelRegistry, RegistryError
from verticals.dashboard.registry_view import NotFound

REPORT = re.compile(r"^[A-Za-z0-9_.-]+\.(png|json)$")
"""Report files served: PNG figures and JSON metrics, by plain file name only."""


def _version_dir(registry: ModelRegistry, task: str, version: int) -> Path:
    if task not in registry.tasks():
        raise NotFound(f"no task '{task}' in the registry")
    if version not in registry.versions(task):
        raise NotFound(f"task '{task}' has no version {version}")
    return registry.path(task, version)


def reports(registry: ModelRegistry, task: str, version: int) -> list[str]:
    """The version's report files (``reports/*.png|json``), sorted."""
    folder = _version_dir(registry, task, version) / "reports"
    if not folder.is_dir():
        return []
    return sorted(p.name for p in folder.iterdir() if p.is_file() and REPORT.match(p.name))


def report_path(registry: ModelRegistry, task: str, version: int, name: str) -> Path:
    """One report file; only names that ``reports`` lists (no paths, no other files)."""
    if name not in reports(registry, task, version):
        raise NotFound(f"{task} v{version} has no report {name!r}")
    return _version_dir(registry, task, version) / "reports" / name


def card(registry: ModelRegistry, task: str, version: int) -> dict[str, Any]:
    _version_dir(registry, task, version)
    try:
        return registry.card(task, version)
    except (RegistryError, OSError, ValueError) as exc:
        raise NotFound(f"{task} v{version}: no readable card ({exc})") from None
