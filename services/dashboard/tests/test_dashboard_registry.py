"""Models: the registry's tasks, versions and card metrics; promote and rollback (admin key)."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from fastapi.testclient import TestClient

from verticals.news_monitor.settings import NewsSettings

TASK = NewsSettings.model_fields["model_task"].default

ADMIN = {"X-API-Key": "test-dashboard-key"}


def _task(client: TestClient) -> dict[str, Any]:
    tasks = client.get("/api/models", headers=ADMIN).json()["tasks"]
    return next(t for t in tasks if t["task"] == TASK)


def test_models_list_versions_with_card_metrics(
    make_dashboard: Callable[..., Any], registry: Any
) -> None:
    with TestClient(make_dashboard()) as client:
        body = client.get("/api/models", headers=ADMIN).json()
        assert body["registry"] == str(registry.root)
        task = _task(client)
        assert task["current"] == 1 and task["history"] == [1] and not task["can_rollback"]
        assert [v["version"] for v in task["versions"]] == [3, 2, 1]
        v1 = task["versions"][2]
        card = registry.card(TASK, 1)
        assert v1["current"] and v1["primary_metric"] == "macro_f1"
        assert v1["score"] == card["metrics"]["macro_f1"] > 0.5  # the shipped model's test macro-F1
        assert v1["metrics"]["topic_macro_f1"] == card["metrics"]["topic_macro_f1"]
        assert v1["kind"] == "classification" and v1["method"] == "lora"
        worse = registry.card(TASK, 3)["metrics"]["macro_f1"]
        assert task["versions"][0]["score"] == worse < v1["score"] - 0.2


def test_promote_and_rollback_need_the_admin_key(
    make_dashboard: Callable[..., Any], registry: Any
) -> None:
    with TestClient(make_dashboard()) as client:
        promote = f"/api/models/{TASK}/promote"
        assert client.post(promote, json={"version": 2}).status_code == 401
        wrong = client.post(promote, json={"version": 2}, headers={"X-API-Key": "wrong"})
        assert wrong.status_code == 401
        assert client.post(f"/api/models/{TASK}/rollback").status_code == 401
        assert registry.current_version(TASK) == 1  # nothing changed

        r = client.post(promote, json={"version": 2}, headers=ADMIN)
        assert r.status_code == 200, r.text
        assert r.json()["version"] == 2 and r.json()["previous"] == 1
        assert r.json()["candidate_score"] == r.json()["current_score"]  # same test set
        assert registry.current_version(TASK) == 2
        task = _task(client)
        assert task["current"] == 2 and task["can_rollback"]
        assert [v["version"] for v in task["versions"] if v["current"]] == [2]

        r = client.post(f"/api/models/{TASK}/rollback", headers=ADMIN)
        assert r.status_code == 200 and r.json() == {"task": TASK, "current": 1}
        assert registry.current_version(TASK) == 1
        again = client.post(f"/api/models/{TASK}/rollback", headers=ADMIN)
        assert again.status_code == 409 and "no earlier model" in again.json()["detail"]


def test_a_worse_model_is_refused_with_the_reason(
    make_dashboard: Callable[..., Any], registry: Any
) -> None:
    """v3 was trained on shuffled labels; its test set is not v1's, so the registry re-scores
    v1 on v3's test set and refuses v3."""
    with TestClient(make_dashboard()) as client:
        promote = f"/api/models/{TASK}/promote"
        r = client.post(promote, json={"version": 3}, headers=ADMIN)
        assert r.status_code == 409
        detail = r.json()["detail"]
        found = re.search(r"macro_f1=([0-9.]+) .* current v1 \(([0-9.]+) on the same set", detail)
        assert detail.startswith("refused:") and found, detail
        candidate, current = float(found.group(1)), float(found.group(2))
        assert candidate == round(registry.card(TASK, 3)["metrics"]["macro_f1"], 4)
        assert current > candidate + 0.2  # v1 really is better on v3's own test set
        assert current != round(registry.card(TASK, 1)["metrics"]["macro_f1"], 4)  # re-scored
        assert registry.current_version(TASK) == 1

        forced = client.post(promote, json={"version": 3, "force": True}, headers=ADMIN)
        assert forced.status_code == 200 and forced.json()["forced"] is True
        assert registry.current_version(TASK) == 3

        missing = client.post(promote, json={"version": 9}, headers=ADMIN)
        assert missing.status_code == 404 and "no version 9" in missing.json()["detail"]
        unknown = client.post("/api/models/nope/rollback", headers=ADMIN)
        assert unknown.status_code == 404
        bad = client.post(promote, json={"version": "two"}, headers=ADMIN)
        assert bad.status_code == 422 and "version" in bad.json()["detail"]
