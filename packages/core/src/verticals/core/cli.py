"""The ``verticals`` command. The core adds train/evaluate/predict/models; every other package
adds its own sub-commands through the ``verticals.commands`` entry-point group."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from importlib.metadata import entry_points
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

app = typer.Typer(
    help="verticals: fine-tune small transformers on your own data and serve them.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
models = typer.Typer(help="Inspect and manage the model registry.", no_args_is_help=True)
app.add_typer(models, name="models")

F = TypeVar("F", bound=Callable[..., Any])


def fail(message: str, code: int = 2) -> typer.Exit:
    typer.secho(f"error: {message}", fg="red", err=True)
    return typer.Exit(code)


ErrorKinds = Callable[[], tuple[type[Exception], ...]]


def _core_errors() -> tuple[type[Exception], ...]:
    from verticals.core.config import ConfigError
    from verticals.core.data import DataError
    from verticals.core.registry import RegistryError
    from verticals.core.settings import SettingsError

    return (ConfigError, DataError, RegistryError, SettingsError, FileNotFoundError)


def one_line(exc: BaseException) -> str:
    """An error's message on one line (a KeyError's quotes and line breaks removed)."""
    text = str(exc.args[0]) if len(exc.args) == 1 else str(exc)
    return "; ".join(line.strip() for line in text.strip("'\"").splitlines() if line.strip())


def one_line_errors(also: ErrorKinds = tuple) -> Callable[[F], F]:
    """The CLI error handler of every command (core and services): bad settings, the core's input
    errors, a missing file and the errors ``also`` returns end the command with one line on
    stderr and exit code 2, never a traceback. ``also`` is called only once an error is raised,
    so a service's heavy modules are not imported just to name their error classes."""

    def decorate(func: F) -> F:
        @wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            try:
                return func(*args, **kwargs)
            except Exception as exc:
                if isinstance(exc, _core_errors() + also()):
                    raise fail(one_line(exc)) from None
                raise

        return wrapper  # type: ignore[return-value]

    return decorate


user_errors = one_line_errors()
"""The handler for commands that raise only the core's errors."""


def _registry() -> Any:
    from verticals.core.registry import ModelRegistry

    return ModelRegistry.default()


@app.command()
@user_errors
def train(
    config: Annotated[Path, typer.Argument(help="Training config (YAML).")],
    promote: Annotated[
        bool, typer.Option(help="Promote the new version if it is not worse.")
    ] = False,
    progress: Annotated[bool, typer.Option(help="Show progress bars.")] = True,
) -> None:
    """Fine-tune a model from a config and file it in the registry.

    Data-parallel on N processes or GPUs: ``torchrun --nproc_per_node N -m verticals.core.cli
    train CONFIG`` (same config; ``batch_size`` is per process)."""
    from verticals.core.config import TrainConfig
    from verticals.core.distributed import is_main_process
    from verticals.core.training import run_training

    cfg = TrainConfig.from_yaml(config)
    outcome = run_training(cfg, _registry(), show_progress=progress)
    if not is_main_process():
        return  # rank 0 reports (and promotes) for every process
    typer.echo(f"registered {outcome.task} v{outcome.version} at {outcome.path}")
    typer.echo(json.dumps({k: round(v, 4) for k, v in outcome.metrics.items()}))
    typer.echo(f"reports: {outcome.path / 'reports'}")
    if promote and not outcome.current:
        _promote(outcome.task, outcome.version, force=False)


@app.command()
@user_errors
def evaluate(
    task: Annotated[str, typer.Argument(help="Registry task name.")],
    version: Annotated[int | None, typer.Option(help="Version (default: current).")] = None,
    data: Annotated[
        Path | None, typer.Option(help="Labelled file (default: the model's test split).")
    ] = None,
    text_column: Annotated[str, typer.Option(help="Column holding the text.")] = "text",
    column: Annotated[
        list[str] | None, typer.Option(help="HEAD=COLUMN mapping; repeatable.")
    ] = None,
    form: Annotated[str, typer.Option(help="torch, onnx or onnx-int8.")] = "torch",
    out: Annotated[Path | None, typer.Option(help="Folder for the report JSON and plots.")] = None,
) -> None:
    """Score a registered model on labelled data; writes a JSON report and confusion plots."""
    from verticals.core.evaluation import evaluate_directory
    from verticals.core.training import write_reports

    path = _registry().path(task, version)
    mapping = dict(item.split("=", 1) for item in column or [])
    result = evaluate_directory(path, data or path / "test.jsonl", text_column, mapping, form)
    out = out or Path("reports") / f"{path.parent.name}-{path.name}"
    write_reports(out, result["reports"], [], f"{task} {path.name}")
    typer.echo(json.dumps({k: round(v, 4) for k, v in result["metrics"].items()}))
    typer.echo(f"report: {out / 'metrics.json'}")


