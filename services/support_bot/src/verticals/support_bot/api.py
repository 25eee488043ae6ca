"""Thin HTTP routes over ``SupportBot``; the app factory; the widget's static files."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from importlib.resources import files
from typing import Annotated, Any, Literal

from fastapi import (
    APIRouter,
    Depends,
    FastAPI,
    Header,
    HTTPException,
    Path,
    Query,
    Request,
    Security,
)
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse

from verticals.serving.app import create_app, error_responses
from verticals.serving.auth import API_KEY_HEADER, is_admin_key
from verticals.support_bot.batching import ChatBatcher
from verticals.support_bot.chat import PERSON_TEXT
from verticals.support_bot.pipeline import Candidate, Reply, SupportBot, UnknownTenant, decide
from verticals.support_bot.schemas import (
    MAX_ROW_ID,
    Changed,
    ChatRequest,
    ChatResponse,
    DocumentIn,
    EntryOut,
    FaqBatch,
    FeedbackIn,
    HandoffIn,
    HandoffOpened,
    HandoffOut,
    MessageOut,
    SearchCandidate,
    SearchIn,
    SearchOut,
    SessionIn,
    SessionOut,
    StaffReply,
    TenantCreate,
    TenantKeys,
    WhoAmI,
    WidgetConfig,
)
from verticals.support_bot.settings import SupportSettings
from verticals.support_bot.store import EntryRow, HandoffRow
from verticals.support_bot.text import EntryIn, InputError, check_metadata

router = APIRouter(responses=error_responses(400, 403, 404))
"""Any route may get content the bot refuses (400), name a tenant its key may not use (403)
or one that does not exist (404)."""


async def get_bot(request: Request) -> SupportBot:
    bot: SupportBot = request.app.state.bot
    return bot


async def get_batcher(request: Request) -> ChatBatcher:
    batcher: ChatBatcher = request.app.state.batcher
    return batcher


Bot = Annotated[SupportBot, Depends(get_bot)]
Batcher = Annotated[ChatBatcher, Depends(get_batcher)]


@dataclass(frozen=True)
class Caller:
    """``root`` (the service admin key), or a tenant's ``admin`` or public ``widget`` key."""

    role: Literal["root", "admin", "widget"]
    tenant: str | None = None

    def admin(self, bot: SupportBot, tenant: str) -> None:
        if self.role == "root":
            bot.require_tenant(tenant)
        elif self.role != "admin" or self.tenant != tenant:
            raise HTTPException(403, f"this key is not an admin key of tenant {tenant!r}")

    def chat(self, bot: SupportBot, tenant: str) -> None:
        if self.role == "root":
            bot.require_tenant(tenant)
        elif self.tenant != tenant:
            raise HTTPException(403, f"this key is not valid for tenant {tenant!r}")


async def get_caller(
    request: Request, bot: Bot, key: str | None = Security(API_KEY_HEADER)
) -> Caller:
    """Async (no thread hop): a tenant key is looked up in the database at most every
    ``KEY_CACHE_S`` (0.5 s), so a key revoked on any replica stops working here within it."""
    if not key:
        raise HTTPException(401, "missing X-API-Key")
    settings: SupportSettings = request.app.state.settings
    if is_admin_key(settings, key):
        return Caller("root")
    owner = bot.authenticate(key)
    if owner is None:
        raise HTTPException(401, "invalid X-API-Key")
    return Caller(owner[1], owner[0])  # type: ignore[arg-type]


Auth = Annotated[Caller, Depends(get_caller)]


def _reply_out(r: Reply) -> ChatResponse:
    return ChatResponse(
        kind=r.kind,
        text=r.text,
        confidence=round(r.confidence, 4),
        citations=r.citations,  # type: ignore[arg-type]
        session_id=r.session_id,
        message_id=r.message_id,
        handoff_id=r.handoff_id,
        intent=r.intent,
        reworded=r.reworded,
    )


# tenants and knowledge base ------------------------------------------------------------------
@router.post("/v1/tenants", status_code=201, response_model=TenantKeys, tags=["tenants"])
def create_tenant(body: TenantCreate, caller: Auth, bot: Bot) -> TenantKeys:
    if caller.role != "root":
        raise HTTPException(403, "creating tenants needs the service admin key")
    admin, widget = bot.create_tenant(body.id, body.name)
    return TenantKeys(tenant=body.id, admin_key=admin, widget_key=widget)


