"""Demo traffic: run the Cruddur backend with the real OpenTelemetry SDK and call it.

The SDK is configured the way the tutorial configures it for Honeycomb, only pointed at tracehive:
OTLP/HTTP to ``<base>/v1/traces`` (and ``/v1/logs``) with the key in ``x-honeycomb-team``.
"""

from __future__ import annotations

import logging
import random
import threading
import time

import requests
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from werkzeug.serving import make_server

from tracehive.demo.cruddur import create_app

ROUTES = [
    ("/api/activities/home", 6),
    ("/api/activities/notifications", 2),
    ("/api/message_groups", 2),
    ("/api/activities/search?term=cloud", 1),
    ("/api/activities/search", 1),
    ("/api/activities/crash", 1),
]


def start_demo(base_url: str, key: str, rate: float, stop: threading.Event | None = None) -> None:
    """Serve the instrumented app on a free port and call it ``rate`` times a second."""
    stop = stop or threading.Event()
    headers = {"x-honeycomb-team": key}
    resource = Resource.create({"service.name": "backend-flask"})
    tracer_provider = TracerProvider(resource=resource)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            OTLPSpanExporter(endpoint=f"{base_url}/v1/traces", headers=headers),
            schedule_delay_millis=1000,
        )
    )
    logger_provider = LoggerProvider(resource=resource)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(OTLPLogExporter(endpoint=f"{base_url}/v1/logs", headers=headers))
    )
    cruddur_log = logging.getLogger("cruddur")
    cruddur_log.setLevel(logging.INFO)
    cruddur_log.addHandler(LoggingHandler(logger_provider=logger_provider))
    cruddur_log.propagate = False

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log in the demo's output
    app = create_app(tracer_provider)
    app.logger.disabled = True  # the crash route's traceback is the point, not console noise
    FlaskInstrumentor().instrument_app(app, tracer_provider=tracer_provider)
    RequestsInstrumentor().instrument(tracer_provider=tracer_provider)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True, name="cruddur").start()
    app_url = f"http://127.0.0.1:{server.server_port}"
    paths = [p for p, w in ROUTES for _ in range(w)]
    session = requests.Session()
    try:
        while not stop.is_set():
            try:
                session.get(app_url + random.choice(paths), timeout=5)
            except requests.RequestException:
                pass
            stop.wait(random.expovariate(rate) if rate > 0 else 1.0)
    finally:
        server.shutdown()
        tracer_provider.shutdown()
        logger_provider.shutdown()
        time.sleep(0)
