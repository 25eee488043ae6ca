"""``verticals support ...``: serve (with the sample store), ingest, rebuild, calibrate, eval,
fine-tune. Heavy imports (torch, faiss, bm25s) happen inside the commands."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from verticals.core.cli import one_line_errors

if TYPE_CHECKING:
    from verticals.support_bot.pipeline import SupportBot
    from verticals.support_bot.settings import SupportSettings

app = typer.Typer(
    help="Customer-service bot over per-tenant knowledge bases.", no_args_is_help=True
)
DEMO = "demo"
DOC_FORMATS = {
    ".md": "markdown",
    ".markdown": "markdown",
    ".html": "html",
    ".htm": "html",
    ".txt": "text",
}


def _input_errors() -> tuple[type[Exception], ...]:
    from verticals.support_bot.pipeline import UnknownTenant
    from verticals.support_bot.text import InputError

    return (InputError, UnknownTenant)


errors = one_line_errors(also=_input_errors)
"""Bad input or settings become a one-line message naming the problem, not a traceback."""


def _settings(**overrides: Any) -> SupportSettings:
    from verticals.support_bot.settings import get_settings

    return get_settings(**overrides)


def _bot(settings: SupportSettings) -> SupportBot:
    from verticals.support_bot.pipeline import SupportBot

    bot = SupportBot(settings)
    bot.load()
    return bot


def prepare_demo(bot: SupportBot, settings: SupportSettings) -> dict[str, str]:
    """The sample store as tenant ``demo``: created, filled and calibrated when needed. Its
    widget key (public by design; the database keeps only its hash) is kept in the data folder,
    so a page embedding it keeps working across restarts."""
    from verticals.support_bot.pipeline import load_sample, read_questions

    info: dict[str, str] = {"tenant": DEMO}
    if bot.store.tenant(DEMO) is None:
        admin, _ = bot.create_tenant(DEMO, "Larkspur & Co. (demo store)")
        info["admin_key"] = admin
    if bot.store.count(DEMO) == 0:
        load_sample(bot, DEMO, settings.sample_dir)
    if not bot.policy(DEMO).calibrated:
        questions = read_questions(settings.sample_dir / "questions.jsonl")
        bot.calibrate(DEMO, [q for q in questions if q.get("split") == "validation"])
    saved = settings.data_dir / "demo_widget.key"
    key = saved.read_text().strip() if saved.exists() else ""
    if not key or bot.authenticate(key) != (DEMO, "widget"):
        key = bot.rotate_keys(DEMO, admin=False)["widget_key"]
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_text(key + "\n")
    info["key"] = key
    return info


@app.command()
@errors
def up(
    port: Annotated[int | None, typer.Option(help="Port (default VERTICALS_SUPPORT_PORT).")] = None,
) -> None:
    """Serve the sample knowledge base with the chat widget at a URL it prints."""
    from verticals.serving.logging import configure_logging
    from verticals.serving.server import serve
    from verticals.support_bot.api import build_app
    from verticals.support_bot.settings import SERVICE

    settings = _settings(**({"port": port} if port else {}))
    configure_logging(settings.log_level, SERVICE)  # before the models load
    bot = _bot(settings)
    demo = prepare_demo(bot, settings)
    url = f"http://{settings.host}:{settings.port}/"
    typer.echo(f"sample store '{DEMO}' with the chat widget: {url}")
    typer.echo(f"widget key (public): {demo['key']}")
    if "admin_key" in demo:
        typer.echo(f"admin key for tenant '{DEMO}' (shown once): {demo['admin_key']}")
    typer.echo('try: "How do I return an item?", then "and how long does that take?"')
    serve(build_app(settings, bot, demo), settings)


@app.command()
@errors
def serve() -> None:
    """Serve the API for all tenants (no demo page)."""
    from verticals.serving.server import serve as run
    from verticals.support_bot.api import build_app

    settings = _settings()
    run(build_app(settings, _bot(settings)), settings)


@app.command("create-tenant")
@errors
def create_tenant(tenant: str, name: str = "") -> None:
    """Create a tenant and print its admin and widget keys (shown once, stored hashed)."""
    from verticals.support_bot.pipeline import SupportBot

    admin, widget = SupportBot(_settings()).create_tenant(tenant, name)
    typer.echo(json.dumps({"tenant": tenant, "admin_key": admin, "widget_key": widget}))


@app.command()
@errors
def ingest(
    tenant: str,
    files: Annotated[list[Path], typer.Argument(help="FAQ .csv/.jsonl or .md/.html/.txt docs")],
    url: str = "",
) -> None:
    """Add or update FAQ entries and documents (upsert by id; a document's id is its file stem)."""
    bot = _bot(_settings())
    for path in files:
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file")
        suffix = path.suffix.lower()
        if suffix in {".csv", ".jsonl"}:
            n = bot.ingest_faq(tenant, path.read_text(), suffix[1:], path.name)
        elif suffix in DOC_FORMATS:
            n = bot.ingest_document(
                tenant, path.stem, path.read_text(), DOC_FORMATS[suffix], url=url
            )
        else:
            from verticals.support_bot.text import InputError

            raise InputError(f"{path}: unsupported file type {suffix!r}")
        typer.echo(f"{path}: {n} entries")


@app.command()
@errors
def delete(tenant: str, entry_id: str) -> None:
    """Delete an entry or every passage of a document."""
    typer.echo(f"deleted {_bot(_settings()).delete(tenant, entry_id)} entries")


@app.command("list")
@errors
def list_entries(tenant: str, limit: int = 50) -> None:
    """List a tenant's entries."""
    from verticals.support_bot.pipeline import SupportBot

    bot = SupportBot(_settings())
    bot.require_tenant(tenant)
    for e in bot.store.entries(tenant, limit=limit):
        typer.echo(f"{e.entry_id}\t{e.kind}\t{e.title[:60]}\t{e.heading[:40]}")


@app.command()
@errors
def rebuild(tenant: Annotated[str | None, typer.Argument()] = None) -> None:
    """Re-encode and re-index one tenant (or all), e.g. after a new encoder was promoted."""
    from verticals.support_bot.pipeline import SupportBot

    bot = SupportBot(_settings())
    for t in [tenant] if tenant else [row.id for row in bot.store.tenants()]:
        typer.echo(f"{t}: {bot.rebuild(t)} entries indexed with {bot.encoder.version}")


def _questions(file: Path, split: str | None) -> list[dict[str, Any]]:
    from verticals.support_bot.pipeline import read_questions

    rows = read_questions(file)
    return [r for r in rows if not split or r.get("split") == split]


@app.command()
@errors
def calibrate(tenant: str, file: Path, split: str = "validation") -> None:
    """Calibrate the handoff threshold on labelled validation questions; stored per tenant."""
    bot = _bot(_settings())
    typer.echo(json.dumps(bot.calibrate(tenant, _questions(file, split or None)), default=float))


@app.command("eval")
@errors
def evaluate(
    file: Path,
    tenant: str = DEMO,
    mode: Annotated[str, typer.Option(help="hybrid, dense or bm25")] = "hybrid",
    split: Annotated[str, typer.Option(help="Only this split ('' for all).")] = "",
) -> None:
    """hit@1, hit@5, MRR and handoff precision/recall on a labelled question file
    (JSONL/CSV: question, expected entry id, empty for out-of-scope). Tenant ``demo`` is
    created from the sample store if missing."""
    settings = _settings()
    bot = _bot(settings)
    if tenant == DEMO:
        prepare_demo(bot, settings)
    if mode not in {"hybrid", "dense", "bm25"}:
        from verticals.support_bot.text import InputError

        raise InputError(f"unknown mode {mode!r} (hybrid, dense or bm25)")
    result = bot.evaluate(tenant, _questions(file, split or None), mode)  # type: ignore[arg-type]
    typer.echo(json.dumps(result, indent=2))


@app.command()
@errors
def finetune(
    tenant: str = DEMO,
    questions: Annotated[
        Path | None, typer.Option(help="Held-out labelled questions (default: the sample set).")
    ] = None,
    split: str = "validation",
    epochs: int = 2,
) -> None:
    """Fine-tune the encoder on (query, positive) pairs from FAQ paraphrases and feedback;
    promote it only if dense-retrieval MRR on held-out questions beats the current encoder."""
    from verticals.support_bot.finetune import finetune as run

    settings = _settings()
    bot = _bot(settings)
    if tenant == DEMO:
        prepare_demo(bot, settings)
    held = _questions(questions or settings.sample_dir / "questions.jsonl", split or None)
    result = run(bot, tenant, held, epochs=epochs)
    result.pop("candidate_bot", None)
    typer.echo(json.dumps(result, indent=2, default=str))


@app.command("train-intent")
@errors
def train_intent(tenant: str = DEMO, epochs: int = 3) -> None:
    """Train the tenant's optional intent classifier (FAQ questions and paraphrases -> category)
    with the core; chat then reports the intent and favours that category's entries."""
    from verticals.support_bot.finetune import train_intent as run

    settings = _settings()
    bot = _bot(settings)
    if tenant == DEMO:
        prepare_demo(bot, settings)
    typer.echo(json.dumps(run(bot, tenant, epochs=epochs), indent=2))


@app.command()
@errors
def distil(
    epochs: int = 2,
    boolq: Annotated[int, typer.Option(help="BoolQ queries among the training questions.")] = 6000,
) -> None:
    """Distil the second encoder (VERTICALS_SUPPORT_RESCORE_ENCODER) into a MiniLM student that
    reads the questions (real FiQA, PrivacyQA and BoolQ questions; the teacher's vectors cached);
    it becomes current only when it beats its starting point on held-out questions."""
    import tempfile

    from verticals.core.registry import ModelRegistry
    from verticals.support_bot.distil import train_student, training_questions
    from verticals.support_bot.rescoring import load_rescorer

    settings = _settings(rescore_student=False)
    rescorer = load_rescorer(settings)
    if rescorer is None:
        raise typer.BadParameter("set VERTICALS_SUPPORT_RESCORE_ENCODER (e.g. all-mpnet-base-v2)")
    outcome = train_student(
        ModelRegistry.default(),
        Path(tempfile.mkdtemp()),
        rescorer,
        settings.rescore_student_task,
        training_questions(boolq),
        epochs,
    )
    typer.echo(
        json.dumps(
            {"version": outcome.version, "current": outcome.current, "metrics": outcome.metrics},
            indent=2,
        )
    )
