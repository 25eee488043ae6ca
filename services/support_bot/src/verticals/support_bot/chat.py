"""Chat: a turn becomes a draft (session memory, follow-ups), is embedded and matched in batches,
decided and worded into a reply, and stored with its handoff; staff replies and feedback."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from verticals.serving.logging import request_id
from verticals.serving.webhooks import WebhookSender
from verticals.support_bot.candidates import Candidate
from verticals.support_bot.policy import Kind, Policy, decide
from verticals.support_bot.retrieval import Retriever
from verticals.support_bot.settings import SupportSettings
from verticals.support_bot.store import Store
from verticals.support_bot.tenants import Tenants
from verticals.support_bot.text import InputError, redact

log = logging.getLogger("verticals.support_bot")

FOLLOW_UP = re.compile(
    r"\b(it|that|this|those|these|they|them|there|one|same)\b"
    r"|^\s*(and|also|what about|how about)\b",
    re.IGNORECASE,
)
CONTEXT_WEIGHT = 0.4
"""Weight of the previous turn in a follow-up's query vector."""
HANDOFF_TEXT = (
    "I am not sure I can answer that correctly, so I have passed your question "
    "to our support team. Someone will reply here shortly."
)

ASK_FOR_PERSON = "I would like to talk to a person."
PERSON_TEXT = (
    "I have passed this conversation to our support team. Someone will reply here shortly."
)
REQUESTED = "asked for a person"
"""The handoff reason when the visitor asks for a person (``request_handoff``)."""


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
    """One incoming chat message (``request_id`` tags its log line); ``filter``: only entries
    whose metadata has these key/values may answer it."""

    tenant: str
    session: str
    message: str
    request_id: str = "-"
    filter: Mapping[str, str] | None = None


@dataclass
class Draft:
    """A turn on its way to a reply."""

    turn: Turn
    message: str
    query: str
    started: float
    vector: np.ndarray | None = None
    intent: dict[str, Any] | None = None
    candidates: list[Candidate] = field(default_factory=list)


