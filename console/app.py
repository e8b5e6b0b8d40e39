"""The web console: every route and middleware, wired in one place.

Outside in, each request passes: security headers, the signed session cookie,
the CSRF check (unsafe methods), then the route, whose endpoint says who may
use it (console.access). A page added here without a permission decorator,
or a POST without an audited action, stops the console from starting.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from console import approvals as approvals_page
from console import audit_page, history, home, login, secret
from console import quarantine as quarantine_page
from console import records as records_page
from console.access import check_routes, public
from console.health import BacklogCollector, ScannerCollector
from console.render import render
from console.security import CsrfProtect, SecurityHeaders
from milter.delivery import queue
from milter.intake.direction import is_trusted
from milter.kernel import metrics
from milter.kernel.db import utcnow
from policies.rules.virus import scanner_health

if TYPE_CHECKING:
    from milter.runtime import Runtime

STATIC = Path(__file__).resolve().parent / "static"
SESSION_COOKIE = "aup_console"


@dataclass(frozen=True)
class NavItem:
    label: str
    route: str
    roles: frozenset[str]


# The navigation, in order: (label, route name). Who sees an entry comes from its page's @requires.
NAV = (("Home", "home"), ("Audit log", "audit_log"), ("Users", "users"))

# Pages that later subsystems add: each module has `routes` (a list of Starlette routes,
# every one with @requires or @action) and `nav` ((label, route name) pairs), listed here explicitly.
PAGE_MODULES: tuple[ModuleType, ...] = (quarantine_page, approvals_page, records_page, history)


def create_app(runtime: Runtime) -> Starlette:
    settings = runtime.config.settings.console

    def queue_depth():  # type: ignore[no-untyped-def]
        with runtime.database.read() as connection:
            return queue.depth(connection)

    collector = metrics.QueueCollector(queue_depth)
    virus_settings = runtime.config.policies["virus"]
    backlog = BacklogCollector(runtime.database)

    # Pages are sync (Starlette runs them in a worker thread), so the clamd probe gets its own short event loop.
    @public
    def metrics_page(request: Request) -> Response:
        client = request.client.host if request.client else ""
        if not is_trusted(client, runtime.config.settings.console.metrics_networks):
            return PlainTextResponse("metrics are not available from your address\n", status_code=403)
        scanner = ScannerCollector(asyncio.run(scanner_health(virus_settings)), runtime.config.policies)
        body = metrics.exposition([collector, scanner, backlog])
        return Response(body, media_type="text/plain; version=0.0.4")

    @public
    def health(request: Request) -> Response:
        # 503 when clamd is configured but unreachable: mail with attachments is being tempfailed.
        scanner = asyncio.run(scanner_health(virus_settings))
        body = {"status": "ok" if scanner.healthy else "degraded", "scanner": scanner.as_dict(utcnow())}
        return JSONResponse(body, status_code=200 if scanner.healthy else 503)

    routes: list[BaseRoute] = [
        Route("/", home.home, name="home"),
        Route("/login", login.login_form, name="login_form"),
        Route("/login", login.login, methods=["POST"], name="login"),
        Route("/logout", login.logout, methods=["POST"], name="logout"),
        Route("/audit", audit_page.audit_log, name="audit_log"),
        Route("/audit/verify", audit_page.verify_chain, methods=["POST"], name="audit_verify"),
        Route("/users", home.users_page, name="users"),
        Route("/metrics", metrics_page, name="metrics"),
        Route("/healthz", health, name="health"),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        *(route for module in PAGE_MODULES for route in module.routes),
    ]
    check_routes(routes)
    app = Starlette(
        routes=routes,
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=secret.load_or_create(settings.secret_key_file),
                session_cookie=SESSION_COOKIE,
                max_age=int(settings.session_lifetime),
                same_site="lax",
                https_only=settings.secure_cookie or settings.base_url.startswith("https://"),
            ),
            Middleware(CsrfProtect),
        ],
        exception_handlers={HTTPException: http_error},
    )
    app.state.runtime = runtime
    app.state.session_lifetime = settings.session_lifetime
    app.state.nav = navigation(routes)
    return app


def navigation(routes: list[BaseRoute]) -> list[NavItem]:
    endpoints = {route.name: route.endpoint for route in routes if isinstance(route, Route)}
    entries = [*NAV, *(entry for module in PAGE_MODULES for entry in module.nav)]
    return [NavItem(label, name, frozenset(endpoints[name].roles)) for label, name in entries]  # type: ignore[attr-defined]


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    titles = {404: "Not found", 405: "Not allowed here"}
    response = render(
        request,
        "error.html",
        {
            "status": status,
            "title": titles.get(status, "Error"),
            "text": "There is no such page in the console." if status == 404 else "",
        },
        status_code=status,
    )
    if isinstance(exc, HTTPException) and exc.headers:
        response.headers.update(exc.headers)  # e.g. Allow on 405
    return response
