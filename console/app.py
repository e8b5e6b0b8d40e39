"""The web console (placeholder until the console issue lands): health and metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from milter import metrics, queue
from milter.direction import is_trusted

if TYPE_CHECKING:
    from milter.runtime import Runtime


def create_app(runtime: Runtime) -> Starlette:
    def queue_depth():  # type: ignore[no-untyped-def]
        with runtime.database.read() as connection:
            return queue.depth(connection)

    collector = metrics.QueueCollector(queue_depth)

    def metrics_page(request: Request) -> Response:
        client = request.client.host if request.client else ""
        if not is_trusted(client, runtime.config.settings.console.metrics_networks):
            return PlainTextResponse("metrics are not available from your address\n", status_code=403)
        return Response(metrics.exposition([collector]), media_type="text/plain; version=0.0.4")

    def health(request: Request) -> Response:
        return PlainTextResponse("ok\n")

    return Starlette(routes=[Route("/metrics", metrics_page), Route("/healthz", health)])
