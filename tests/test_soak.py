"""The soak script (bench/soak.py, `make soak`) in its short mode, so it cannot rot: the three
services and the broker under mixed load, a news consumer and the recommender killed and
restarted, every message accounted and no acknowledged write lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.slow  # about 100 s on 2 cores: three services start, two restart
@pytest.mark.timeout(480)
def test_short_soak_loses_nothing(tmp_path: Path) -> None:
    out = tmp_path / "soak.json"
    run = subprocess.run(
        [sys.executable, str(REPO / "bench" / "soak.py"), "--duration", "20", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=450,
    )
    assert out.exists(), run.stdout[-3000:] + run.stderr[-3000:]
    result = json.loads(out.read_text())
    assert run.returncode == 0, json.dumps(result, indent=1)
    assert result["restarts"] == 2 and result["requests"] > 50
    assert result["errors_5xx"] == 0 and result["acknowledged_writes_lost"] == 0
    assert result["messages_in"] > 100 and result["messages_accounted"] == result["messages_in"]
    assert result["dead_lettered_by_reason"].get("future_timestamp", 0) > 0
    assert result["acknowledged_events"] > 0 and result["acknowledged_kb_entries"] > 0
    assert set(result["max_rss_mb"]) == {"news_monitor", "support_bot", "recommender", "broker"}
