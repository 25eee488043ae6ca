"""``verticals dashboard up``: serve the management dashboard (light imports only here)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from verticals.core.cli import user_errors

app = typer.Typer(help="Management dashboard of the suite.", no_args_is_help=True)


@app.command()
@user_errors
def up(
    port: Annotated[int | None, typer.Option(help="Port (default from settings).")] = None,
) -> None:
    """Serve the dashboard on 127.0.0.1 (models, news, support, recommender)."""
    from verticals.dashboard.api import build_app
    from verticals.dashboard.settings import get_settings
    from verticals.serving.server import serve

    settings = get_settings(**({"port": port} if port else {}))
    app_ = build_app(settings)
    typer.echo("log in with the admin key; reads " + ", ".join(settings.upstreams().values()))
    typer.echo(f"model registry: {app_.state.registry.root}")
    serve(app_, settings)


@app.command()
@user_errors
def status() -> None:
    """Print whether each service the dashboard reads can be reached."""
    import asyncio
    import json

    import httpx

    from verticals.dashboard import panels
    from verticals.dashboard.settings import get_settings
    from verticals.dashboard.upstream import Upstream

    settings = get_settings()

    async def run() -> dict[str, Any]:
        async with httpx.AsyncClient(timeout=settings.upstream_timeout_s) as client:
            ups = {k: Upstream(k, u, client) for k, u in settings.upstreams().items()}
            return await panels.status(ups)

    for row in asyncio.run(run())["services"]:
        typer.echo(json.dumps(row))
