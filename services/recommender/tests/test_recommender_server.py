from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx

from verticals.recommender.settings import SHARED_DIR
from verticals.serving.testing import free_port


def test_up_serves_the_sample_catalog(tmp_path: Path) -> None:
    assert (SHARED_DIR / "sample_catalog.jsonl").exists()
    port = free_port()
    env = {
        **os.environ,
        "HF_HUB_OFFLINE": "1",
        "VERTICALS_RECOMMENDER_DATA_DIR": str(tmp_path),
        "VERTICALS_RECOMMENDER_PORT": str(port),
        "VERTICALS_REGISTRY_DIR": str(tmp_path / "registry"),
    }
    cli = Path(sys.executable).parent / "verticals"
    server = subprocess.Popen(
        [str(cli), "recommend", "up"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert server.poll() is None, server.stderr.read().decode() if server.stderr else ""
            try:
                health = httpx.get(f"{base}/health", timeout=2).json()
                break
            except httpx.HTTPError:
                time.sleep(0.5)
        assert health["items"] == 300 and health["index"] == "flat"
        r = httpx.post(
            f"{base}/v1/events", json={"user_id": "u1", "item_id": "sku-000001", "type": "click"}
        )
        assert r.json() == {"accepted": 1}
        body = httpx.get(f"{base}/v1/users/u1/recommendations?k=5").json()
        assert body["strategy"] == "personal" and len(body["items"]) == 5
        assert body["model_version"] == "base:v0" and body["variant"] in {"A", "B"}
    finally:
        server.terminate()
        server.wait(timeout=30)
