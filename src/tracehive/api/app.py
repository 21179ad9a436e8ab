"""The HTTP application: every surface's routes on one port."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from . import honeycomb, otlp, traces


async def health(request: Request) -> JSONResponse:
    services = request.app.state.services
    return JSONResponse(
        {
            "status": "ok",
            "pending_rows": services.pipeline.pending_rows,
            "rows_written": services.pipeline.rows_written,
        }
    )


def build_app(services) -> Starlette:
    app = Starlette(
        routes=[
            Route("/healthz", health, methods=["GET"]),
            *otlp.ROUTES,
            *honeycomb.ROUTES,
            *traces.ROUTES,
        ]
    )
    app.state.services = services
    return app
