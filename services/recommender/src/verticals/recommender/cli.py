"""``verticals recommend``: serve, import/delete catalog items, import events, evaluate, fine-tune.

Only light imports at module level: ``verticals --help`` stays instant.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from verticals.core.cli import fail, user_errors

app = typer.Typer(
    help="Recommendations: catalog, events, serving, evaluation and fine-tuning.",
    no_args_is_help=True,
)


def _settings(**overrides: Any) -> Any:
    from verticals.recommender.settings import get_settings

    return get_settings(**overrides)


def _engine(settings: Any) -> Any:
    from verticals.recommender.pipeline import Recommender

    return Recommender(settings)


@app.command()
@user_errors
def up(
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
    catalog: Annotated[
        Path | None, typer.Option(help="Catalog to load when empty (default: the sample).")
    ] = None,
) -> None:
    """Serve the API on 127.0.0.1; an empty catalog is filled with the sample catalog first."""
    from verticals.recommender.api import build_app
    from verticals.serving.logging import configure_logging
    from verticals.serving.server import serve

    settings = _settings(**({"port": port} if port else {}))
    configure_logging(settings.log_level, "recommender")  # before the encoder loads
    engine = _engine(settings)
    source = catalog or settings.sample_catalog
    if len(engine.index) == 0 and source is not None and str(source) not in ("", "."):
        created, _ = _import(engine, Path(source))
        typer.echo(f"loaded {created} items from {source}", err=True)
    url = f"http://{settings.host}:{settings.port}"
    typer.echo(f"{len(engine.index)} items; API docs: {url}/docs")
    typer.echo(f"try: curl '{url}/v1/users/u1/recommendations?k=5'")
    serve(build_app(settings, engine), settings)


def _import(engine: Any, path: Path) -> tuple[int, int]:
    from verticals.recommender.ingest import read_items
    from verticals.recommender.pipeline import RecommenderError

    items = read_items(path)  # a DataError is one line (user_errors)

    created = 0
    step = engine.settings.max_batch
    try:
        for start in range(0, len(items), step):
            created += engine.upsert_items(items[start : start + step])[0]
    except RecommenderError as exc:
        raise fail(f"{path}: {exc}") from None
    return created, len(items)


@app.command("import")
@user_errors
def import_items(file: Annotated[Path, typer.Argument(help="CSV, JSONL or Parquet.")]) -> None:
    """Upsert catalog items from a file (id, title, description, category, tags, price,
    in_stock, attributes; other columns become attributes)."""
    engine = _engine(_settings())
    created, total = _import(engine, file)
    typer.echo(
        json.dumps({"created": created, "updated": total - created, "items": len(engine.index)})
    )


@app.command()
@user_errors
def delete(
    ids: Annotated[list[str] | None, typer.Argument(help="Item ids.")] = None,
    file: Annotated[Path | None, typer.Option(help="File with an 'id' column.")] = None,
) -> None:
    """Delete items by id (arguments or a file's 'id' column)."""
    from verticals.core.data import read_table

    wanted = list(ids or [])
    if file:
        frame = read_table(file)
        if "id" not in frame.columns:
            raise fail(f"{file}: no 'id' column")
        wanted += [str(v) for v in frame["id"].tolist()]
    if not wanted:
        raise fail("give item ids or --file")
    deleted, missing = _engine(_settings()).delete_items(wanted)
    typer.echo(json.dumps({"deleted": deleted, "missing": missing}))


@app.command()
@user_errors
def events(
    file: Annotated[Path, typer.Argument(help="user_id, item_id, type, timestamp.")],
) -> None:
    """Ingest an event log file (all rows checked first; nothing is stored on an error)."""
    from verticals.recommender.ingest import read_events
    from verticals.recommender.pipeline import RecommenderError

    rows = read_events(file)
    engine = _engine(_settings())
    unknown = sorted({e.item_id for e in rows if e.item_id not in engine.meta.key_of})
    if unknown:
        raise fail(f"{file}: unknown item id(s): {', '.join(unknown[:10])}")
    step = engine.settings.max_batch
    try:
        for start in range(0, len(rows), step):
            engine.ingest_events(rows[start : start + step])
    except RecommenderError as exc:
        raise fail(f"{file}: {exc}") from None
    typer.echo(json.dumps({"accepted": len(rows)}))


@app.command("eval")
@user_errors
def evaluate(
    out: Annotated[Path | None, typer.Option(help="Write the figures as JSON here.")] = None,
    tune: Annotated[bool, typer.Option(help="Tune blend weights on the validation split.")] = True,
) -> None:
    """MovieLens (evaluation only): temporal leave-last-out, full ranking; prints the protocol
    and HR@10, NDCG@10 and coverage for popularity, text-only and hybrid."""
    from verticals.recommender.movielens import run_evaluation

    report = run_evaluation(tune=tune, log=lambda m: typer.echo(m, err=True))
    typer.echo(json.dumps(report, indent=2))
    if out:
        out.write_text(json.dumps(report, indent=2))


@app.command()
@user_errors
def finetune(
    encoder: Annotated[
        bool, typer.Option("--encoder", help="Fine-tune the item encoder instead of the tower.")
    ] = False,
    max_pairs: Annotated[int, typer.Option(min=10, help="Encoder pairs.")] = 4000,
    epochs: Annotated[
        int | None, typer.Option(min=1, help="Default: 30 (tower, early stopping), 1 (encoder).")
    ] = None,
) -> None:
    """Train the user tower on the event log with the core (promoted only if its validation
    HR@10 beats popularity and the current tower); with --encoder, fine-tune the item encoder
    on (item, next item) pairs instead (promoted only if offline HR@10 and NDCG@10 improve)."""
    settings = _settings()
    say = lambda m: typer.echo(m, err=True)  # noqa: E731
    if encoder:
        from verticals.recommender.finetune import finetune_from_log

        result = finetune_from_log(settings, max_pairs=max_pairs, epochs=epochs or 1, log=say)
    else:
        from verticals.recommender.tower import train_tower_from_log

        result = train_tower_from_log(settings, epochs=epochs or 30, log=say)
    typer.echo(json.dumps(result, indent=2))


@app.command()
@user_errors
def sample(
    n: Annotated[int, typer.Option(min=1)] = 300,
    out: Annotated[Path, typer.Option()] = Path("shared/recommender/sample_catalog.jsonl"),
    seed: int = 7,
) -> None:
    """Write a generated (synthetic) catalog as JSONL."""
    from verticals.recommender.generate import generate_catalog

    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w") as handle:
        for item in generate_catalog(n, seed):
            handle.write(json.dumps(item) + "\n")
    typer.echo(f"wrote {n} items to {out}")
