from __future__ import annotations

from datetime import datetime

import pytest
from fastapi import APIRouter, FastAPI, Query
from fastapi.testclient import TestClient
from pydantic import BaseModel
from pydantic_settings import SettingsConfigDict
from sqlalchemy import String, select
from sqlalchemy.orm import Mapped, mapped_column

from verticals.core.settings import SettingsError
from verticals.serving.app import create_app
from verticals.serving.auth import AdminKey, hash_api_key, key_matches, new_api_key
from verticals.serving.database import Base, Database
from verticals.serving.settings import ServiceSettings, load_settings
from verticals.serving.types import IsoDatetime


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VERTICALS_DEMO_", frozen=True)


class Echo(BaseModel):
    text: str
    count: int


def make_app(**overrides: object) -> FastAPI:
    settings = DemoSettings(max_request_bytes=200, **overrides)  # type: ignore[arg-type]
    router = APIRouter()

    @router.post("/echo")
    def echo(body: Echo) -> Echo:
        return body

    @router.get("/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    @router.get("/secret")
    def secret(_: AdminKey) -> dict[str, str]:
        return {"ok": "yes"}

    return create_app("demo", settings, [router])


def test_health_metrics_and_request_ids() -> None:
    client = TestClient(make_app())
    response = client.get("/health", headers={"x-request-id": "abc123"})
    assert response.json()["status"] == "ok" and response.headers["x-request-id"] == "abc123"
    client.post("/echo", json={"text": "hi", "count": 1})
    metrics = client.get("/metrics").text
    assert 'http_requests_total{method="POST",route="/echo",service="demo",status="200"}' in metrics
    assert "/openapi.json" in client.get("/docs").text


def test_bad_input_gets_a_readable_4xx() -> None:
    client = TestClient(make_app())
    response = client.post("/echo", json={"text": "hi", "count": "many"})
    assert response.status_code == 422
    assert "body.count" in response.json()["detail"]
    big = client.post("/echo", json={"text": "x" * 500, "count": 1})
    assert big.status_code == 413 and "200 bytes" in big.json()["detail"]


def test_an_unhandled_error_is_a_json_500_with_the_request_id() -> None:
    client = TestClient(make_app(), raise_server_exceptions=False)
    response = client.get("/boom", headers={"x-request-id": "r-500"})
    assert response.status_code == 500 and response.headers["x-request-id"] == "r-500"
    assert response.json() == {"detail": "internal server error", "request_id": "r-500"}
    metrics = client.get("/metrics").text
    assert 'http_requests_total{method="GET",route="/boom",service="demo",status="500"}' in metrics
    assert client.get("/health").status_code == 200  # the app carries on


def test_admin_key_is_required() -> None:
    client = TestClient(make_app(admin_api_key="s3cret"))
    assert client.get("/secret").status_code == 401
    assert client.get("/secret", headers={"X-API-Key": "wrong"}).status_code == 401
    assert client.get("/secret", headers={"X-API-Key": "s3cret"}).json() == {"ok": "yes"}
    # a key with non-ASCII header text is refused like any wrong key, not a 500
    client = TestClient(make_app(admin_api_key="s3cret"), raise_server_exceptions=False)
    assert (
        client.get("/secret", headers={"X-API-Key": "s3cr\u00e9t".encode("latin-1")}).status_code
        == 401
    )


def test_api_keys_are_stored_hashed() -> None:
    key = new_api_key("wk")
    stored = hash_api_key(key)
    assert key not in stored and key_matches(key, stored) and not key_matches(key + "x", stored)


def test_settings_errors_name_the_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VERTICALS_DEMO_PORT", "eighty")
    with pytest.raises(SettingsError, match="VERTICALS_DEMO_PORT"):
        load_settings(DemoSettings)
    monkeypatch.delenv("VERTICALS_DEMO_PORT")
    monkeypatch.setenv("VERTICALS_DEMO_ENVIRONMENT", "production")
    with pytest.raises(SettingsError, match="VERTICALS_DEMO_ADMIN_API_KEY: .*default key"):
        load_settings(DemoSettings)


class Tables(Base):
    __abstract__ = True


class Note(Tables):
    __tablename__ = "notes"
    id: Mapped[str] = mapped_column(String, primary_key=True)


def test_database_rolls_back_on_error(tmp_path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'x' / 'demo.db'}")
    db.create_all(Tables)  # type: ignore[arg-type]
    with db.session() as session:
        session.add(Note(id="a"))
    with pytest.raises(RuntimeError), db.session() as session:
        session.add(Note(id="b"))
        raise RuntimeError("boom")
    with db.session() as session:
        assert session.scalars(select(Note.id)).all() == ["a"]


def make_resource_app() -> FastAPI:
    settings = DemoSettings(admin_api_key="s3cret")  # type: ignore[arg-type]
    router = APIRouter()

    @router.get("/things/{thing_id}")
    def get_thing(thing_id: str) -> dict[str, str]:
        return {"id": thing_id}

    @router.put("/things/{thing_id}")
    def put_thing(thing_id: str, body: Echo, _: AdminKey) -> dict[str, str]:
        return {"id": thing_id}

    @router.post("/things/batch")
    def batch(body: Echo) -> dict[str, int]:
        return {"count": body.count}

    @router.get("/since")
    def since(since: IsoDatetime | None = Query(None)) -> dict[str, str | None]:
        return {"since": since.isoformat() if isinstance(since, datetime) else None}

    return create_app("demo", settings, [router])


def test_a_405_lists_every_method_of_the_path() -> None:
    """Starlette's Allow named only the first matching route's methods."""
    client = TestClient(make_resource_app())
    response = client.options("/things/1")
    assert response.status_code == 405 and response.headers["allow"] == "GET, PUT"
    assert response.json() == {"detail": "Method Not Allowed"}
    assert client.delete("/things/1").headers["allow"] == "GET, PUT"


def test_a_concrete_path_takes_precedence_over_a_template() -> None:
    """As OpenAPI reads paths: /things/batch is not /things/{thing_id} with id 'batch'."""
    client = TestClient(make_resource_app())
    response = client.get("/things/batch")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert client.post("/things/batch", json={"text": "a", "count": 2}).json() == {"count": 2}
    assert client.get("/things/other").json() == {"id": "other"}


def test_common_errors_are_documented() -> None:
    paths = TestClient(make_resource_app()).get("/openapi.json").json()["paths"]
    assert {"400", "408", "413", "422"} <= set(paths["/things/batch"]["post"]["responses"])
    put = paths["/things/{thing_id}"]["put"]["responses"]
    assert {"400", "401", "404", "408", "413", "422"} <= set(put)
    assert put["401"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    assert "404" in paths["/things/{thing_id}"]["get"]["responses"]
    assert "401" not in paths["/things/{thing_id}"]["get"]["responses"]


def test_a_datetime_query_refuses_bare_numbers() -> None:
    client = TestClient(make_resource_app())
    for number in ("0.5", "1700000000", "-3", "1e9"):
        response = client.get("/since", params={"since": number})
        assert response.status_code == 422, number
        assert "ISO 8601" in response.json()["detail"]
    ok = client.get("/since", params={"since": "2026-01-31T12:00:00Z"})
    assert ok.status_code == 200 and ok.json()["since"].startswith("2026-01-31T12:00:00")
