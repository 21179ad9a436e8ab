"""The Cruddur ``backend-flask`` service from the bootcamp tutorial, reduced to what it traces.

Instrumented the way the tutorial instruments it for Honeycomb: FlaskInstrumentor,
RequestsInstrumentor, and a custom span ``home-activities-mock-data`` carrying ``app.now`` and
``app.result_length``, with nested spans, span events and an error route.
"""

from __future__ import annotations

import logging
import random
import time
from datetime import UTC, datetime, timedelta

from flask import Flask, jsonify, request
from opentelemetry import trace

log = logging.getLogger("cruddur")

HANDLES = ["andrewbrown", "worf", "garek", "londo", "vimes"]


def _activity(now: datetime, i: int) -> dict:
    return {
        "uuid": f"68f126b0-1ceb-4a33-88be-d90fa7109ee{i}",
        "handle": random.choice(HANDLES),
        "message": random.choice(
            ["Cloud is fun!", "This post has no honor!", "I am out of prune juice"]
        ),
        "created_at": (now - timedelta(days=i)).isoformat(),
        "expires_at": (now + timedelta(days=5 + i)).isoformat(),
        "likes_count": random.randint(0, 100),
        "replies_count": random.randint(0, 5),
        "reposts_count": 0,
    }


def create_app(tracer_provider=None) -> Flask:
    tracer = trace.get_tracer("home.activities", tracer_provider=tracer_provider)
    app = Flask("backend-flask")

    @app.get("/api/activities/home")
    def home():
        with tracer.start_as_current_span("home-activities-mock-data") as span:
            now = datetime.now(UTC)
            span.set_attribute("app.now", now.isoformat())
            with tracer.start_as_current_span("load-activities") as inner:
                time.sleep(random.lognormvariate(-5.5, 0.6))  # ~4 ms, a long tail
                results = [_activity(now, i) for i in range(random.randint(1, 6))]
                inner.add_event("activities-loaded", {"app.count": len(results)})
            span.set_attribute("app.result_length", len(results))
            log.info("home activities served: %d", len(results))
        return jsonify(results)

    @app.get("/api/activities/notifications")
    def notifications():
        with tracer.start_as_current_span("notifications-activities-mock-data") as span:
            time.sleep(random.lognormvariate(-6, 0.5))
            results = [_activity(datetime.now(UTC), i) for i in range(2)]
            span.set_attribute("app.result_length", len(results))
        return jsonify(results)

    @app.get("/api/activities/search")
    def search():
        term = request.args.get("term", "")
        span = trace.get_current_span()
        span.set_attribute("app.search_term", term)
        if not term:
            return jsonify({"errors": ["search_term_blank"]}), 422
        return jsonify([_activity(datetime.now(UTC), 0)])

    @app.get("/api/message_groups")
    def message_groups():
        time.sleep(random.lognormvariate(-5, 0.4))
        return jsonify([{"uuid": "24b95582-9e7b-4e0a-9ad1-639773ab7552", "handle": "worf"}])

    @app.get("/api/activities/crash")
    def crash():
        # An unhandled error: the span records an `exception` event and status ERROR.
        raise RuntimeError("mock data store unavailable")

    @app.get("/rollbar/test")
    def rollbar_test():
        return "Hello World!"

    return app
