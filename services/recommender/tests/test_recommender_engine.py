from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from verticals.core.data import DataError
from verticals.recommender.ingest import read_events, read_items
from verticals.recommender.pipeline import RecommenderError, assign_variant
from verticals.recommender.schemas import EventIn, ItemIn


def _event(user: str, item: str, kind: str = "view", hours_ago: float = 0.0) -> EventIn:
    ts = datetime.now(UTC) - timedelta(hours=hours_ago)
    return EventIn(user_id=user, item_id=item, type=kind, timestamp=ts)  # type: ignore[arg-type]


def test_persistence_across_restart(make_engine: Any, catalog: list[ItemIn]) -> None:
    first = make_engine()
    first.upsert_items(catalog)
    first.delete_items([catalog[5].id])
    first.ingest_events([_event("p", catalog[i].id, "purchase") for i in (1, 2, 3)])
    before = first.recommend("p", 10, first.filters())[1]
    first.close()

    second = make_engine()
    assert len(second.index) == len(catalog) - 1 and catalog[5].id not in second.meta.key_of
    assert second.model.users["p"].events == 3
    after = second.recommend("p", 10, second.filters())[1]
    assert after.strategy == "personal"
    assert after.keys.tolist() == before.keys.tolist()
    np.testing.assert_allclose(after.scores, before.scores, rtol=1e-5)
    key = second.meta.key_of[catalog[0].id]
    np.testing.assert_array_equal(second.index.table.data[key], first.index.table.data[key])


def test_user_vector_is_decayed_weighted_mean(make_engine: Any, catalog: list[ItemIn]) -> None:
    engine = make_engine(user_half_life_hours=24.0)
    engine.upsert_items(catalog[:10])
    a, b = catalog[0].id, catalog[1].id
    engine.ingest_events([_event("w", a, "view", hours_ago=24), _event("w", b, "purchase")])
    va = engine.index.table.data[engine.meta.key_of[a]]
    vb = engine.index.table.data[engine.meta.key_of[b]]
    expected = 0.5 * 1.0 * va + 8.0 * vb  # view weight 1 halved by one half-life; purchase 8
    expected /= np.linalg.norm(expected)
    np.testing.assert_allclose(engine.model.users["w"].vector(), expected, atol=1e-5)


def test_index_switches_to_ivf_and_updates_without_rebuild(
    make_engine: Any, catalog: list[ItemIn]
) -> None:
    engine = make_engine(exact_index_max_items=40, ivf_nprobe=64)
    engine.upsert_items(catalog[:40])
    assert engine.index.kind == "flat"
    engine.upsert_items(catalog[40:])
    assert engine.index.kind == "ivf" and engine.index.index.ntotal == len(catalog)
    ivf = engine.index.index
    renamed = catalog[3].model_copy(update={"title": "Arctic expedition snowshoes", "tags": []})
    engine.upsert_items([renamed])
    engine.delete_items([catalog[4].id])
    assert engine.index.index is ivf and ivf.ntotal == len(catalog) - 1
    query = engine.encoder.encode(["snowshoes for an arctic expedition"])[0]
    keys, _ = engine.index.search(query, 3)
    assert engine.meta.key_of[catalog[3].id] == keys[0]
    assert engine.meta.key_of.get(catalog[4].id) is None


def test_ab_assignment_is_stable_and_split(make_engine: Any, catalog: list[ItemIn]) -> None:
    variants = [assign_variant(f"user-{i}", 0.5, "s") for i in range(400)]
    assert variants == [assign_variant(f"user-{i}", 0.5, "s") for i in range(400)]
    assert 150 < variants.count("B") < 250
    assert set(assign_variant(f"u{i}", 0.0, "s") for i in range(50)) == {"A"}
    engine = make_engine(variant_b_share=0.5)
    engine.upsert_items(catalog)
    names = {engine.recommend(f"user-{i}", 5, engine.filters())[0] for i in range(20)}
    assert names == {"A", "B"}


def test_engine_rejects_bad_batches(make_engine: Any, catalog: list[ItemIn]) -> None:
    engine = make_engine(max_batch=3)
    engine.upsert_items(catalog[:3])
    with pytest.raises(RecommenderError, match="duplicate"):
        engine.upsert_items([catalog[0], catalog[0]])
    with pytest.raises(RecommenderError) as err:
        engine.ingest_events([_event("u", catalog[0].id)] * 4)
    assert err.value.status == 413
    with pytest.raises(RecommenderError) as err:
        engine.ingest_events([_event("u", catalog[0].id), _event("u", "nope")])
    assert err.value.status == 404
    with engine.store.session() as session:
        assert engine.store.count_events(session) == 0


