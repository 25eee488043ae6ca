from __future__ import annotations

import os
import sys
from pathlib import Path

import httpx

from verticals.recommender.settings import SHARED_DIR
from verticals.serving.testing import ServiceProcess


def test_up_serves_the_sample_catalog(tmp_path: Path) -> None:
    assert (SHARED_DIR / "sample_catalog.jsonl").exists()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VERTICALS_RECOMMENDER_DATA_DIR": str(tmp_path),
        "VERTICALS_RECOMMENDER_PORT": "0",  # the kernel picks; the service prints where
        "VERTICALS_REGISTRY_DIR": str(tmp_path / "registry"),
    }
    cli = Path(sys.executable).parent / "verticals"
    with ServiceProcess([str(cli), "recommend", "up"], env) as server:
        base = server.url
        health = httpx.get(f"{base}/health", timeout=10).json()
        assert health["items"] == 300 and health["index"] == "flat"
        r = httpx.post(
            f"{base}/v1/events", json={"user_id": "u1", "item_id": "sku-000001", "type": "click"}
        )
        assert r.json() == {"accepted": 1}
        body = httpx.get(f"{base}/v1/users/u1/recommendations?k=5").json()
        assert body["strategy"] == "personal" and len(body["items"]) == 5
        assert body["model_version"] == "base:v0" and body["variant"] in {"A", "B"}