@router.get("/v1/whoami", response_model=WhoAmI, tags=["tenants"])
def whoami(caller: Auth) -> WhoAmI:
    """What the key in ``X-API-Key`` is: the service admin key (``root``), or a tenant's
    ``admin`` or ``widget`` key (the dashboard logs tenant admins in with it)."""
    return WhoAmI(role=caller.role, tenant=caller.tenant)


@router.get("/v1/tenants", tags=["tenants"])
def list_tenants(caller: Auth, bot: Bot) -> list[dict[str, Any]]:
    """Every tenant with its entry count (service admin key only)."""
    if caller.role != "root":
        raise HTTPException(403, "listing tenants needs the service admin key")
    return [
        {"tenant": t.id, "name": t.name, "entries": bot.store.count(t.id)}
        for t in bot.store.tenants()
    ]


@router.post("/v1/tenants/{tenant}/keys", response_model=TenantKeys, tags=["tenants"])
def rotate_keys(tenant: str, caller: Auth, bot: Bot, widget_only: bool = False) -> TenantKeys:
    caller.admin(bot, tenant)
    return TenantKeys(tenant=tenant, **bot.rotate_keys(tenant, admin=not widget_only))


@router.get("/v1/tenants/{tenant}", tags=["tenants"])
def tenant_info(tenant: str, caller: Auth, bot: Bot) -> dict[str, Any]:
    caller.admin(bot, tenant)
    row = bot.store.tenant(tenant)
    assert row is not None
    policy = bot.policy(tenant)
    return {
        "tenant": tenant,
        "name": row.name,
        "entries": bot.store.count(tenant),
        "indexed": len(bot.index(tenant)),
        "encoder": bot.encoder.version,
        "vector_store": bot.knowledge.store_kind,
        "policy": policy.__dict__,
        "calibration": row.calibration,
    }


@router.post("/v1/tenants/{tenant}/faq", response_model=Changed, tags=["knowledge base"])
def upsert_faq(tenant: str, body: FaqBatch, caller: Auth, bot: Bot) -> Changed:
    caller.admin(bot, tenant)
    entries = [
        EntryIn(
            id=e.id,
            title=e.question,
            body=e.answer,
            category=e.category,
            tags=e.tags,
            url=e.url,
            paraphrases=e.paraphrases,
            source="api",
            metadata=check_metadata(e.metadata, f"entry {e.id!r} metadata"),
        )
        for e in body.entries
    ]
    from verticals.support_bot.text import faq_from_records

    faq_from_records(  # same validation as files
        [{"id": e.id, "question": e.title, "answer": e.body} for e in entries],
        "request",
        bot.settings.max_entry_chars,
    )
    return Changed(tenant=tenant, count=bot.upsert(tenant, entries))


@router.post("/v1/tenants/{tenant}/faq/import", response_model=Changed, tags=["knowledge base"])
async def import_faq(
    tenant: str,
    request: Request,
    caller: Auth,
    bot: Bot,
    format: Annotated[Literal["csv", "jsonl"] | None, Query()] = None,
) -> Changed:
    """Body: a CSV (id, question, answer[, category, tags, url, paraphrases]) or JSONL file."""
    caller.admin(bot, tenant)
    raw = await request.body()
    if len(raw) > bot.settings.max_request_bytes:
        raise HTTPException(413, f"request body over {bot.settings.max_request_bytes} bytes")
    kind = request.headers.get("content-type", "")
    fmt = format or ("jsonl" if "json" in kind else "csv")
    try:
        content = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"file is not UTF-8 (byte {exc.start})") from exc
    count = await run_in_threadpool(bot.ingest_faq, tenant, content, fmt, f"upload.{fmt}")
    return Changed(tenant=tenant, count=count)


@router.post("/v1/tenants/{tenant}/documents", response_model=Changed, tags=["knowledge base"])
def add_document(tenant: str, body: DocumentIn, caller: Auth, bot: Bot) -> Changed:
    caller.admin(bot, tenant)
    count = bot.ingest_document(
        tenant,
        body.id,
        body.content,
        body.format,
        body.title,
        body.url,
        body.category,
        check_metadata(body.metadata, "document metadata"),
    )
    return Changed(tenant=tenant, count=count)


