"""Learning from the event log: (item, next item) and co-interaction pairs, contrastive
fine-tuning of the item encoder with the core, and an offline HR@10/NDCG@10 gate.

The gate: each user's last distinct item is held out (users with >= 3 items); pairs come only
from the remaining history; both encoders rank all items for those users with the served scorer
(variant A). The candidate is promoted only if HR@10 and NDCG@10 are both at least as good and
one is better.
"""

from __future__ import annotations

import random
import tempfile
from collections.abc import Callable
from typing import Any

import numpy as np

from verticals.recommender.movielens import MovieLens, evaluate
from verticals.recommender.settings import RecommenderSettings, ScorerWeights


def build_pairs(
    data: MovieLens,
    held_out: set[int],
    window: int,
    max_pairs: int,
    seed: int = 0,
    max_per_text: int = 2,
) -> list[tuple[str, str]]:
    """(item, next item) pairs and co-interaction pairs (within ``window``) from each user's
    time-ordered history, the held-out events left out; identical texts skipped. Each text
    appears at most ``max_per_text`` times per side, so popular items neither dominate the
    loss nor show up as in-batch false negatives."""
    per_user: dict[str, list[int]] = {}
    for position, (user, item, _) in enumerate(data.events):
        if position not in held_out:
            per_user.setdefault(user, []).append(item)
    nxt: list[tuple[int, int]] = []
    co: list[tuple[int, int]] = []
    for items in per_user.values():
        for i, item in enumerate(items):
            for j in range(i + 1, min(i + 1 + window, len(items))):
                if data.texts[item] != data.texts[items[j]]:
                    (nxt if j == i + 1 else co).append((item, items[j]))
    rng = random.Random(seed)
    rng.shuffle(nxt)
    rng.shuffle(co)
    used_q: dict[int, int] = {}
    used_p: dict[int, int] = {}
    chosen: list[tuple[str, str]] = []
    for query, positive in nxt + co:  # next-item pairs first
        if used_q.get(query, 0) >= max_per_text or used_p.get(positive, 0) >= max_per_text:
            continue
        used_q[query] = used_q.get(query, 0) + 1
        used_p[positive] = used_p.get(positive, 0) + 1
        chosen.append((data.texts[query], data.texts[positive]))
        if len(chosen) >= max_pairs:
            break
    rng.shuffle(chosen)
    return chosen


def encoder_config(task: str, epochs: int = 1) -> Any:
    """The core's contrastive fine-tuning of the item encoder on in-memory pairs."""
    from verticals.core.config import DataConfig, ModelConfig, TrainConfig, TrainingConfig

    return TrainConfig(
        task=task,
        kind="embedding",
        method="full",
        data=DataConfig(validation_fraction=0.05, test_fraction=0.05),
        model=ModelConfig(max_length=64),
        training=TrainingConfig(
            epochs=epochs, batch_size=32, learning_rate=3e-5, patience=0, temperature=0.05
        ),
    )


def pair_records(pairs: list[tuple[str, str]]) -> list[dict[str, object]]:
    return [{"query": query, "positive": positive} for query, positive in pairs]


def train_encoder(
    pairs: list[tuple[str, str]],
    task: str,
    registry: Any,
    epochs: int = 1,
    show_progress: bool = False,
) -> Any:
    """Contrastive fine-tuning with the core; registered, not made current."""
    from verticals.core.training import run_training

    return run_training(
        encoder_config(task, epochs),
        registry,
        show_progress=show_progress,
        first_becomes_current=False,
        records=pair_records(pairs),
    )


def gate(before: dict[str, float], after: dict[str, float]) -> bool:
    hr, ndcg = "hr@10", "ndcg@10"
    return (
        after[hr] >= before[hr]
        and after[ndcg] >= before[ndcg]
        and (after[hr] > before[hr] or after[ndcg] > before[ndcg])
    )


