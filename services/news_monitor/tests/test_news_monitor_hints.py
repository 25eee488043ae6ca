"""`verticals news up` prints the demo commands with the broker port only when it moved."""

from __future__ import annotations

from pathlib import Path

from verticals.news_monitor.cli import demo_hints
from verticals.news_monitor.settings import NewsSettings


def test_the_demo_hint_sets_the_broker_port_only_when_it_is_not_the_default(
    tmp_path: Path,
) -> None:
    default = NewsSettings(data_dir=tmp_path)
    hints = demo_hints(default)
    assert (
        hints[0] == "demo: verticals news produce shared/news_monitor/demo_headlines.jsonl --fresh"
    )
    assert not any("VERTICALS_NEWS_BROKER_PORT" in line for line in hints)
    moved = NewsSettings(data_dir=tmp_path, broker_port=default.broker_port + 1)
    assert all(
        line.split(": ", 1)[1].startswith(f"VERTICALS_NEWS_BROKER_PORT={moved.broker_port} ")
        for line in demo_hints(moved)
    )
