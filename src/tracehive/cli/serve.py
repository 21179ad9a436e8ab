"""``tracehive serve`` and ``tracehive demo``."""

from __future__ import annotations

import sys
import threading

import click

from tracehive.settings import Config


def _options(f):
    f = click.option("--grpc-port", type=int, default=None, help="OTLP/gRPC port [4317].")(f)
    f = click.option("--http-port", type=int, default=None, help="HTTP port [4318].")(f)
    f = click.option("--host", default=None, help="Bind address [127.0.0.1].")(f)
    f = click.option(
        "--data", "data_dir", default=None, help="Data directory [$TRACEHIVE_DATA or ./data]."
    )(f)
    return f


def _config(data_dir, host, http_port, grpc_port) -> Config:
    try:
        return Config.from_env(
            data_dir=data_dir, host=host, http_port=http_port, grpc_port=grpc_port
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from None


@click.command()
@_options
def serve(data_dir, host, http_port, grpc_port) -> None:
    """Run the server: OTLP/HTTP + Honeycomb API on the HTTP port, OTLP/gRPC on the gRPC port."""
    from tracehive.server import run
    from tracehive.services import DataDirLocked

    try:
        sys.exit(run(_config(data_dir, host, http_port, grpc_port)))
    except DataDirLocked as exc:
        raise click.ClickException(str(exc)) from None


@click.command()
@_options
@click.option("--rate", type=float, default=5.0, show_default=True, help="Demo requests/second.")
def demo(data_dir, host, http_port, grpc_port, rate) -> None:
    """Run the server with demo traffic: the Cruddur backend-flask service, instrumented with the
    OpenTelemetry SDK exactly as in the Honeycomb tutorial, exporting to this server."""
    from tracehive.demo.traffic import start_demo
    from tracehive.server import print_ready, run
    from tracehive.services import DataDirLocked

    traffic_stop = threading.Event()
    traffic: list[threading.Thread] = []

    def on_ready(services, http, grpc):
        print_ready(services, http, grpc)
        key = services.bootstrap_key or _demo_key(services)
        thread = threading.Thread(
            target=start_demo,
            args=(f"http://{services.config.host}:{http}", key, rate, traffic_stop),
            daemon=True,
            name="tracehive-demo",
        )
        thread.start()
        traffic.append(thread)
        print(
            f"demo traffic: backend-flask -> http://{services.config.host}:{http} with key {key}",
            flush=True,
        )
        print(
            f"try: tracehive query --url http://{services.config.host}:{http} --key {key} "
            "--dataset backend-flask --calc 'HEATMAP(duration_ms)' --calc 'P90(duration_ms)' "
            "--breakdown name",
            flush=True,
        )

    def on_stop():
        """Stop the traffic and flush the app's spans and logs while the server still listens."""
        traffic_stop.set()
        for thread in traffic:
            thread.join(timeout=15)

    try:
        sys.exit(run(_config(data_dir, host, http_port, grpc_port), on_ready, on_stop))
    except DataDirLocked as exc:
        raise click.ClickException(str(exc)) from None


COMMANDS = [serve, demo]


def _demo_key(services) -> str:
    """A fresh ingest+query key for the demo's traffic (the bootstrap key is shown only once)."""
    envs = services.catalog.environments()
    env = next((e for e in envs if e.name == "development"), envs[0])
    return services.catalog.create_key(env.name, {"ingest", "query"}, name="demo")