class Conversations:
    """Answers turns (batched), stores transcripts and handoffs, takes staff replies."""

    def __init__(
        self,
        settings: SupportSettings,
        store: Store,
        encoder: Any,
        tenants: Tenants,
        retriever: Retriever,
        policy: Callable[[str], Policy],
        registry: Any = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.encoder = encoder
        self.tenants = tenants
        self.retriever = retriever
        self.policy = policy
        self.registry = registry
        self._intents: dict[str, Any] = {}
        self.webhooks = WebhookSender([settings.webhook_url], name="handoff-webhooks")
        self.rewriter: Any = None
        if settings.llm_url:
            from verticals.support_bot.llm import Rewriter

            self.rewriter = Rewriter(
                settings.llm_url,
                settings.llm_model,
                settings.llm_api_key.get_secret_value(),
                settings.llm_timeout_s,
            )

    def _keep(self, text: str) -> str:
        return redact(text) if self.settings.redact_pii else text

    # intents -------------------------------------------------------------------------------
    def intent_predictor(self, tenant: str) -> Any:
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

    def forget_intent(self, tenant: str) -> None:
        self._intents.pop(tenant, None)

    # turns ---------------------------------------------------------------------------------
    def chat(
        self, tenant: str, session: str, message: str, filter: Mapping[str, str] | None = None
    ) -> Reply:
        reply = self.chat_many([Turn(tenant, session, message, filter=filter)])[0]
        if isinstance(reply, Exception):
            raise reply
        return reply

    def chat_many(self, turns: Sequence[Turn]) -> list[Reply | Exception]:
        """Answer turns together: one encoder pass, one dense search per tenant and one
        transaction for every transcript. Each turn gets its reply or the error it raised."""
        results: dict[int, Reply | Exception] = {}
        drafts: dict[int, Draft] = {}
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

    def _draft(self, turn: Turn) -> Draft:
        self.tenants.require(turn.tenant)
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
        return Draft(turn, message, query, started)

    def _embed(self, drafts: list[Draft]) -> None:
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
            predictor = self.intent_predictor(tenant)
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

    def _find_candidates(self, drafts: list[Draft]) -> None:
        for tenant in {d.turn.tenant for d in drafts}:
            mine = [d for d in drafts if d.turn.tenant == tenant]
            boosts = [
                d.intent["label"] if d.intent and d.intent["score"] >= 0.5 else None for d in mine
            ]
            found = self.retriever.retrieve_many(
                tenant,
                [d.query for d in mine],
                np.vstack([d.vector for d in mine]),  # type: ignore[misc]
                boosts,
                [d.turn.filter for d in mine],
            )
            for d, candidates in zip(mine, found, strict=True):
                d.candidates = candidates

    def _reply(self, drafts: list[Draft]) -> list[Reply]:
        """Decide and word each reply, store every turn in one transaction, then notify."""
        keep = self._keep
        replies: list[Reply] = []
        rows: list[dict[str, Any]] = []
        for d in drafts:
            candidates = d.candidates
            kind = decide(candidates, self.policy(d.turn.tenant))
            confidence = candidates[0].confidence if candidates else 0.0
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
                text = HANDOFF_TEXT
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
            self._log(d, reply, len(drafts))
        return replies

    def _log(self, d: Draft, reply: Reply, batch: int) -> None:
        token = request_id.set(d.turn.request_id) if d.turn.request_id != "-" else None
        try:
            log.info(
                "chat",
                extra={
                    "fields": {
                        "tenant": d.turn.tenant,
                        "session": d.turn.session,
                        "message": self._keep(d.message),
                        "kind": reply.kind,
                        "confidence": round(reply.confidence, 4),
                        "top": d.candidates[0].entry.id if d.candidates else None,
                        "batch": batch,
                        "ms": round((time.perf_counter() - d.started) * 1000, 1),
                    }
                },
            )
        finally:
            if token is not None:
                request_id.reset(token)

    def _notify(
        self, handoff_id: int, tenant: str, session: str, question: str, reason: str
    ) -> None:
        if not self.webhooks.urls:
            return
        body = {
            "event": "handoff",
            "id": handoff_id,
            "tenant": tenant,
            "session_id": session,
            "question": question,
            "reason": reason,
        }
        self.webhooks.start()  # once: retries with backoff in the background
        self.webhooks.submit(body, key=f"handoff-{tenant}-{handoff_id}")

    # handoffs and feedback -----------------------------------------------------------------
    def staff_reply(
        self, tenant: str, handoff_id: int, text: str, entry_id: str | None, close: bool
    ) -> int:
        handoff = self.store.handoff(tenant, handoff_id)
        if handoff is None:
            raise LookupError(f"no handoff {handoff_id} for tenant {tenant!r}")
        if entry_id and self.store.entry(tenant, entry_id) is None:
            raise InputError(f"unknown entry {entry_id!r}")
        message_id = self.store.add_message(
            tenant, handoff.session_id, "staff", self._keep(text), kind="staff"
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

    def request_handoff(self, tenant: str, session: str, message: str) -> tuple[int, int]:
        """The visitor asked for a person: their request and the bot's notice join the
        transcript, and a handoff opens on the conversation's last question (staff read the
        whole transcript with it). A conversation with an open handoff keeps that one.
        Returns (the notice's message id, the handoff id)."""
        self.tenants.require(tenant)
        message = message.strip() or ASK_FOR_PERSON
        if len(message) > self.settings.max_message_chars:
            raise InputError(f"message over {self.settings.max_message_chars} characters")
        open_ = [h for h in self.store.handoffs(tenant, "open") if h.session_id == session]
        question = self.store.previous_query(tenant, session, 200) or message
        blank: dict[str, Any] = {"query": "", "citations": [], "confidence": None}
        turn = {
            "tenant": tenant,
            "session": session,
            "user": {"text": self._keep(message)},
            "bot": {**blank, "text": PERSON_TEXT, "kind": "handoff"},
            "handoff": None if open_ else {"question": self._keep(question), "reason": REQUESTED},
        }
        [(message_id, handoff_id)] = self.store.add_turns([turn])
        if handoff_id is None:
            return message_id, open_[-1].id
        self._notify(handoff_id, tenant, session, self._keep(question), REQUESTED)
        return message_id, handoff_id