@app.command()
@user_errors
def predict(
    task: Annotated[str, typer.Argument(help="Registry task name.")],
    input: Annotated[
        str, typer.Option("--input", "-i", help="Text file or JSONL ('-' for stdin).")
    ] = "-",
    version: Annotated[int | None, typer.Option(help="Version (default: current).")] = None,
    form: Annotated[str, typer.Option(help="torch, onnx or onnx-int8.")] = "torch",
    batch_size: Annotated[int, typer.Option(min=1)] = 64,
) -> None:
    """Classify (or embed) texts: one per line, or JSONL with a 'text' field; JSON lines out."""
    from verticals.core.inference import Encoder, Predictor

    handle = sys.stdin if input == "-" else open(input, encoding="utf-8")  # noqa: SIM115
    with handle:
        texts = [_text_of(line) for line in handle if line.strip()]
    path = _registry().path(task, version)
    card = json.loads((path / "card.json").read_text())
    if card["kind"] == "classification":
        rows = Predictor.from_directory(path, form, batch_size=batch_size).predict(texts)  # type: ignore[arg-type]
    else:
        vectors = Encoder.from_directory(path, form, batch_size=batch_size).encode(texts)  # type: ignore[arg-type]
        rows = [{"embedding": [round(float(x), 6) for x in v]} for v in vectors]
    for text, row in zip(texts, rows, strict=True):
        typer.echo(json.dumps({"text": text, **row}, ensure_ascii=False))


def _text_of(line: str) -> str:
    line = line.rstrip("\n")
    if line.lstrip().startswith("{"):
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            return line
        if isinstance(record, dict) and "text" in record:
            return str(record["text"])
    return line


@models.command("list")
@user_errors
def list_models(task: Annotated[str | None, typer.Argument()] = None) -> None:
    """Every registered version, with its main metric; * marks the current one."""
    cards = _registry().cards(task)
    if not cards:
        typer.echo("no models registered yet")
    for card in cards:
        mark = "*" if card["current"] else " "
        metric = card["primary_metric"]
        typer.echo(
            f"{mark} {card['task']:<28} v{card['version']:<4} {card['kind']:<14} "
            f"{card['method']:<5} "
            f"{metric}={card['metrics'].get(metric, float('nan')):.4f}  {card['created_at']}"
        )


@models.command()
@user_errors
def show(task: str, version: Annotated[int | None, typer.Argument()] = None) -> None:
    """The model card of a version (default: current)."""
    typer.echo(json.dumps(_registry().card(task, version), indent=2))


@models.command()
@user_errors
def promote(
    task: str,
    version: int,
    force: Annotated[bool, typer.Option(help="Promote even if it scores worse.")] = False,
) -> None:
    """Make a version current unless it scores worse than the current one on the same test set."""
    _promote(task, version, force)


def _promote(task: str, version: int, force: bool) -> None:
    from verticals.core.registry import RegistryError
    from verticals.core.training import promote

    try:
        result = promote(_registry(), task, version, force=force)
    except RegistryError as exc:
        raise fail(str(exc).strip("'\"")) from None
    compared = "forced" if result.forced else f"{result.candidate_score} vs {result.current_score}"
    typer.echo(
        f"{task}: v{result.version} is current (was v{result.previous}; {result.metric} {compared})"
    )


@models.command()
@user_errors
def rollback(task: str) -> None:
    """Return to the model that was current before the last promotion."""
    typer.echo(f"{task}: v{_registry().rollback(task)} is current")


@models.command()
@user_errors
def export(task: str, version: Annotated[int | None, typer.Argument()] = None) -> None:
    """Write the fast CPU form (ONNX, and int8) and measure its accuracy on the test split."""
    from verticals.core.evaluation import evaluate_directory
    from verticals.core.onnx import export_onnx

    registry = _registry()
    path = registry.path(task, version)
    card = json.loads((path / "card.json").read_text())
    for written in export_onnx(path):
        typer.echo(f"wrote {written}")
    metric = card["primary_metric"]
    measured = {}
    for form in ("onnx", "onnx-int8"):
        score = evaluate_directory(path, path / "test.jsonl", form=form)["metrics"][metric]
        measured[f"{form.replace('-', '_')}_{metric}"] = score
    registry.update_card(task, card["version"], metrics={**card["metrics"], **measured})
    typer.echo(json.dumps({f"torch_{metric}": card["metrics"][metric], **measured}))


def _add_plugins() -> None:
    """Plug-ins are typer apps (sub-command groups) or plain functions (single commands)."""
    for ep in entry_points(group="verticals.commands"):
        try:
            plugin = ep.load()
            if isinstance(plugin, typer.Typer):
                app.add_typer(plugin, name=ep.name)
            else:
                app.command(name=ep.name)(plugin)
        except Exception as exc:  # a broken plugin must not take the whole CLI down
            typer.secho(f"warning: sub-command '{ep.name}' failed to load: {exc}", err=True)


def main() -> None:
    _add_plugins()
    try:
        user_errors(app)()
    except typer.Exit as done:  # a command without the handler raised a user error
        sys.exit(done.exit_code)


if __name__ == "__main__":
    main()
