"""Thin HTTP routes over the engine: items, events, recommendations."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, HTTPException, Query, Request
from fastapi.concurrency import run_in_threadpool
from pydantic import Field

from verticals.recommender.catalog import Filters
from verticals.recommender.pipeline import Recommender, RecommenderError
from verticals.recommender.schemas import (
    DeleteResult,
    EventBatch,
    EventIn,
    EventResult,
    IdBatch,
    ItemBatch,
    ItemIn,
    ItemOut,
    RecommendationResponse,
    UpsertResult,
)
from verticals.recommender.settings import RecommenderSettings
from verticals.serving.app import create_app, error_responses
from verticals.serving.auth import AdminKey


async def get_engine(request: Request) -> Recommender:
    return request.app.state.engine  # type: ignore[no-any-return]


Engine = Annotated[Recommender, Depends(get_engine)]
router = APIRouter(prefix="/v1")


def _fail(exc: RecommenderError) -> HTTPException:
    return HTTPException(exc.status, str(exc))


async def get_filters(
    engine: Engine,
    category: Annotated[list[str] | None, Query(description="Repeat or comma-separate.")] = None,
    min_price: Annotated[float | None, Query(ge=0)] = None,
    max_price: Annotated[float | None, Query(ge=0)] = None,
    in_stock: Annotated[bool, Query(description="Only items in stock.")] = True,
    exclude_seen: Annotated[bool | None, Query(description="Default from settings.")] = None,
) -> Filters:
    categories = [c.strip() for value in category or [] for c in value.split(",")]
    try:
        return engine.filters(categories, min_price, max_price, in_stock, exclude_seen)
    except RecommenderError as exc:
        raise _fail(exc) from None


FilterDep = Annotated[Filters, Depends(get_filters)]
K = Annotated[int, Query(ge=1, description="How many items.")]


@router.get("/users/{user_id}/recommendations", response_model=RecommendationResponse)
async def recommendations(
    user_id: str, engine: Engine, filters: FilterDep, k: K = 10, q: str | None = None
) -> dict[str, Any]:
    """Personal recommendations; a new user gets trending items (or matches for ``q``).

    Ranking without a query takes about a millisecond and runs on the event loop; a query
    needs the encoder and runs in the thread pool."""
    try:
        if q:
            variant, ranked = await run_in_threadpool(engine.recommend, user_id, k, filters, q)
        else:
            variant, ranked = engine.recommend(user_id, k, filters)
    except RecommenderError as exc:
        raise _fail(exc) from None
    return {
        "user_id": user_id,
        "variant": variant,
        "model_version": engine.model_version,
        "strategy": ranked.strategy,
        "items": engine.describe(ranked),
    }


@router.get("/items/{item_id}/similar", response_model=RecommendationResponse)
async def similar(item_id: str, engine: Engine, filters: FilterDep, k: K = 10) -> dict[str, Any]:
    """Items like this one (text neighbours blended with co-occurrence)."""
    try:
        ranked = engine.similar(item_id, k, filters)
    except RecommenderError as exc:
        raise _fail(exc) from None
    return {
        "item_id": item_id,
        "variant": "A",
        "model_version": engine.model_version,
        "strategy": ranked.strategy,
        "items": engine.describe(ranked),
    }


@router.post("/events", response_model=EventResult, responses=error_responses(404))
def events(
    engine: Engine,
    body: Annotated[EventIn | EventBatch | Annotated[list[EventIn], Field(min_length=1)], Body()],
) -> EventResult:
    """One event, ``{"events": [...]}`` or a JSON list; unknown items reject the whole batch."""
    batch = (
        [body]
        if isinstance(body, EventIn)
        else body.events
        if isinstance(body, EventBatch)
        else body
    )
    if not batch:
        raise HTTPException(422, "no events in the request")
    try:
        return EventResult(accepted=engine.ingest_events(batch))
    except RecommenderError as exc:
        raise _fail(exc) from None


@router.post("/items", response_model=UpsertResult)
def upsert_items(engine: Engine, _: AdminKey, body: ItemBatch) -> UpsertResult:
    """Bulk insert-or-update (admin key); items are encoded and indexed at once."""
    try:
        created, updated = engine.upsert_items(body.items)
    except RecommenderError as exc:
        raise _fail(exc) from None
    return UpsertResult(created=created, updated=updated, encoder_version=engine.model_version)


@router.put("/items/{item_id}", response_model=UpsertResult)
def put_item(item_id: str, engine: Engine, _: AdminKey, item: ItemIn) -> UpsertResult:
    if item.id != item_id:
        raise HTTPException(422, f"path id '{item_id}' differs from body id '{item.id}'")
    return upsert_items(engine, _, ItemBatch(items=[item]))


@router.get("/items/{item_id}", response_model=ItemOut)
def get_item(item_id: str, engine: Engine) -> dict[str, Any]:
    try:
        return engine.get_item(item_id)
    except RecommenderError as exc:
        raise _fail(exc) from None


@router.get("/items")
def list_items(
    engine: Engine,
    offset: Annotated[int, Query(ge=0, le=1_000_000_000)] = 0,  # SQL takes 64-bit offsets only
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    total, items = engine.list_items(offset, limit)
    return {"total": total, "items": [ItemOut(**i).model_dump() for i in items]}


@router.delete("/items/{item_id}", response_model=DeleteResult)
def delete_item(item_id: str, engine: Engine, _: AdminKey) -> DeleteResult:
    deleted, missing = engine.delete_items([item_id])
    if missing:
        raise HTTPException(404, f"unknown item '{item_id}'")
    return DeleteResult(deleted=deleted, missing=[])


@router.post("/items/delete", response_model=DeleteResult)
def delete_items(engine: Engine, _: AdminKey, body: IdBatch) -> DeleteResult:
    """Bulk delete (admin key); unknown ids are reported, not an error."""
    if len(body.ids) > engine.settings.max_batch:
        raise HTTPException(
            413, f"batch of {len(body.ids)} ids is over {engine.settings.max_batch}"
        )
    deleted, missing = engine.delete_items(body.ids)
    return DeleteResult(deleted=deleted, missing=missing)


def build_app(settings: RecommenderSettings, engine: Recommender | None = None) -> FastAPI:
    """The service app; the engine is built at start unless one is given (tests share one)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if getattr(app.state, "engine", None) is None:
            app.state.engine = Recommender(settings)
        yield

    app = create_app(
        "recommender",
        settings,
        [router],
        lifespan=lifespan,
        description="Recommendations from item texts, popularity and co-occurrence.",
        health=lambda: app.state.engine.stats() if getattr(app.state, "engine", None) else {},
    )
    app.state.engine = engine
    return app
