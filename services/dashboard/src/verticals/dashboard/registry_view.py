"""The model registry as the dashboard shows it, and its two actions (no web framework here)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from verticals.core.registry import ModelRegistry, RegistryError


class NotFound(LookupError):
    """An unknown task or version."""


class Refused(RuntimeError):
    """The registry refused the action (a worse candidate, nothing to roll back to)."""


def _summary(card: dict[str, Any]) -> dict[str, Any]:
    data = card.get("data") or {}
    metrics = {k: v for k, v in (card.get("metrics") or {}).items() if isinstance(v, int | float)}
    primary = card.get("primary_metric")
    return {
        "version": card["version"],
        "current": card["current"],
        "kind": card.get("kind"),
        "method": card.get("method"),
        "base_model": card.get("base_model"),
        "created_at": card.get("created_at"),
        "primary_metric": primary,
        "score": metrics.get(primary) if primary else None,
        "metrics": metrics,
        "rows": data.get("rows"),
        "test_rows": data.get("test"),
        "imported_from": card.get("imported_from"),
    }


def list_models(registry: ModelRegistry) -> dict[str, Any]:
    """Every task with its versions (newest first), the current one and its promotion history."""
    tasks = []
    for task in registry.tasks():
        versions = []
        for version in reversed(registry.versions(task)):
            try:
                versions.append(_summary(registry.card(task, version)))
            except (RegistryError, OSError, ValueError, KeyError) as exc:
                versions.append({"version": version, "current": False, "error": str(exc)})
        state = registry.state(task)
        tasks.append(
            {
                "task": task,
                "current": state["current"],
                "history": state["history"],
                "can_rollback": len(state["history"]) >= 2,
                "versions": versions,
            }
        )
    return {"registry": str(registry.root), "tasks": tasks}


def promote(registry: ModelRegistry, task: str, version: int, force: bool) -> dict[str, Any]:
    """Make ``version`` current; refused when it scores worse than the current model (the
    training layer re-scores it: a blocking call, the route runs it in a worker thread)."""
    from verticals.core.training import promote as gated_promote

    if task not in registry.tasks():
        raise NotFound(f"no task '{task}' in the registry")
    if version not in registry.versions(task):
        raise NotFound(f"task '{task}' has no version {version}")
    try:
        promotion = gated_promote(registry, task, version, force=force)
    except RegistryError as exc:
        raise Refused(str(exc)) from None
    return asdict(promotion)


def rollback(registry: ModelRegistry, task: str) -> dict[str, Any]:
    """Return to the model that was current before the last promotion."""
    if task not in registry.tasks():
        raise NotFound(f"no task '{task}' in the registry")
    try:
        return {"task": task, "current": registry.rollback(task)}
    except RegistryError as exc:
        raise Refused(str(exc)) from None
