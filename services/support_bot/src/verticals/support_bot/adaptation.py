"""Per-tenant adaptation of the encoder from the knowledge base alone (no labelled questions).

GPL-style distillation: pseudo-queries are cut out of the tenant's own entries (inverse cloze:
one sentence of an entry is the query, the rest of the entry its passage); the current
encoder finds each pseudo-query's top candidates (hard negatives), a stronger teacher encoder
(all-mpnet-base-v2) scores them, and the MiniLM student learns the teacher's distribution over
them (listwise KL). The student keeps MiniLM's size, so serving costs nothing extra per
question. A slice of the entries' pseudo-queries is held out; the adapted encoder is registered
and becomes current only when it ranks them better than the current one (the gate is recorded
on its card).

Not wired into the service: measured (2026-11-30, three pseudo-queries per entry, 1 epoch,
lr 2e-5, temperature 0.05, mpnet int8 teacher; exact search over whole answers) it did not
help. Real-question hit@1 base -> adapted: Python FAQ 0.776 -> 0.759 (teacher 0.787), Debian
FAQ 0.550 -> 0.533 (teacher 0.617), Savvly FAQ 0.377 -> 0.348 (teacher 0.449). The held-out
pseudo-query MRR moved 0.593 -> 0.571, 0.439 -> 0.445, 0.286 -> 0.273: on the Debian FAQ the
gate would have promoted an encoder that is worse on real questions, so this slice is not a
trustworthy gate either. About 12-25 minutes per collection on the shared 2 cores.
"""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

_SENTENCE = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])")


@dataclass(frozen=True)
class PseudoQuery:
    query: str
    passage: str
    """The source entry without the query sentence (the whole entry if it is one sentence)."""
    source: int
    """Index of the source entry."""


def sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(re.sub(r"\s+", " ", text)) if s.strip()]


def pseudo_queries(texts: Sequence[str], per_entry: int = 3, seed: int = 7) -> list[PseudoQuery]:
    """Up to ``per_entry`` inverse-cloze pseudo-queries per entry: its first sentence and
    random others of 4 to 40 words, each taken out of the entry's passage."""
    rng = random.Random(seed)
    out = []
    for i, text in enumerate(texts):
        parts = sentences(text)
        usable = [j for j, s in enumerate(parts) if 4 <= len(s.split()) <= 40]
        if not usable:
            continue
        chosen = usable[:1] + rng.sample(usable[1:], min(per_entry - 1, len(usable) - 1))
        for j in chosen:
            rest = " ".join(s for k, s in enumerate(parts) if k != j)
            out.append(PseudoQuery(parts[j], rest or text, i))
    return out


@dataclass
class Groups:
    """Each pseudo-query with its candidate passages (its own first) and the teacher's scores."""

    queries: list[str]
    passages: list[list[str]]
    teacher: np.ndarray  # (queries, candidates)


def mine(
    pseudo: Sequence[PseudoQuery],
    texts: Sequence[str],
    student: Any,
    teacher: Any,
    negatives: int = 7,
) -> Groups:
    """The current encoder's top ``negatives`` other entries per pseudo-query, and the teacher's
    cosine of the query with its own passage and with each of them."""
    qs = [p.query for p in pseudo]
    cos = student.encode(qs) @ student.encode(list(texts)).T
    t_entries = teacher.encode(list(texts))
    t_queries = teacher.encode(qs)
    t_own = teacher.encode([p.passage for p in pseudo])
    passages, scores = [], []
    for row, (p, qv, own) in enumerate(zip(pseudo, t_queries, t_own, strict=True)):
        order = [int(j) for j in np.argsort(-cos[row]) if int(j) != p.source][:negatives]
        passages.append([p.passage, *(texts[j] for j in order)])
        scores.append([float(own @ qv), *(float(t_entries[j] @ qv) for j in order)])
    return Groups(qs, passages, np.asarray(scores, dtype=np.float32))


def rank_of_own(encoder: Any, pseudo: Sequence[PseudoQuery], texts: Sequence[str]) -> dict:
    """hit@1 and MRR of each pseudo-query's own passage among all entries (its own entry
    replaced by the passage without the query sentence)."""
    qv = encoder.encode([p.query for p in pseudo])
    ev = encoder.encode(list(texts))
    pv = encoder.encode([p.passage for p in pseudo])
    ranks = []
    for q, own, p in zip(qv, pv, pseudo, strict=True):
        scores = ev @ q
        scores[p.source] = own @ q
        ranks.append(1 + int((scores > scores[p.source]).sum()))
    r = np.asarray(ranks)
    return {"hit@1": float((r == 1).mean()), "mrr": float((1.0 / r).mean()), "queries": len(r)}


