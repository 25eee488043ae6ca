"""The two vector stores behind one interface: FAISS in process and pgvector in PostgreSQL.

Both must filter inside the search: a filter that only a few far-away vectors pass still
returns k of them (a search that filtered its top-k afterwards would return none)."""

from __future__ import annotations

import numpy as np
import pytest

from verticals.core.vectorstore import FaissStore, PgVectorStore, VectorStore

DIM = 16


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def dataset(n: int = 3000) -> tuple[np.ndarray, np.ndarray, list[dict[str, object]], np.ndarray]:
    """Keys, unit vectors, metadata (1% ``rare``, tags on every 3rd) and a query that the rare
    ones are far from."""
    rng = np.random.default_rng(0)
    vectors = unit(rng.normal(size=(n, DIM)))
    query = vectors[0].copy()
    meta: list[dict[str, object]] = []
    rare = np.argsort(vectors @ query)[:30]  # the 30 farthest from the query
    for i in range(n):
        meta.append(
            {
                "kind": "rare" if i in set(rare.tolist()) else "common",
                "tags": ["even", "third"] if i % 3 == 0 else ["odd"],
            }
        )
    return np.arange(n, dtype=np.int64) * 2, vectors, meta, query


def exact(vectors: np.ndarray, query: np.ndarray, ok: np.ndarray, k: int) -> list[int]:
    scores = np.where(ok, vectors @ query, -np.inf)
    return [int(i) * 2 for i in np.argsort(-scores)[:k]]


def check_store(store: VectorStore) -> None:
    keys, vectors, meta, query = dataset()
    store.upsert(keys, vectors, meta)
    assert len(store) == len(keys)
    ids, scores = store.search_many(query.reshape(1, -1), 10)
    assert ids[0, 0] == 0 and scores[0, 0] == pytest.approx(1.0, abs=1e-4)
    rare = np.array([m["kind"] == "rare" for m in meta])
    ids, scores = store.search_many(query.reshape(1, -1), 10, {"kind": "rare"})
    assert sorted(ids[0].tolist()) == sorted(exact(vectors, query, rare, 10))
    assert all(np.diff(scores[0]) <= 1e-6)  # best first
    third = np.array(["third" in m["tags"] for m in meta])  # type: ignore[operator]
    ids, _ = store.search_many(query.reshape(1, -1), 10, {"tags": "third"})
    truth = exact(vectors, query, third, 10)
    assert len(set(ids[0].tolist()) & set(truth)) >= 9
    ids, _ = store.search_many(query.reshape(1, -1), 10, {"kind": "nowhere"})
    assert (ids == -1).all()
    # metadata replaced by an upsert: the new value matches, the old one no longer does
    store.upsert(keys[1:2], vectors[1:2], [{"kind": "moved", "tags": []}])
    ids, _ = store.search_many(query.reshape(1, -1), 5, {"kind": "moved"})
    assert ids[0].tolist()[:1] == [2] and (ids[0][1:] == -1).all()
    ids, _ = store.search_many(vectors[1:2], 3000, {"kind": "common"})
    assert 2 not in ids[0].tolist()
    store.remove(keys[:1])
    ids, _ = store.search_many(query.reshape(1, -1), 5)
    assert 0 not in ids[0].tolist()
    ids, _ = store.search_many(query.reshape(1, -1), 3000, {"kind": "common"})
    assert 0 not in ids[0].tolist()
    assert store.scores(keys[1:3], query) == pytest.approx(vectors[1:3] @ query, abs=1e-5)


def test_faiss_store_filters_inside_the_search() -> None:
    check_store(FaissStore(DIM))


def test_faiss_store_filters_with_an_id_selector_past_the_exact_size() -> None:
    store = FaissStore(DIM, exact_max=1000)  # IVF
    keys, vectors, meta, query = dataset(9000)
    store.upsert(keys, vectors, meta)
    assert store.kind == "ivf"
    odd = np.array(["odd" in m["tags"] for m in meta])  # type: ignore[operator]
    ids, _ = store.search_many(query.reshape(1, -1), 10, {"tags": "odd"})  # 6000 allowed
    assert set(ids[0].tolist()) <= {int(k) for k in keys[odd]}
    assert len(ids[0]) == 10


def test_pgvector_store_searches_and_filters_in_the_database(postgres_url: str) -> None:
    from sqlalchemy import create_engine

    # as on a large table, the planner takes the HNSW index (on 3000 rows it would read the
    # scope's rows in full and sort them): the filter must then be applied inside the scan
    # (without hnsw.iterative_scan the rare filter returns nothing)
    options = "-c enable_seqscan=off -c enable_bitmapscan=off -c enable_sort=off"
    engine = create_engine(postgres_url, connect_args={"options": options})
    try:
        store = PgVectorStore(engine, "test_vectors", DIM, scope="tenant-a")
        store.ensure()
        store.ensure()  # idempotent
        check_store(store)
        other = store.scoped("tenant-b")
        assert len(other) == 0  # scopes do not see each other
        ids, _ = other.search_many(np.ones((1, DIM), np.float32), 5)
        assert (ids == -1).all()
        # written in the caller's transaction: a rollback leaves nothing
        with pytest.raises(RuntimeError), engine.begin() as conn:
            other.write(conn, np.array([7]), unit(np.ones((1, DIM))), [{"kind": "x"}])
            raise RuntimeError("crash before commit")
        assert len(other) == 0
        with pytest.raises(ValueError, match="16-d"):
            PgVectorStore(engine, "test_vectors", 8).ensure()
    finally:
        engine.dispose()


def test_metadata_with_nul_is_stored_and_matched(postgres_url: str) -> None:
    """PostgreSQL's jsonb cannot hold NUL: both stores keep it as U+FFFD, as the services'
    text columns do, and a filter with NUL matches it (no error)."""
    from sqlalchemy import create_engine

    engine = create_engine(postgres_url)
    try:
        pg = PgVectorStore(engine, "nul_vectors", DIM, scope="t")
        pg.ensure()
        for store in (pg, FaissStore(DIM)):
            vectors = unit(np.eye(2, DIM) + 0.01)
            store.upsert(np.array([1, 2]), vectors, [{"k": "a\x00b"}, {"k": "c"}])
            ids, _ = store.search_many(vectors[:1], 5, {"k": "a\x00b"})
            assert ids[0].tolist()[:1] == [1] and 2 not in ids[0].tolist()
    finally:
        engine.dispose()
