"""The tutorial's backend-flask instrumentation, configured ONLY by environment variables:

    OTEL_SERVICE_NAME=backend-flask
    OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:<port>
    OTEL_EXPORTER_OTLP_HEADERS=x-honeycomb-team=<key>

Usage: python cruddur_otel.py http|grpc REQUESTS OUT.json
Serves the Cruddur app, calls it REQUESTS times through `requests` (instrumented), flushes, and
writes what the SDK itself recorded (an in-memory copy of every finished span) to OUT.json so the
test can compute expected answers independently of tracehive.
"""

import json
import sys
import threading

from opentelemetry import trace
from opentelemetry.instrumentation.flask import FlaskInstrumentor
from opentelemetry.instrumentation.requests import RequestsInstrumentor
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

protocol, count, out = sys.argv[1], int(sys.argv[2]), sys.argv[3]
if protocol == "grpc":
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
else:
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

provider = TracerProvider()
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
memory = InMemorySpanExporter()
provider.add_span_processor(SimpleSpanProcessor(memory))
trace.set_tracer_provider(provider)

import requests  # noqa: E402
from werkzeug.serving import make_server  # noqa: E402

from tracehive.demo.cruddur import create_app  # noqa: E402

app = create_app()
FlaskInstrumentor().instrument_app(app)
RequestsInstrumentor().instrument()
server = make_server("127.0.0.1", 0, app, threaded=True)
threading.Thread(target=server.serve_forever, daemon=True).start()
base = f"http://127.0.0.1:{server.server_port}"
paths = [
    "/api/activities/home",
    "/api/activities/home",
    "/api/activities/notifications",
    "/api/activities/crash",
]
for i in range(count):
    requests.get(base + paths[i % len(paths)], timeout=10)
server.shutdown()
assert provider.force_flush(30_000), "export did not finish"
provider.shutdown()
spans = [
    {
        "trace_id": f"{s.context.trace_id:032x}",
        "span_id": f"{s.context.span_id:016x}",
        "parent_id": f"{s.parent.span_id:016x}" if s.parent else None,
        "name": s.name,
        "duration_ms": (s.end_time - s.start_time) / 1e6,
        "attributes": {k: v for k, v in s.attributes.items() if isinstance(v, (str, int, float))},
        "events": [e.name for e in s.events],
        "status": s.status.status_code.name,
        "resource": dict(s.resource.attributes),
    }
    for s in memory.get_finished_spans()
]
with open(out, "w") as f:
    json.dump(spans, f)
