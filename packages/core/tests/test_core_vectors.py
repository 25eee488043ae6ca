"""``VectorIndex`` directly: exact search, updates and deletes without a rebuild, the switch to
IVF past ``exact_max`` (still finding each vector itself), batched search and exact re-scoring."""

from __future__ import annotations

import numpy as np

from verticals.core.vectors import VectorIndex, VectorTable


def unit(rows: int, dim: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).normal(size=(rows, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_exact_search_update_and_delete() -> None:
    vectors = unit(50, 16, seed=1)
    index = VectorIndex(16, exact_max=1000)
    keys = np.arange(100, 150, dtype=np.int64)  # sparse, large keys grow the table
    index.upsert(keys, vectors)
    assert len(index) == 50 and index.kind == "flat"
    found, scores = index.search(vectors[7], 3)
    assert found[0] == 107 and abs(scores[0] - 1.0) < 1e-5
    assert list(scores) == sorted(scores, reverse=True)
    # an update replaces the vector under its key (no duplicate), a delete removes it
    index.upsert(np.array([107]), -vectors[7:8])
    found, _ = index.search(vectors[7], 50)
    assert len(index) == 50 and list(found).count(107) == 1 and found[-1] == 107
    index.remove(np.array([107, 999_999]))  # an unknown key is ignored
    found, _ = index.search(vectors[7], 50)
    assert len(index) == 49 and 107 not in found and len(found) == 49
    np.testing.assert_allclose(index.scores(np.array([108]), vectors[8]), [1.0], atol=1e-5)


def test_switches_to_ivf_past_exact_max_and_still_finds_each_vector() -> None:
    vectors = unit(600, 8, seed=2)
    index = VectorIndex(8, exact_max=500, nprobe=64)
    index.upsert(np.arange(400), vectors[:400])
    assert index.kind == "flat"
    index.upsert(np.arange(400, 600), vectors[400:])
    assert index.kind == "ivf" and len(index) == 600
    ids, scores = index.search_many(vectors[::50], 1)
    assert ids[:, 0].tolist() == list(range(0, 600, 50))
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    index.rebuild()  # at start: the table decides (600 > 500 stays IVF)
    assert index.kind == "ivf" and len(index) == 600


def test_search_many_matches_single_searches_and_handles_empty() -> None:
    vectors = unit(40, 8, seed=3)
    queries = unit(5, 8, seed=4)
    index = VectorIndex(8)
    ids, scores = index.search_many(queries, 3)
    assert ids.shape == (5, 0) and scores.shape == (5, 0)  # nothing indexed yet
    index.upsert(np.arange(40), vectors)
    ids, scores = index.search_many(queries, 100)  # k larger than the index
    assert ids.shape == (5, 40)
    for row, query in enumerate(queries):
        one, cos = index.search(query, 40)
        assert one.tolist() == ids[row].tolist()
        np.testing.assert_allclose(cos, (vectors @ query)[one], atol=1e-5)


def test_table_grows_and_keeps_presence() -> None:
    table = VectorTable(4)
    table.set(np.array([3, 5000]), np.ones((2, 4), np.float32))
    assert len(table) == 2 and table.keys().tolist() == [3, 5000]
    table.remove(np.array([3, 10**9]))
    assert table.keys().tolist() == [5000] and not table.data[3].any()
