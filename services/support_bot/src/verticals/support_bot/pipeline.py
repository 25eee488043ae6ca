"""The bot: tenants and keys, knowledge-base changes, hybrid retrieval, the answer / clarify /
handoff decision, session memory, handoffs, feedback, calibration and evaluation."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from verticals.serving.auth import hash_api_key, new_api_key
from verticals.serving.logging import request_id
from verticals.support_bot.index import TenantIndex, rrf
from verticals.support_bot.settings import SERVICE, SupportSettings
from verticals.support_bot.store import Store
from verticals.support_bot.text import (
    EntryIn,
    InputError,
    fingerprint,
    parse_faq,
    redact,
    split_document,
)

log = logging.getLogger("verticals.support_bot")

Mode = Literal["hybrid", "dense", "bm25"]
Kind = Literal["answer", "clarify", "handoff"]
TENANT_ID = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
FOLLOW_UP = re.compile(
    r"\b(it|that|this|those|these|they|them|there|one|same)\b"
    r"|^\s*(and|also|what about|how about)\b",
    re.IGNORECASE,
)


CONTEXT_WEIGHT = 0.4
"""Weight of the previous turn in a follow-up's query vector."""
KEY_CACHE_S = 0.5
"""How long a replica trusts a tenant key it looked up: a key rotated through another replica
stops working here within this time. The lookup (one indexed query) costs about 0.3 ms on
SQLite, so it runs at most twice a second per key rather than on every request."""


class UnknownTenant(LookupError):
    pass


@dataclass
class Candidate:
    pk: int
    entry: EntryIn
    fused: float
    cosine: float
    prob: float = 0.0

    def citation(self) -> dict[str, str]:
        return {
            "id": self.entry.id,
            "title": self.entry.title,
            "heading": self.entry.heading,
            "url": self.entry.url,
        }


@dataclass
class Reply:
    kind: Kind
    text: str
    confidence: float
    citations: list[dict[str, str]]
    query: str
    session_id: str
    message_id: int = 0
    handoff_id: int | None = None
    intent: dict[str, Any] | None = None
    reworded: bool = False
    candidates: list[Candidate] = field(default_factory=list)


@dataclass(frozen=True)
class Turn:
    """One incoming chat message (``request_id`` tags its log line)."""

    tenant: str
    session: str
    message: str
    request_id: str = "-"


@dataclass
class _Draft:
    """A turn on its way to a reply."""

    turn: Turn
    message: str
    query: str
    started: float
    vector: np.ndarray | None = None
    intent: dict[str, Any] | None = None
    candidates: list[Candidate] = field(default_factory=list)


@dataclass(frozen=True)
class Policy:
    threshold: float
    margin: float
    temperature: float
    calibrated: bool


def decide(candidates: Sequence[Candidate], policy: Policy) -> Kind:
    """Hand off below the confidence threshold; clarify when the top two differ and are too close
    in probability (softmax of cosine / temperature over the fused top five); else answer."""
    if not candidates or candidates[0].cosine < policy.threshold:
        return "handoff"
    first = candidates[0]
    rivals = [
        c
        for c in candidates[1:5]
        if c.cosine >= policy.threshold
        and not (c.entry.kind == "passage" and c.entry.source == first.entry.source)
    ]
    if rivals and first.prob - max(c.prob for c in rivals) < policy.margin:
        return "clarify"
    return "answer"


def _softmax_probs(candidates: list[Candidate], temperature: float) -> None:
    top = candidates[:5]
    if not top:
        return
    z = np.array([c.cosine for c in top]) / temperature
    p = np.exp(z - z.max())
    p /= p.sum()
    for c, value in zip(top, p, strict=True):
        c.prob = float(value)


def matches(entry_id: str, expected: str) -> bool:
    """An expected id names an entry, or a document (any of its passages ``doc#n``)."""
    return entry_id == expected or entry_id.startswith(expected + "#")


