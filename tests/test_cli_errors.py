"""Every service's CLI, run as users run it (the installed ``verticals`` console script), ends a
bad setting with one line naming the variable: no traceback, exit code 2, no secret echoed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

VERTICALS = str(Path(sys.executable).parent / "verticals")
SECRET = "hunter2-hunter2"
CASES = [
    (["news", "serve"], {"VERTICALS_NEWS_BROKER_PORT": "-5"}, "VERTICALS_NEWS_BROKER_PORT"),
    (["news", "tail", "x"], {"VERTICALS_NEWS_BROKER_PORT": "-5"}, "VERTICALS_NEWS_BROKER_PORT"),
    (["news", "run"], {"VERTICALS_NEWS_MODEL_TASK": ""}, "VERTICALS_NEWS_MODEL_TASK"),
    (["news", "up"], {"VERTICALS_NEWS_PORT": "99999"}, "VERTICALS_NEWS_PORT"),
    (
        ["support", "serve"],
        {"VERTICALS_SUPPORT_ENVIRONMENT": "production", "VERTICALS_SUPPORT_ADMIN_API_KEY": SECRET},
        "VERTICALS_SUPPORT_ADMIN_API_KEY",
    ),
    (["recommend", "up"], {"VERTICALS_RECOMMENDER_PORT": "99999"}, "VERTICALS_RECOMMENDER_PORT"),
    (
        ["dashboard", "up"],
        {
            "VERTICALS_DASHBOARD_ENVIRONMENT": "production",
            "VERTICALS_DASHBOARD_ADMIN_API_KEY": "change-me ",
        },
        "VERTICALS_DASHBOARD_ADMIN_API_KEY",
    ),
    (["models", "list"], {"VERTICALS_DEVICE": "tpu"}, "VERTICALS_DEVICE"),
]


@pytest.mark.parametrize(("command", "env", "variable"), CASES, ids=lambda c: str(c))
def test_bad_settings_end_in_one_line(
    tmp_path: Path, command: list[str], env: dict[str, str], variable: str
) -> None:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VERTICALS_")}
    result = subprocess.run(
        [VERTICALS, *command],
        env={**clean, "VERTICALS_REGISTRY_DIR": str(tmp_path / "registry"), **env},
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output
    assert "Traceback" not in output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("error: invalid settings: ") and variable in lines[0]
    assert SECRET not in output and "change-me " not in output
