"""``verticals broker up|down|status``: the embedded Kafka-protocol broker (noida-db)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="Run the embedded Kafka-protocol broker (noida-db) on 127.0.0.1.", no_args_is_help=True
)
DEFAULT_DIR = Path("var/news_monitor/broker")
DataDir = Annotated[Path, typer.Option(help="Broker data directory (one per run).")]


@app.callback()
def _logging() -> None:
    """Whatever the broker commands log (the Kafka client's retries while the broker starts)
    comes out in the suite's JSON format."""
    from verticals.serving.logging import configure_logging

    configure_logging("WARNING", "broker")


@app.command()
def up(
    data_dir: DataDir = DEFAULT_DIR,
    port: Annotated[int, typer.Option(help="Kafka port on 127.0.0.1.")] = 19092,
    fresh: Annotated[bool, typer.Option(help="Delete the data dir first.")] = False,
) -> None:
    """Start the broker in the background; it keeps running until `verticals broker down`."""
    from verticals.news_monitor.broker import BrokerError, NoidaBroker, running

    state = running(data_dir)
    if state:
        typer.echo(f"already running: 127.0.0.1:{state['port']} (pid {state['pid']})")
        return
    if fresh and data_dir.exists():
        shutil.rmtree(data_dir)
    broker = NoidaBroker(data_dir, port)
    try:
        process = broker.start(detach=True)
    except BrokerError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"broker up: {broker.bootstrap} (pid {process.pid}, data {broker.data_dir})")


@app.command()
def down(data_dir: DataDir = DEFAULT_DIR) -> None:
    """Stop the broker started by `up` (clean stop: its data is saved)."""
    from verticals.news_monitor.broker import down as stop

    state = stop(data_dir)
    typer.echo(f"stopped pid {state['pid']}" if state else "no broker running for " + str(data_dir))


@app.command()
def status(data_dir: DataDir = DEFAULT_DIR) -> None:
    """Is the broker of this data dir running?"""
    from verticals.news_monitor.broker import running

    state = running(data_dir)
    typer.echo(
        f"running: 127.0.0.1:{state['port']} (pid {state['pid']})" if state else "not running"
    )
    raise typer.Exit(0 if state else 1)