class SupportBot:
    """Thread-safe service object; the API and the CLI share it."""

    def __init__(
        self,
        settings: SupportSettings,
        encoder: Any = None,
        persist: bool = True,
        store: Store | None = None,
        registry: Any = None,
    ) -> None:
        from verticals.core.inference import Encoder

        self.settings = settings
        self.registry = registry
        self.store = store or Store(settings.sqlalchemy_url(SERVICE))
        self.encoder = encoder or Encoder.from_registry(
            settings.encoder_task,
            form=settings.encoder_form,
            registry=registry,
            fallback_to_base=True,
        )
        self.persist = persist
        self._tenants: dict[str, Any] = {}
        self.indexes: dict[str, TenantIndex] = {}
        self._intents: dict[str, Any] = {}
        self._keys: dict[str, tuple[tuple[str, str], float]] = {}  # digest: (owner, expiry)
        self._lock = threading.RLock()
        self.rewriter = None
        if settings.llm_url:
            from verticals.support_bot.llm import Rewriter

            self.rewriter = Rewriter(
                settings.llm_url,
                settings.llm_model,
                settings.llm_api_key.get_secret_value(),
                settings.llm_timeout_s,
            )

    # tenants and keys ----------------------------------------------------------------------
    def create_tenant(self, tenant: str, name: str = "") -> tuple[str, str]:
        """Returns (admin key, widget key); only their hashes are stored."""
        if not TENANT_ID.match(tenant):
            raise InputError(f"bad tenant id {tenant!r} (lowercase letters, digits, _ -)")
        if self.store.tenant(tenant):
            raise InputError(f"tenant {tenant!r} exists")
        self._tenants.pop(tenant, None)
        admin, widget = new_api_key("sk"), new_api_key("wk")
        self.store.create_tenant(tenant, name or tenant, hash_api_key(admin), hash_api_key(widget))
        return admin, widget

    def rotate_keys(self, tenant: str, admin: bool = True, widget: bool = True) -> dict[str, str]:
        self.require_tenant(tenant)
        keys = {}
        if admin:
            keys["admin_key"] = new_api_key("sk")
        if widget:
            keys["widget_key"] = new_api_key("wk")
        self.store.set_keys(
            tenant,
            hash_api_key(keys["admin_key"]) if admin else None,
            hash_api_key(keys["widget_key"]) if widget else None,
        )
        with self._lock:
            self._keys.clear()
        return keys

    def authenticate(self, key: str) -> tuple[str, str] | None:
        """(tenant, ``admin`` | ``widget``) for a tenant key, else None; checked against the
        database at least every ``KEY_CACHE_S`` seconds, so revocation reaches every replica."""
        digest = hash_api_key(key)
        now = time.monotonic()
        with self._lock:
            cached = self._keys.get(digest)
        if cached and cached[1] > now:
            return cached[0]
        owner = self.store.key_owner(digest)
        with self._lock:
            if len(self._keys) > 10_000:  # only valid keys are cached; drop the expired ones
                self._keys = {k: v for k, v in self._keys.items() if v[1] > now}
            if owner:
                self._keys[digest] = (owner, now + KEY_CACHE_S)
            else:
                self._keys.pop(digest, None)
        return owner

    def tenant_row(self, tenant: str) -> Any:
        """The tenant's row, cached (tenants are created and calibrated through this object)."""
        row = self._tenants.get(tenant)
        if row is None:
            row = self.store.tenant(tenant)
            if row is None:
                raise UnknownTenant(f"unknown tenant {tenant!r}")
            self._tenants[tenant] = row
        return row

    def require_tenant(self, tenant: str) -> None:
        self.tenant_row(tenant)

    # indexes -------------------------------------------------------------------------------
    def _manifest(self) -> dict[str, Any]:
        return {"encoder": self.encoder.version, "dimension": self.encoder.dimension}

    def load(self) -> dict[str, str]:
        """Load every tenant's saved index, rebuilding those that are missing or stale: another
        encoder, or entries that differ from the database's (a replica wrote them)."""
        with self._lock:
            self._tenants.clear()
            self._keys.clear()
        how = {}
        for tenant in self.store.tenants():
            entries = {e.pk: e.to_entry() for e in self.store.entries(tenant.id)}
            folder = self.settings.index_dir() / tenant.id
            expect = {**self._manifest(), "entries": fingerprint(entries)}
            index = (
                TenantIndex.load(folder, entries, expect, self.settings.exact_search_max)
                if self.persist
                else None
            )
            if index is None:
                self.rebuild(tenant.id, entries)
                how[tenant.id] = "rebuilt"
            else:
                with self._lock:
                    self.indexes[tenant.id] = index
                how[tenant.id] = "loaded"
        return how

    def index(self, tenant: str) -> TenantIndex:
        with self._lock:
            index = self.indexes.get(tenant)
            if index is None:
                self.require_tenant(tenant)
                index = self.indexes[tenant] = self._new_index()
            return index

    def _new_index(self) -> TenantIndex:
        return TenantIndex(self.encoder.dimension, self.settings.exact_search_max)

    def rebuild(self, tenant: str, entries: dict[int, EntryIn] | None = None) -> int:
        """Re-encode a tenant's entries into fresh indexes (after an encoder change)."""
        self.require_tenant(tenant)
        if entries is None:
            entries = {e.pk: e.to_entry() for e in self.store.entries(tenant)}
        index = self._new_index()
        items = list(entries.items())
        if items:
            index.upsert(items, *self._vectors([e for _, e in items]))
        with self._lock:
            self.indexes[tenant] = index
        self._save(tenant)
        return len(items)

    def _vectors(self, entries: Sequence[EntryIn]) -> tuple[np.ndarray, np.ndarray]:
        """Full-text vectors and question vectors (passages reuse their full-text vector)."""
        full = self.encoder.encode([e.index_text() for e in entries])
        short = full.copy()
        rows = [i for i, e in enumerate(entries) if e.short_text()]
        if rows:
            short[rows] = self.encoder.encode([entries[i].short_text() or "" for i in rows])
        return full, short

    def _save(self, tenant: str) -> None:
        if self.persist:
            index = self.index(tenant)
            with index.lock:  # the digest of exactly what is saved
                manifest = {**self._manifest(), "entries": fingerprint(index.entries)}
                index.save(self.settings.index_dir() / tenant, manifest)

    # knowledge base ------------------------------------------------------------------------
    def upsert(self, tenant: str, entries: list[EntryIn]) -> int:
        self.require_tenant(tenant)
        if len(entries) > self.settings.max_entries_per_request:
            raise InputError(
                f"{len(entries)} entries in one request; the limit is "
                f"{self.settings.max_entries_per_request}"
            )
        for e in entries:
            if len(e.title) + len(e.body) > self.settings.max_entry_chars:
                raise InputError(
                    f"entry {e.id!r} is over {self.settings.max_entry_chars} characters"
                )
        vectors = self._vectors(entries)  # before storing: an encoder failure stores nothing
        items = self.store.upsert(tenant, entries)
        self.index(tenant).upsert(items, *vectors)
        self._save(tenant)
        return len(items)

    def ingest_faq(self, tenant: str, content: str, fmt: str, where: str = "upload") -> int:
        self.require_tenant(tenant)
        return self.upsert(tenant, parse_faq(content, fmt, where, self.settings.max_entry_chars))

    def ingest_document(
        self, tenant: str, doc_id: str, content: str, fmt: str, title: str = "", url: str = ""
    ) -> int:
        """Split a document into passages and replace its earlier passages."""
        self.require_tenant(tenant)
        passages = split_document(doc_id, content, fmt, title, url)
        old = set(self.store.document_passages(tenant, doc_id))
        count = self.upsert(tenant, passages)
        stale = sorted(old - {p.id for p in passages})
        if stale:
            self.index(tenant).remove(self.store.delete(tenant, stale))
            self._save(tenant)
        return count

    def delete(self, tenant: str, entry_id: str) -> int:
        """Delete an entry, or every passage of a document id."""
        self.require_tenant(tenant)
        ids = [entry_id, *self.store.document_passages(tenant, entry_id)]
        pks = self.store.delete(tenant, ids)
        self.index(tenant).remove(pks)
        self._save(tenant)
        return len(pks)

    # retrieval -----------------------------------------------------------------------------
    def retrieve(
        self,
        tenant: str,
        query: str,
        mode: Mode = "hybrid",
        k: int | None = None,
        vector: np.ndarray | None = None,
        boost_category: str | None = None,
    ) -> list[Candidate]:
        """Fused candidates, best first, each with its cosine similarity to the query."""
        index = self.index(tenant)
        k = k or self.settings.candidates
        qvec = vector if vector is not None else self.encoder.encode([query])[0]
        dense = index.dense_many(qvec.reshape(1, -1), k)[0] if mode != "bm25" else []
        return self._fuse(index, query, qvec, dense, mode, k, boost_category)

    def _fuse(
        self,
        index: TenantIndex,
        query: str,
        qvec: np.ndarray,
        dense: list[tuple[int, float]],
        mode: Mode,
        k: int,
        boost_category: str | None,
    ) -> list[Candidate]:
        """BM25 for ``query``, fused with the ``dense`` hits; cosines for every candidate."""
        sparse = index.sparse(query, k) if mode != "dense" else []
        fused = rrf(
            [[p for p, _ in dense], [p for p, _ in sparse]],
            self.settings.rrf_k,
            [self.settings.dense_weight, self.settings.bm25_weight],
        )
        if boost_category:
            bonus = self.settings.intent_weight / (self.settings.rrf_k + 1)
            fused = sorted(
                (
                    (pk, s + (bonus if index.entries[pk].category == boost_category else 0.0))
                    for pk, s in fused
                    if pk in index.entries
                ),
                key=lambda kv: -kv[1],
            )
        fused = [(pk, s) for pk, s in fused if pk in index.entries][:k]
        cosines = dict(dense)
        missing = [pk for pk, _ in fused if pk not in cosines]
        if missing:
            cosines.update(zip(missing, index.cosines(missing, qvec), strict=True))
        out = [Candidate(pk, index.entries[pk], s, float(cosines[pk])) for pk, s in fused]
        _softmax_probs(out, self.settings.temperature)
        return out

    def policy(self, tenant: str) -> Policy:
        cal = self.tenant_row(tenant).calibration or {}
        calibrated = cal.get("encoder") == self.encoder.version and "threshold" in cal
        return Policy(
            float(cal["threshold"]) if calibrated else self.settings.handoff_threshold,
            float(cal.get("margin", self.settings.ambiguity_margin))
            if calibrated
            else self.settings.ambiguity_margin,
            self.settings.temperature,
            calibrated,
        )

    def _intent(self, tenant: str) -> Any:
        """The tenant's intent classifier when one is registered (checked once, then cached)."""
        if tenant not in self._intents:
            from verticals.core.registry import ModelRegistry

            task = self.settings.intent_task_prefix + tenant
            registry = self.registry or ModelRegistry.default()
            predictor = None
            if registry.current_version(task) is not None:
                from verticals.core.inference import Predictor

                predictor = Predictor.from_registry(task, registry=registry)
            self._intents[tenant] = predictor
        return self._intents[tenant]

    # chat ----------------------------------------------------------------------------------
    def chat(self, tenant: str, session: str, message: str) -> Reply:
        reply = self.chat_many([Turn(tenant, session, message)])[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def chat_many(self, turns: Sequence[Turn]) -> list[Reply | Exception]:
        """Answer turns together: one encoder pass, one dense search per tenant and one
        transaction for every transcript. Each turn gets its reply or the error it raised."""
        results: dict[int, Reply | Exception] = {}
        drafts: dict[int, _Draft] = {}
        for i, turn in enumerate(turns):
            try:
                drafts[i] = self._draft(turn)
            except Exception as exc:  # a bad turn fails alone
                results[i] = exc
        if drafts:
            batch = list(drafts.values())
            try:
                self._embed(batch)
                self._find_candidates(batch)
                results.update(zip(drafts, self._reply(batch), strict=True))
            except Exception as exc:
                results.update((i, exc) for i in drafts)
        return [results[i] for i in range(len(turns))]

    def _draft(self, turn: Turn) -> _Draft:
        self.require_tenant(turn.tenant)
        message = turn.message.strip()
        if not message:
            raise InputError("empty message")
        if len(message) > self.settings.max_message_chars:
            raise InputError(f"message over {self.settings.max_message_chars} characters")
        started = time.perf_counter()
        previous = self.store.previous_query(turn.tenant, turn.session, self.settings.session_turns)
        # a follow-up refers back ("it", "that", "and ...", "what about ..."); a new topic does not
        follow_up = previous is not None and bool(FOLLOW_UP.search(message))
        query = f"{previous} {message}" if follow_up else message
        return _Draft(turn, message, query, started)

    def _embed(self, drafts: list[_Draft]) -> None:
        """Query vectors in one encoder pass; a follow-up's mixes the message (leading) with the
        previous turn's context. Intents per tenant, in one pass each."""
        texts = [
            t for d in drafts for t in ([d.message, d.query] if d.query != d.message else [d.query])
        ]
        vectors = iter(self.encoder.encode(texts))
        for d in drafts:
            if d.query == d.message:
                d.vector = next(vectors)
            else:
                mixed = next(vectors) * (1 - CONTEXT_WEIGHT) + next(vectors) * CONTEXT_WEIGHT
                d.vector = mixed / np.linalg.norm(mixed)
        for tenant in {d.turn.tenant for d in drafts}:
            predictor = self._intent(tenant)
            if predictor is None:
                continue
            mine = [d for d in drafts if d.turn.tenant == tenant]
            for d, heads in zip(mine, predictor.predict([d.message for d in mine]), strict=True):
                name = next(iter(heads))
                d.intent = {
                    "head": name,
                    "label": heads[name].get("label"),
                    "score": round(float(heads[name].get("score", 0.0)), 4),
                }

    def _find_candidates(self, drafts: list[_Draft]) -> None:
        k = self.settings.candidates
        for tenant in {d.turn.tenant for d in drafts}:
            index = self.index(tenant)
            mine = [d for d in drafts if d.turn.tenant == tenant]
            dense = index.dense_many(np.vstack([d.vector for d in mine]), k)  # type: ignore[misc]
            for d, hits in zip(mine, dense, strict=True):
                intent = d.intent
                boost = intent["label"] if intent and intent["score"] >= 0.5 else None
                d.candidates = self._fuse(index, d.query, d.vector, hits, "hybrid", k, boost)  # type: ignore[arg-type]

    def _reply(self, drafts: list[_Draft]) -> list[Reply]:
        """Decide and word each reply, store every turn in one transaction, then notify."""
        keep = redact if self.settings.redact_pii else (lambda s: s)
        replies: list[Reply] = []
        rows: list[dict[str, Any]] = []
        for d in drafts:
            candidates = d.candidates
            kind = decide(candidates, self.policy(d.turn.tenant))
            confidence = candidates[0].cosine if candidates else 0.0
            reworded = False
            if kind == "answer":
                text = candidates[0].entry.body
                citations = [candidates[0].citation()]
                if self.rewriter is not None:
                    better = self.rewriter.reword(d.message, text)
                    if better:
                        text, reworded = better, True
            elif kind == "clarify":
                a, b = candidates[0].entry, candidates[1].entry
                text = f"Do you mean “{a.title}” or “{b.title}”?"
                citations = [candidates[0].citation(), candidates[1].citation()]
            else:
                text = (
                    "I am not sure I can answer that correctly, so I have passed your question "
                    "to our support team. Someone will reply here shortly."
                )
                citations = []
            reason = "low confidence" if candidates else "empty knowledge base"
            rows.append(
                {
                    "tenant": d.turn.tenant,
                    "session": d.turn.session,
                    "user": {"text": keep(d.message), "query": keep(d.query)},
                    "bot": {
                        "text": text,
                        "kind": kind,
                        "query": keep(d.query),
                        "citations": citations,
                        "confidence": confidence,
                    },
                    "handoff": (
                        {"question": keep(d.message), "reason": reason}
                        if kind == "handoff"
                        else None
                    ),
                }
            )
            replies.append(
                Reply(
                    kind,
                    text,
                    confidence,
                    citations,
                    d.query,
                    d.turn.session,
                    intent=d.intent,
                    reworded=reworded,
                    candidates=candidates[:5],
                )
            )
        for d, row, reply, (message_id, handoff_id) in zip(
            drafts, rows, replies, self.store.add_turns(rows), strict=True
        ):
            reply.message_id, reply.handoff_id = message_id, handoff_id
            if handoff_id is not None:
                handoff = row["handoff"]
                self._notify(
                    handoff_id,
                    d.turn.tenant,
                    d.turn.session,
                    handoff["question"],
                    handoff["reason"],
                )
            token = request_id.set(d.turn.request_id) if d.turn.request_id != "-" else None
            try:
                log.info(
                    "chat",
                    extra={
                        "fields": {
                            "tenant": d.turn.tenant,
                            "session": d.turn.session,
                            "message": keep(d.message),
                            "kind": reply.kind,
                            "confidence": round(reply.confidence, 4),
                            "top": d.candidates[0].entry.id if d.candidates else None,
                            "batch": len(drafts),
                            "ms": round((time.perf_counter() - d.started) * 1000, 1),
                        }
                    },
                )
            finally:
                if token is not None:
                    request_id.reset(token)
        return replies

    def _notify(
        self, handoff_id: int, tenant: str, session: str, question: str, reason: str
    ) -> None:
        url = self.settings.webhook_url
        if not url:
            return
        body = {
            "event": "handoff",
            "id": handoff_id,
            "tenant": tenant,
            "session_id": session,
            "question": question,
            "reason": reason,
        }

        def post() -> None:
            import httpx

            try:
                httpx.post(url, json=body, timeout=5.0)
            except httpx.HTTPError as exc:
                log.warning("handoff webhook failed: %s", exc)

        threading.Thread(target=post, daemon=True).start()

    # handoffs and feedback -----------------------------------------------------------------
    def staff_reply(
        self, tenant: str, handoff_id: int, text: str, entry_id: str | None, close: bool
    ) -> int:
        handoff = self.store.handoff(tenant, handoff_id)
        if handoff is None:
            raise LookupError(f"no handoff {handoff_id} for tenant {tenant!r}")
        if entry_id and self.store.entry(tenant, entry_id) is None:
            raise InputError(f"unknown entry {entry_id!r}")
        keep = redact if self.settings.redact_pii else (lambda s: s)
        message_id = self.store.add_message(
            tenant, handoff.session_id, "staff", keep(text), kind="staff"
        )
        if entry_id:
            self.store.add_feedback(
                tenant,
                handoff.session_id,
                "resolved",
                query=handoff.question,
                entry_id=entry_id,
                message_id=message_id,
            )
        self.store.set_handoff_status(handoff_id, "closed" if close else "answered")
        return message_id

    def feedback(self, tenant: str, session: str, message_id: int, rating: str) -> int:
        msg = self.store.message(tenant, message_id)
        if msg is None or msg.role != "bot" or msg.session_id != session:
            raise LookupError(f"no bot message {message_id} in this session")
        entry_id = msg.citations[0]["id"] if msg.citations and msg.kind == "answer" else ""
        return self.store.add_feedback(
            tenant, session, rating, message_id=message_id, query=msg.query, entry_id=entry_id
        )

    # calibration and evaluation ------------------------------------------------------------
    def evaluate(
        self,
        tenant: str,
        questions: Iterable[dict[str, Any]],
        mode: Mode = "hybrid",
        policy: Policy | None = None,
    ) -> dict[str, Any]:
        """hit@1, hit@5, MRR on in-scope questions; handoff precision/recall on out-of-scope."""
        policy = policy or self.policy(tenant)
        rows = list(questions)
        vectors = self.encoder.encode([r["question"] for r in rows]) if rows else None
        ranks, handoff_pred, handoff_true, confs = [], [], [], []
        for i, row in enumerate(rows):
            cands = self.retrieve(tenant, row["question"], mode, vector=vectors[i])  # type: ignore[index]
            expected = row.get("expected")
            if expected:
                rank = next(
                    (n for n, c in enumerate(cands, 1) if matches(c.entry.id, expected)), None
                )
                ranks.append(rank)
            handoff_pred.append(decide(cands, policy) == "handoff")
            handoff_true.append(not expected)
            confs.append(cands[0].cosine if cands else 0.0)
        n = len(ranks)
        tp = sum(p and t for p, t in zip(handoff_pred, handoff_true, strict=True))
        predicted, actual = sum(handoff_pred), sum(handoff_true)
        return {
            "mode": mode,
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
                (c[0].cosine if (c := self.retrieve(tenant, r["question"], vector=v)) else 0.0)
                for r, v in zip(rows, vectors, strict=True)
            ]
        )
        out = np.array([not r.get("expected") for r in rows])
        values = np.unique(confs)
        cuts = np.concatenate(
            [[values[0] - 1e-6], (values[:-1] + values[1:]) / 2, [values[-1] + 1e-6]]
        )
        best: tuple[float, float, float, float] = (-1.0, 0.0, 0.0, self.settings.handoff_threshold)
        for cut in cuts:
            pred = confs < cut
            tp = float((pred & out).sum())
            precision = tp / pred.sum() if pred.sum() else 0.0
            recall = tp / out.sum()
            f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
            # ties: the cut nearest the reference threshold
            key = (round(f1, 6), -abs(cut - self.settings.handoff_threshold))
            if key > (round(best[0], 6), -abs(best[3] - self.settings.handoff_threshold)):
                best = (f1, precision, recall, float(cut))
        calibration = {
            "threshold": round(best[3], 4),
            "margin": self.settings.ambiguity_margin,
            "temperature": self.settings.temperature,
            "encoder": self.encoder.version,
            "validation_questions": len(rows),
            "validation_f1": round(best[0], 4),
            "validation_precision": round(best[1], 4),
            "validation_recall": round(best[2], 4),
            "method": "max handoff F1 over cut points of top-1 cosine (out-of-scope = positive)",
        }
        self.store.set_calibration(tenant, calibration)
        self._tenants.pop(tenant, None)
        return calibration

    # fine-tuning data ----------------------------------------------------------------------
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


def load_sample(bot: SupportBot, tenant: str, folder: Any) -> int:
    """Ingest the shipped sample knowledge base (FAQ JSONL and documents) into ``tenant``."""
    from pathlib import Path

    folder = Path(folder)
    n = bot.ingest_faq(tenant, (folder / "faq.jsonl").read_text(), "jsonl", "faq.jsonl")
    formats = {".md": "markdown", ".html": "html", ".txt": "text"}
    for path in sorted((folder / "docs").iterdir()):
        if path.suffix in formats:
            n += bot.ingest_document(
                tenant,
                path.stem,
                path.read_text(),
                formats[path.suffix],
                url=f"https://shop.larkspur.example/guides/{path.stem}",
            )
    return n


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