def train_student(
    groups: Groups,
    base: str,
    out: Path,
    epochs: int = 1,
    batch_size: int = 8,
    learning_rate: float = 2e-5,
    temperature: float = 0.05,
    max_length: int = 128,
    seed: int = 13,
) -> float:
    """Fine-tune the student on the groups (KL to the teacher's softmax over each group's
    candidates, both cosines over ``temperature``); saves the encoder under ``out``; seconds."""
    import torch

    from verticals.core import modeling, trainer

    started = time.perf_counter()
    trainer.seed_everything(seed)
    tokenizer = modeling.load_tokenizer(modeling.resolve_base_model(base))
    model = modeling.build_text_encoder(modeling.load_encoder(base))
    model.train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=learning_rate)
    target = torch.softmax(torch.from_numpy(groups.teacher) / temperature, dim=1)
    rng = np.random.default_rng(seed)
    for _ in range(epochs):
        order = rng.permutation(len(groups.queries))
        for start in range(0, len(order), batch_size):
            rows = [int(r) for r in order[start : start + batch_size]]
            k = groups.teacher.shape[1]
            qs = tokenizer([groups.queries[r] for r in rows], padding=True, truncation=True,
                           max_length=max_length, return_tensors="pt")  # fmt: skip
            ps = tokenizer([t for r in rows for t in groups.passages[r]], padding=True,
                           truncation=True, max_length=max_length, return_tensors="pt")  # fmt: skip
            qv = model(qs["input_ids"], qs["attention_mask"])
            pv = model(ps["input_ids"], ps["attention_mask"]).view(len(rows), k, -1)
            logits = torch.einsum("bd,bkd->bk", qv, pv) / temperature
            loss = torch.nn.functional.kl_div(
                torch.log_softmax(logits, dim=1), target[rows], reduction="batchmean"
            )
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    model.eval()
    modeling.save_trained(model.cpu(), out, "full", base)
    return time.perf_counter() - started


def adapt(
    texts: Sequence[str],
    task: str,
    current: Any,
    teacher: Any,
    registry: Any = None,
    base: str | None = None,
    per_entry: int = 3,
    held_out_fraction: float = 0.2,
    promote: bool = True,
    seed: int = 7,
    **train: Any,
) -> dict[str, Any]:
    """Adapt the encoder to ``texts`` (a tenant's entries) and register it as the next version
    of ``task``. The pseudo-queries of ``held_out_fraction`` of the entries are never trained
    on: the current encoder and the adapted one rank them, and the adapted one becomes current
    only when its MRR there is higher (the gate is recorded on its card)."""
    from datetime import UTC, datetime

    from verticals.core.config import DEFAULT_BASE_MODEL
    from verticals.core.inference import Encoder
    from verticals.core.registry import ModelRegistry

    registry = registry or ModelRegistry.default()
    base = base or DEFAULT_BASE_MODEL
    pseudo = pseudo_queries(texts, per_entry, seed)
    order = np.random.default_rng(seed).permutation(len(texts))
    held = {int(i) for i in order[: max(1, round(held_out_fraction * len(texts)))]}
    fit = [p for p in pseudo if p.source not in held]
    slice_ = [p for p in pseudo if p.source in held]
    if len(fit) < 8 or not slice_:
        raise ValueError(f"{len(texts)} entries give too few pseudo-queries to adapt on")
    groups = mine(fit, texts, current, teacher)
    staged = registry.staging_dir()
    seconds = train_student(groups, base, staged, **train)
    card: dict[str, Any] = {
        "kind": "embedding",
        "method": "full",
        "base_model": base,
        "max_length": train.get("max_length", 128),
        "heads": [],
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "primary_metric": "mrr",
        "data": {"entries": len(texts), "pseudo_queries": len(fit), "held_out": len(slice_)},
        "training": {"seconds": round(seconds, 1), "teacher": getattr(teacher, "version", "?")},
    }
    (staged / "card.json").write_text(json.dumps(card))  # to load it; ``register`` rewrites it
    before = rank_of_own(current, slice_, texts)
    after = rank_of_own(Encoder.from_directory(staged, "torch"), slice_, texts)
    card["metrics"] = after
    outcome = registry.register_trained(task, staged, card, seconds, first_becomes_current=False)
    promoted = promote and after["mrr"] > before["mrr"]
    registry.update_card(
        task, outcome.version, gate={"current": before, "candidate": after, "promoted": promoted}
    )
    if promoted:
        registry.promote(task, outcome.version, force=True)
    return {
        "task": task,
        "version": outcome.version,
        "path": str(outcome.path),
        "pseudo_queries": len(fit),
        "held_out_queries": len(slice_),
        "current": before,
        "candidate": after,
        "promoted": promoted,
        "train_seconds": round(seconds, 1),
    }
