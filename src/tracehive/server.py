"""Running the server: HTTP (uvicorn) and OTLP/gRPC in one process and one event loop.

SIGINT/SIGTERM: stop accepting (close the listeners, let in-flight requests finish), flush
everything acknowledged into the store, exit 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
from collections.abc import Callable

import uvicorn

from tracehive.api.app import build_app
from tracehive.api.grpc_otlp import build_server
from tracehive.services import Services
from tracehive.settings import Config

log = logging.getLogger("tracehive")


class _Server(uvicorn.Server):
    """uvicorn's server without its own signal handling: ours stops HTTP and gRPC together and
    exits 0 (uvicorn re-raises the captured signal after shutdown)."""

    @contextlib.contextmanager
    def capture_signals(self):
        yield


async def serve(
    config: Config,
    on_ready: Callable[[Services, int, int], None] | None = None,
    stop: asyncio.Event | None = None,
    on_stop: Callable[[], None] | None = None,
) -> None:
    """``on_stop`` runs (in a thread) when a stop is requested, while the server still serves:
    the demo flushes its own app's telemetry there before the listeners close."""
    services = await asyncio.to_thread(Services, config)
    try:
        await _run(services, config, on_ready, stop or asyncio.Event(), on_stop)
    finally:
        await asyncio.to_thread(services.close)


async def _run(
    services: Services, config: Config, on_ready, stop: asyncio.Event, on_stop=None
) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, stop.set)
    grpc_server = None
    grpc_port = 0
    if config.grpc_port >= 0:
        grpc_server, grpc_port = build_server(services, config.host, config.grpc_port)
        await grpc_server.start()
    uv = _Server(
        uvicorn.Config(
            build_app(services),
            host=config.host,
            port=config.http_port,
            loop="asyncio",
            http="httptools",
            lifespan="off",
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=10,
        )
    )
    http_task = asyncio.create_task(uv.serve())
    while not uv.started:
        if http_task.done():
            await http_task  # raises the bind error
            raise OSError(f"HTTP server on {config.host}:{config.http_port} did not start")
        await asyncio.sleep(0.02)
    http_port = uv.servers[0].sockets[0].getsockname()[1] if uv.servers else config.http_port
    if on_ready is not None:
        on_ready(services, http_port, grpc_port)
    stop_task = asyncio.create_task(stop.wait())
    await asyncio.wait({http_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
    if on_stop is not None and not http_task.done():
        await asyncio.to_thread(on_stop)
    uv.should_exit = True
    if grpc_server is not None:
        await grpc_server.stop(grace=5)
    await http_task
    stop_task.cancel()


def print_ready(services: Services, http_port: int, grpc_port: int) -> None:
    host = services.config.host
    print(f"tracehive listening on http://{host}:{http_port}", flush=True)
    if grpc_port:
        print(f"OTLP/gRPC on http://{host}:{grpc_port}", flush=True)
    print(f"data dir: {services.config.data_dir}", flush=True)
    if services.replayed:
        print(f"replayed {services.replayed} records from the write-ahead log", flush=True)
    if services.bootstrap_key:
        print(
            "created environment 'development'; its ingest+query API key (shown once):\n"
            f"  {services.bootstrap_key}",
            flush=True,
        )


def run(config: Config, on_ready=print_ready, on_stop=None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        asyncio.run(serve(config, on_ready, on_stop=on_stop))
    except OSError as exc:
        print(f"tracehive: {exc}", file=sys.stderr)
        return 1
    return 0