@router.get("/v1/tenants/{tenant}/entries", response_model=list[EntryOut], tags=["knowledge base"])
def list_entries(
    tenant: str,
    caller: Auth,
    bot: Bot,
    kind: Literal["faq", "passage"] | None = None,
    limit: Annotated[int, Query(gt=0, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,  # SQL takes 64-bit offsets only
) -> list[EntryOut]:
    caller.admin(bot, tenant)
    return [EntryOut.model_validate(e) for e in bot.store.entries(tenant, kind, limit, offset)]


@router.get(
    "/v1/tenants/{tenant}/entries/{entry_id}", response_model=EntryOut, tags=["knowledge base"]
)
def get_entry(tenant: str, entry_id: str, caller: Auth, bot: Bot) -> EntryOut:
    caller.admin(bot, tenant)
    row = bot.store.entry(tenant, entry_id)
    if row is None:
        raise HTTPException(404, f"no entry {entry_id!r} in tenant {tenant!r}")
    return EntryOut.model_validate(row)


@router.delete(
    "/v1/tenants/{tenant}/entries/{entry_id}", response_model=Changed, tags=["knowledge base"]
)
def delete_entry(tenant: str, entry_id: str, caller: Auth, bot: Bot) -> Changed:
    caller.admin(bot, tenant)
    count = bot.delete(tenant, entry_id)
    if not count:
        raise HTTPException(404, f"no entry or document {entry_id!r} in tenant {tenant!r}")
    return Changed(tenant=tenant, count=count)


@router.post("/v1/tenants/{tenant}/rebuild", response_model=Changed, tags=["knowledge base"])
def rebuild(tenant: str, caller: Auth, bot: Bot) -> Changed:
    caller.admin(bot, tenant)
    return Changed(tenant=tenant, count=bot.rebuild(tenant))


def _candidate_out(c: Candidate) -> SearchCandidate:
    return SearchCandidate(
        entry_id=c.entry.id,
        kind=c.entry.kind,
        question=c.entry.title,
        heading=c.entry.heading,
        answer=c.entry.body,
        url=c.entry.url,
        score=round(c.confidence, 4),
        cosine=round(c.cosine, 4),
        fused=round(c.fused, 6),
        prob=round(c.prob, 4),
        relevance=None if c.relevance is None else round(c.relevance, 4),
    )


@router.post("/v1/tenants/{tenant}/search", response_model=SearchOut, tags=["knowledge base"])
def search(tenant: str, body: SearchIn, caller: Auth, bot: Bot) -> SearchOut:
    """What the bot would do with ``question`` as a conversation's first message: the
    candidates (hybrid retrieval, reranked when a reranker is registered) with their scores,
    and the policy's decision. Nothing is stored."""
    caller.admin(bot, tenant)
    question = body.question.strip()
    if not question:
        raise InputError("empty question")
    found = bot.retrieve(
        tenant, question, k=max(body.k, bot.settings.candidates), filter=body.filter
    )
    policy = bot.policy(tenant)
    return SearchOut(
        decision=decide(found, policy),
        confidence=round(found[0].confidence, 4) if found else 0.0,
        threshold=policy.threshold,
        margin=policy.margin,
        calibrated=policy.calibrated,
        candidates=[_candidate_out(c) for c in found[: body.k]],
    )


# chat ----------------------------------------------------------------------------------------
def session_token(settings: SupportSettings, tenant: str, session_id: str) -> str:
    """The per-session secret: an HMAC of (tenant, session) under a key derived from the
    service admin key, so every replica computes the same one and nothing is stored."""
    root = settings.admin_api_key.get_secret_value().encode()
    secret = hashlib.sha256(b"verticals-support-session\0" + root).digest()
    mac = hmac.new(secret, f"{tenant}\0{session_id}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


MINTED = "w-"
"""Session ids handed out by ``POST /v1/sessions`` start with this."""
SessionToken = Annotated[str | None, Header(alias="X-Session-Token")]


def require_session_token(
    request: Request, caller: Caller, tenant: str, session_id: str, given: str | None, read: bool
) -> None:
    """A widget key (public: it is in every page with the widget) reads any session, and writes
    to a session opened by ``POST /v1/sessions``, only with that session's token."""
    if caller.role != "widget" or not (read or session_id.startswith(MINTED)):
        return
    expected = session_token(request.app.state.settings, tenant, session_id).encode()
    got = (given or "").encode()  # bytes: any header text compares, never a 500
    if not got or not hmac.compare_digest(got, expected):
        raise HTTPException(
            403, "this session needs its X-Session-Token (from POST /v1/sessions) with a widget key"
        )


@router.post("/v1/chat", response_model=ChatResponse, tags=["chat"])
async def chat(
    body: ChatRequest,
    request: Request,
    caller: Auth,
    bot: Bot,
    batcher: Batcher,
    x_session_token: SessionToken = None,
) -> ChatResponse:
    """Answered together with the other requests waiting at the same moment."""
    caller.chat(bot, body.tenant)
    require_session_token(request, caller, body.tenant, body.session_id, x_session_token, False)
    return _reply_out(await batcher.chat(body.tenant, body.session_id, body.message, body.filter))


def sse(event: str, data: Any) -> str:
    return f"event: {event}\ndata: {json.dumps(data, ensure_ascii=False)}\n\n"


@router.post(
    "/v1/chat/stream",
    tags=["chat"],
    responses={200: {"content": {"text/event-stream": {}}, "description": "Server-Sent Events"}},
)
async def chat_stream(
    body: ChatRequest,
    request: Request,
    caller: Auth,
    bot: Bot,
    batcher: Batcher,
    x_session_token: SessionToken = None,
) -> StreamingResponse:
    """The same answer as Server-Sent Events: ``meta``, then ``delta`` chunks, then ``done``."""
    caller.chat(bot, body.tenant)
    require_session_token(request, caller, body.tenant, body.session_id, x_session_token, False)
    reply = _reply_out(await batcher.chat(body.tenant, body.session_id, body.message, body.filter))

    async def events() -> AsyncIterator[str]:
        meta = reply.model_dump(exclude={"text"})
        yield sse("meta", meta)
        words = reply.text.split(" ")
        for i in range(0, len(words), 3):
            yield sse(
                "delta", {"text": " ".join(words[i : i + 3]) + (" " if i + 3 < len(words) else "")}
            )
            await asyncio.sleep(0.01)
        yield sse("done", reply.model_dump())

    return StreamingResponse(
        events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


@router.post("/v1/sessions", status_code=201, response_model=SessionOut, tags=["chat"])
def new_session(body: SessionIn, request: Request, caller: Auth, bot: Bot) -> SessionOut:
    """A new conversation: a random session id and its token, which a widget key needs
    (``X-Session-Token``) to chat in it and read the transcript back. Only fresh ids get one."""
    caller.chat(bot, body.tenant)
    session_id = f"w-{secrets.token_urlsafe(18)}"
    token = session_token(request.app.state.settings, body.tenant, session_id)
    return SessionOut(tenant=body.tenant, session_id=session_id, session_token=token)


@router.get("/v1/sessions/{session_id}/messages", response_model=list[MessageOut], tags=["chat"])
def session_messages(
    session_id: str,
    tenant: str,
    request: Request,
    caller: Auth,
    bot: Bot,
    after: int = 0,
    x_session_token: SessionToken = None,
) -> list[MessageOut]:
    """A session's transcript (the widget polls it for staff replies). A widget key (public,
    in every page) also needs the session's token from ``POST /v1/sessions``."""
    caller.chat(bot, tenant)
    require_session_token(request, caller, tenant, session_id, x_session_token, True)
    rows = bot.store.recent_messages(tenant, session_id, 200)
    return [MessageOut.model_validate(m) for m in rows if m.id > after]


@router.post("/v1/feedback", status_code=201, tags=["chat"])
def feedback(
    body: FeedbackIn, request: Request, caller: Auth, bot: Bot, x_session_token: SessionToken = None
) -> dict[str, int]:
    caller.chat(bot, body.tenant)
    require_session_token(request, caller, body.tenant, body.session_id, x_session_token, False)
    return {"id": bot.feedback(body.tenant, body.session_id, body.message_id, body.rating)}


# handoffs ------------------------------------------------------------------------------------
@router.post("/v1/handoffs", status_code=201, response_model=HandoffOpened, tags=["handoffs"])
def open_handoff(
    body: HandoffIn,
    request: Request,
    caller: Auth,
    bot: Bot,
    x_session_token: SessionToken = None,
) -> HandoffOpened:
    """The visitor asks for a person: a handoff opens on the conversation (staff see its whole
    transcript); a conversation with an open handoff keeps that one."""
    caller.chat(bot, body.tenant)
    require_session_token(request, caller, body.tenant, body.session_id, x_session_token, False)
    message_id, handoff_id = bot.conversations.request_handoff(
        body.tenant, body.session_id, body.message
    )
    return HandoffOpened(handoff_id=handoff_id, message_id=message_id, text=PERSON_TEXT)


def _handoff_out(h: HandoffRow, bot: SupportBot, transcript: bool) -> HandoffOut:
    messages = bot.store.recent_messages(h.tenant_id, h.session_id, 50) if transcript else []
    out = HandoffOut.model_validate(h)
    out.transcript = [MessageOut.model_validate(m) for m in messages]
    return out


@router.get("/v1/handoffs", response_model=list[HandoffOut], tags=["handoffs"])
def list_handoffs(
    tenant: str,
    caller: Auth,
    bot: Bot,
    status: Literal["open", "answered", "closed"] | None = None,
    transcript: bool = False,
) -> list[HandoffOut]:
    caller.admin(bot, tenant)
    return [_handoff_out(h, bot, transcript) for h in bot.store.handoffs(tenant, status)]


@router.post("/v1/handoffs/{handoff_id}/reply", tags=["handoffs"])
def staff_reply(
    handoff_id: Annotated[int, Path(ge=1, le=MAX_ROW_ID)],
    body: StaffReply,
    caller: Auth,
    bot: Bot,
) -> dict[str, int]:
    caller.admin(bot, body.tenant)
    return {
        "message_id": bot.staff_reply(body.tenant, handoff_id, body.text, body.entry_id, body.close)
    }


# widget --------------------------------------------------------------------------------------
def suggested_questions(entries: list[EntryRow], n: int = 3) -> list[str]:
    """The first FAQ question of each category, in the knowledge base's order (varied
    suggestions), topped up with the next questions when there are fewer categories."""
    faqs = [e for e in entries if e.kind == "faq" and e.title]
    seen: set[str] = set()
    firsts = []
    for e in faqs:
        if e.category not in seen:
            seen.add(e.category)
            firsts.append(e)
    rest = [e for e in faqs if e not in firsts]
    return [e.title for e in (firsts + rest)[:n]]


@router.get("/v1/widget", response_model=WidgetConfig, tags=["chat"])
def widget_config(
    tenant: Annotated[str, Query(min_length=1, max_length=64)], caller: Auth, bot: Bot
) -> WidgetConfig:
    """What the widget shows before the first question: the tenant's name and suggested
    questions. The widget asks at load, so a wrong key or tenant shows in the console at once."""
    caller.chat(bot, tenant)
    row = bot.store.tenant(tenant)
    assert row is not None
    entries = bot.store.entries(tenant, "faq", 200, 0)
    return WidgetConfig(tenant=tenant, name=row.name, suggestions=suggested_questions(entries))


@router.get("/widget.js", include_in_schema=False)
def widget_js() -> Response:
    text = files("verticals.support_bot").joinpath("static/widget.js").read_text()
    return Response(text, media_type="application/javascript")


@router.get("/", include_in_schema=False)
def demo_page(request: Request) -> HTMLResponse:
    demo = getattr(request.app.state, "demo", None)
    if not demo:
        return HTMLResponse("<p>verticals support bot: no demo tenant configured</p>")
    page = files("verticals.support_bot").joinpath("static/demo.html").read_text()
    return HTMLResponse(page.replace("{{TENANT}}", demo["tenant"]).replace("{{KEY}}", demo["key"]))


def build_app(
    settings: SupportSettings,
    bot: SupportBot | None = None,
    demo: dict[str, str] | None = None,
) -> FastAPI:
    """The service app; ``bot`` may be prebuilt (tests share one encoder)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "bot", None) is None:
            app.state.bot = SupportBot(settings)
            app.state.bot.load()
        app.state.batcher = ChatBatcher(app.state.bot)
        yield
        app.state.batcher.close()
        app.state.bot.store.db.dispose()

    app = create_app(
        "support_bot",
        settings,
        [router],
        lifespan=lifespan,
        description="Customer-service bot over per-tenant knowledge bases.",
    )
    app.state.bot = bot
    app.state.demo = demo
    app.add_middleware(
        CORSMiddleware,
        allow_origins=list(settings.cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["X-API-Key", "X-Session-Token", "Content-Type"],
    )

    @app.exception_handler(InputError)
    async def _bad_input(_: Request, exc: InputError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=400)

    @app.exception_handler(UnknownTenant)
    async def _unknown(_: Request, exc: UnknownTenant) -> JSONResponse:
        return JSONResponse({"detail": str(exc.args[0])}, status_code=404)

    @app.exception_handler(LookupError)
    async def _missing(_: Request, exc: LookupError) -> JSONResponse:
        return JSONResponse({"detail": str(exc.args[0]) if exc.args else "not found"}, 404)

    return app