def log_as_interactions(settings: RecommenderSettings) -> tuple[MovieLens, list[int]]:
    """The service's event log and catalog as dense interactions (first touch per user-item)."""
    from verticals.recommender.schemas import ItemIn
    from verticals.recommender.store import Store

    store = Store(settings.sqlalchemy_url("recommender"))
    with store.session() as session:
        items = store.item_texts(session)
    keys = [k for k, _ in items]
    dense = {d["id"]: i for i, (_, d) in enumerate(items)}
    texts = [ItemIn(**{k: v for k, v in d.items() if k != "updated_at"}).text() for _, d in items]
    events: list[tuple[str, int, float]] = []
    touched: set[tuple[str, int]] = set()
    for batch in store.iter_events():
        for user, item_id, _, ts in batch:
            item = dense.get(item_id)
            if item is not None and (user, item) not in touched:
                touched.add((user, item))
                events.append((user, item, ts))
    store.db.dispose()
    per_user: dict[str, list[int]] = {}
    for position, (user, _, _) in enumerate(events):
        per_user.setdefault(user, []).append(position)
    test = {u: p[-1] for u, p in per_user.items() if len(p) >= 3}
    validation = {u: p[-2] for u, p in per_user.items() if len(p) >= 3}
    return MovieLens(texts, events, test, validation), keys


def finetune_from_log(
    settings: RecommenderSettings,
    max_pairs: int = 4000,
    epochs: int = 1,
    log: Callable[[str], None] = print,
    registry: Any = None,
) -> dict[str, Any]:
    """Fine-tune on the service's event log; promote only if the offline gate passes."""
    from verticals.core.inference import Encoder
    from verticals.core.registry import ModelRegistry
    from verticals.core.training import train_and_gate
    from verticals.recommender.pipeline import load_encoder

    data, _ = log_as_interactions(settings)
    if len(data.test) < 5:
        return {"promoted": False, "reason": f"only {len(data.test)} users with >= 3 items"}
    held = set(data.test.values())
    pairs = build_pairs(data, held, settings.cooccurrence_window, max_pairs)
    if len(pairs) < 20:
        return {"promoted": False, "reason": f"only {len(pairs)} training pairs"}
    log(f"{len(pairs)} pairs from {len(data.events)} interactions; {len(data.test)} users held out")
    registry = registry or ModelRegistry.default()
    scorer = {"served": settings.variant_a.model_copy(update={"mmr_lambda": 1.0})}
    window = settings.cooccurrence_window

    def served(encoder: Any) -> dict[str, float]:
        return evaluate(data, encoder.encode(data.texts), settings, scorer, window)["served"]

    gated = train_and_gate(
        encoder_config(settings.encoder_task, epochs),
        lambda _: served(load_encoder(settings, registry)),  # the current one, or the base
        lambda outcome: served(Encoder.from_directory(outcome.path)),
        gate,
        registry,
        records=pair_records(pairs),
        show_progress=True,
    )
    before, after, promoted = gated.current, gated.candidate, gated.promoted
    log(f"offline gate: before {before} after {after}: {'promoted' if promoted else 'kept'}")
    return {
        "version": gated.outcome.version,
        "pairs": len(pairs),
        "before": before,
        "after": after,
        "promoted": promoted,
        "note": "restart the service to re-encode the catalog with a promoted encoder",
    }


def finetune_movielens(
    data: MovieLens,
    settings: RecommenderSettings,
    scorers: dict[str, ScorerWeights],
    window: int,
    max_pairs: int = 4000,
    epochs: int = 1,
) -> dict[str, Any]:
    """The benchmark's fine-tuned figures: train on MovieLens training history only (validation
    and test items held out), in a throw-away registry (never shipped), score the test items."""
    from verticals.core.inference import Encoder
    from verticals.core.registry import ModelRegistry

    held = set(data.test.values()) | set(data.validation.values())
    pairs = build_pairs(data, held, window, max_pairs)
    with tempfile.TemporaryDirectory(prefix="recommender-ml-registry-") as root:
        outcome = train_encoder(pairs, "movielens-eval-encoder", ModelRegistry(root), epochs)
        vectors = Encoder.from_directory(outcome.path).encode(data.texts)
    figures = evaluate(data, np.asarray(vectors), settings, scorers, window)
    return {
        "pairs": len(pairs),
        "train_seconds": round(outcome.seconds, 1),
        "figures": figures,
    }
