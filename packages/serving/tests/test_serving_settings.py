"""The settings base every service shares: ports in range, a strong admin key in production,
and errors that name the variable on one line without ever echoing a secret."""

from __future__ import annotations

import secrets

import pytest
from pydantic_settings import SettingsConfigDict

from verticals.core.settings import SettingsError
from verticals.serving.settings import ServiceSettings, key_weakness, load_settings


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VERTICALS_DEMO_", frozen=True)

    broker_port: int = 9092


def error_of(monkeypatch: pytest.MonkeyPatch, **env: str) -> str:
    for name, value in env.items():
        monkeypatch.setenv(f"VERTICALS_DEMO_{name}", value)
    with pytest.raises(SettingsError) as caught:
        load_settings(DemoSettings)
    return str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("PORT", "99999"), ("PORT", "-1"), ("BROKER_PORT", "-5"), ("BROKER_PORT", "0")],
)
def test_ports_out_of_range_are_refused(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    message = error_of(monkeypatch, **{name: value})
    assert message.startswith(f"invalid settings: VERTICALS_DEMO_{name}: must be a TCP port")
    assert "\n" not in message


def test_every_service_range_checks_its_ports(monkeypatch: pytest.MonkeyPatch) -> None:
    """Through the base class: a service's own port fields are checked too."""
    from verticals.news_monitor.settings import NewsSettings
    from verticals.recommender.settings import RecommenderSettings

    monkeypatch.setenv("VERTICALS_RECOMMENDER_PORT", "99999")
    with pytest.raises(SettingsError, match="VERTICALS_RECOMMENDER_PORT: must be a TCP port"):
        load_settings(RecommenderSettings)
    monkeypatch.setenv("VERTICALS_NEWS_BROKER_PORT", "-5")
    with pytest.raises(SettingsError, match="VERTICALS_NEWS_BROKER_PORT: must be a TCP port"):
        load_settings(NewsSettings)


def test_port_zero_means_any_free_port(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERTICALS_DEMO_PORT", "0")
    assert load_settings(DemoSettings).port == 0


@pytest.mark.parametrize(
    "key",
    [
        "x",
        "change-me",
        "change-me ",
        " Zq3_vM9-kT2pW8xL4nR6yB1cH5dF7gJ0sA",
        "CHANGE-ME-Zq3_vM9-kT2pW8xL4nR6yB1cH5dF7gJ0sA",
        "short-but-random-1",
        "a" * 64,
        "abababababababababababababababab",
    ],
)
def test_production_refuses_a_weak_admin_key_without_printing_it(
    monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    message = error_of(monkeypatch, ENVIRONMENT="production", ADMIN_API_KEY=key)
    assert "VERTICALS_DEMO_ADMIN_API_KEY" in message and "\n" not in message
    assert key.strip() not in message


def test_production_accepts_a_random_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in (secrets.token_urlsafe(32), secrets.token_hex(24), secrets.token_urlsafe(16)):
        assert key_weakness(key) is None
        monkeypatch.setenv("VERTICALS_DEMO_ENVIRONMENT", "production")
        monkeypatch.setenv("VERTICALS_DEMO_ADMIN_API_KEY", key)
        assert load_settings(DemoSettings).admin_api_key.get_secret_value() == key


def test_local_use_keeps_the_default_key(monkeypatch: pytest.MonkeyPatch) -> None:
    assert load_settings(DemoSettings).admin_api_key.get_secret_value() == "change-me"


def test_a_settings_error_never_chains_the_pydantic_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """pydantic's own error text carries ``input_value``: a traceback of it would print the key."""
    monkeypatch.setenv("VERTICALS_DEMO_ENVIRONMENT", "production")
    monkeypatch.setenv("VERTICALS_DEMO_ADMIN_API_KEY", "hunter2")
    with pytest.raises(SettingsError) as caught:
        load_settings(DemoSettings)
    assert caught.value.__cause__ is None and caught.value.__context__ is None
    assert "hunter2" not in str(caught.value)