def test_read_items_from_csv_jsonl_parquet(tmp_path: Path, catalog: list[ItemIn]) -> None:
    rows = [
        {**it.model_dump(), "tags": "|".join(it.tags), "attributes": json.dumps(it.attributes)}
        for it in catalog[:5]
    ]
    frame = pd.DataFrame(rows).assign(colour="red")
    frame.to_csv(tmp_path / "c.csv", index=False)
    frame.to_parquet(tmp_path / "c.parquet")
    (tmp_path / "c.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    for name in ("c.csv", "c.parquet", "c.jsonl"):
        items = read_items(tmp_path / name)
        assert [i.id for i in items] == [i.id for i in catalog[:5]]
        assert items[0].tags == catalog[0].tags and items[0].price == catalog[0].price
    assert read_items(tmp_path / "c.csv")[0].attributes["colour"] == "red"
    frame.iloc[[0, 0]].to_csv(tmp_path / "dup.csv", index=False)
    with pytest.raises(DataError, match="duplicate id"):
        read_items(tmp_path / "dup.csv")
    frame.assign(price="cheap").to_csv(tmp_path / "bad.csv", index=False)
    with pytest.raises(DataError, match="row 1"):
        read_items(tmp_path / "bad.csv")
    pd.DataFrame([{"user_id": "u", "item_id": "i", "type": "buy"}]).to_csv(
        tmp_path / "e.csv", index=False
    )
    with pytest.raises(DataError, match="row 1: type"):
        read_events(tmp_path / "e.csv")


def stored_titles(data_dir: Path) -> dict[str, str]:
    """What the service's database holds: item id -> title."""
    from verticals.recommender.settings import RecommenderSettings
    from verticals.recommender.store import Store

    store = Store(RecommenderSettings(data_dir=data_dir).sqlalchemy_url("recommender"))
    with store.session() as session:
        items = {d["id"]: d["title"] for _, d in store.item_texts(session)}
    store.db.dispose()
    return items


def test_cli_import_and_delete(tmp_path: Path, catalog: list[ItemIn], monkeypatch: Any) -> None:
    from typer.testing import CliRunner

    from verticals.recommender.cli import app

    path = tmp_path / "items.jsonl"
    path.write_text("".join(it.model_dump_json() + "\n" for it in catalog[:4]))
    monkeypatch.setenv("VERTICALS_RECOMMENDER_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("VERTICALS_REGISTRY_DIR", str(tmp_path / "registry"))
    runner = CliRunner()
    result = runner.invoke(app, ["import", str(path)])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1]) == {
        "created": 4,
        "updated": 0,
        "items": 4,
    }
    assert stored_titles(tmp_path / "data") == {it.id: it.title for it in catalog[:4]}
    result = runner.invoke(app, ["delete", catalog[0].id, "ghost"])
    assert json.loads(result.output.strip().splitlines()[-1]) == {
        "deleted": 1,
        "missing": ["ghost"],
    }
    assert stored_titles(tmp_path / "data") == {it.id: it.title for it in catalog[1:4]}
    bad = tmp_path / "bad.csv"
    bad.write_text("id,title,price\na,Thing,-3\n")
    result = runner.invoke(app, ["import", str(bad)])
    assert result.exit_code == 2 and "row 1" in result.output


def test_a_catalog_without_any_events_still_recommends(
    make_engine: Any, catalog: list[ItemIn]
) -> None:
    from verticals.recommender.catalog import Filters

    engine = make_engine()
    engine.upsert_items(catalog)
    _, ranked = engine.recommend("first-visitor", 5, Filters())
    assert ranked.strategy == "cold_start_newest" and len(ranked.keys) == 5
    newest = [item.id for item in catalog if item.in_stock][-5:][::-1]
    assert [engine.meta.ids[k] for k in ranked.keys] == newest
    category = catalog[0].category
    _, only = engine.recommend("first-visitor", 3, Filters(categories=frozenset({category})))
    assert only.keys.size and all(engine.meta.categories[k] == category for k in only.keys)
    engine.ingest_events([_event("someone", catalog[0].id, "purchase")])
    _, popular = engine.recommend("second-visitor", 5, Filters())
    assert popular.strategy == "cold_start_popular"
