"""Evaluation and calibration on labelled questions, and the fine-tuning pairs a tenant's
knowledge base and feedback provide."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from verticals.support_bot.policy import Policy, decide
from verticals.support_bot.retrieval import Mode, Retriever
from verticals.support_bot.settings import SupportSettings
from verticals.support_bot.store import Store
from verticals.support_bot.tenants import Tenants
from verticals.support_bot.text import InputError


def matches(entry_id: str, expected: str) -> bool:
    """An expected id names an entry, or a document (any of its passages ``doc#n``)."""
    return entry_id == expected or entry_id.startswith(expected + "#")


class Evaluation:
    def __init__(
        self,
        settings: SupportSettings,
        store: Store,
        encoder: Any,
        tenants: Tenants,
        retriever: Retriever,
        policy: Callable[[str], Policy],
    ) -> None:
        self.settings = settings
        self.store = store
        self.encoder = encoder
        self.tenants = tenants
        self.retriever = retriever
        self.policy = policy

    def evaluate(
        self,
        tenant: str,
        questions: Iterable[dict[str, Any]],
        mode: Mode = "hybrid",
        policy: Policy | None = None,
        rerank: bool = True,
    ) -> dict[str, Any]:
        """hit@1, hit@5, MRR on in-scope questions; handoff precision/recall on out-of-scope.
        The reranker (when there is one) reorders hybrid candidates unless ``rerank`` is off."""
        policy = policy or self.policy(tenant)
        rows = list(questions)
        vectors = self.encoder.encode([r["question"] for r in rows]) if rows else None
        ranks, handoff_pred, handoff_true = [], [], []
        for i, row in enumerate(rows):
            cands = self.retriever.retrieve(
                tenant,
                row["question"],
                mode,
                vector=vectors[i],  # type: ignore[index]
                rerank=rerank and mode == "hybrid",
            )
            expected = row.get("expected")
            if expected:
                rank = next(
                    (n for n, c in enumerate(cands, 1) if matches(c.entry.id, expected)), None
                )
                ranks.append(rank)
            handoff_pred.append(decide(cands, policy) == "handoff")
            handoff_true.append(not expected)
        n = len(ranks)
        tp = sum(p and t for p, t in zip(handoff_pred, handoff_true, strict=True))
        predicted, actual = sum(handoff_pred), sum(handoff_true)
        return {
            "mode": mode,
            "reranked": rerank and mode == "hybrid" and self.retriever.reranker is not None,
            "questions": len(rows),
            "in_scope": n,
            "out_of_scope": actual,
            "hit@1": sum(1 for r in ranks if r == 1) / n if n else 0.0,
            "hit@5": sum(1 for r in ranks if r and r <= 5) / n if n else 0.0,
            "mrr": sum(1.0 / r for r in ranks if r) / n if n else 0.0,
            "handoff_precision": tp / predicted if predicted else 0.0,
            "handoff_recall": tp / actual if actual else 0.0,
            "handoff_rate_in_scope": (
                sum(p for p, t in zip(handoff_pred, handoff_true, strict=True) if not t) / n
                if n
                else 0.0
            ),
            "threshold": policy.threshold,
            "margin": policy.margin,
            "calibrated": policy.calibrated,
            "encoder": self.encoder.version,
        }

    def calibrate(self, tenant: str, questions: Iterable[dict[str, Any]]) -> dict[str, Any]:
        """Pick the handoff threshold that best separates out-of-scope from in-scope questions
        (F1 of the handoff decision) on validation questions; store it with the encoder."""
        rows = list(questions)
        if not any(not r.get("expected") for r in rows) or all(not r.get("expected") for r in rows):
            raise InputError("calibration needs both in-scope and out-of-scope questions")
        vectors = self.encoder.encode([r["question"] for r in rows])
        confs = np.array(
            [
                (
                    c[0].confidence
                    if (c := self.retriever.retrieve(tenant, r["question"], vector=v))
                    else 0.0
                )
                for r, v in zip(rows, vectors, strict=True)
            ]
        )
        out = np.array([not r.get("expected") for r in rows])
        values = np.unique(confs)
        cuts = np.concatenate(
            [[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]]
        )
        reranker = self.retriever.reranker
        reference = (
            self.settings.handoff_threshold if reranker is None else self.settings.rerank_threshold
        )
        best: tuple[float, float, float, float] = (-1.0, 0.0, 0.0, reference)
        for cut in cuts:
            pred = confs < cut
            tp = float((pred & out).sum())
            precision = tp / pred.sum() if pred.sum() else 0.0
            recall = tp / out.sum()
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            # ties: the cut nearest the reference threshold
            key = (round(f1, 6), -abs(cut - reference))
            if key > (round(best[0], 6), -abs(best[3] - reference)):
                best = (f1, precision, recall, float(cut))
        calibration = {
            "threshold": round(best[3], 4),
            "margin": self.settings.ambiguity_margin,
            "temperature": self.settings.temperature,
            "encoder": self.encoder.version,
            "reranker": reranker.version if reranker is not None else None,
            "validation_questions": len(rows),
            "validation_f1": round(best[0], 4),
            "validation_precision": round(best[1], 4),
            "validation_recall": round(best[2], 4),
            "method": "max handoff F1 over cut points of the top-1 confidence (reranker relevance,"
            " else cosine; out-of-scope = positive)",
        }
        self.store.set_calibration(tenant, calibration)
        self.tenants.forget(tenant)
        return calibration

    def training_pairs(self, tenant: str) -> list[tuple[str, str, str]]:
        """(query, positive text, origin): FAQ questions and paraphrases, thumbs-up answers,
        and questions staff resolved with an entry."""
        entries = {e.entry_id: e.to_entry() for e in self.store.entries(tenant)}
        pairs: list[tuple[str, str, str]] = []
        for e in entries.values():
            if e.kind == "faq":
                pairs.append((e.title, e.index_text(), "faq"))
            pairs.extend((p, e.index_text(), "paraphrase") for p in e.paraphrases)
        for fb in self.store.feedback(tenant):
            if fb.rating in {"up", "resolved"} and fb.entry_id in entries and fb.query:
                pairs.append((fb.query, entries[fb.entry_id].index_text(), f"feedback:{fb.rating}"))
        return pairs


def read_questions(path: Any) -> list[dict[str, Any]]:
    """A labelled question file (JSONL or CSV: question, expected; empty = out of scope)."""
    import csv
    import json
    from pathlib import Path

    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file")
    if path.suffix == ".csv":
        with path.open(newline="") as handle:
            rows: list[dict[str, Any]] = list(csv.DictReader(handle))
    else:
        rows = []
        for n, line in enumerate(path.read_text().splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise InputError(f"{path} line {n}: not valid JSON ({exc.msg})") from exc
    for n, row in enumerate(rows, 1):
        if not str(row.get("question") or "").strip():
            raise InputError(f"{path} row {n}: missing question")
        row["expected"] = (row.get("expected") or "").strip() or None
    return rows
