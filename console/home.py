"""The home page (what waits for the signed-in person; a dashboard for admins) and the users page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection
from starlette.requests import Request
from starlette.responses import Response

from archive import records
from console import users, worklist
from console.access import current_user, requires, runtime_of
from console.render import render
from milter.delivery import queue
from milter.kernel.db import as_utc
from quarantine import holds

DECISIONS = ("deliver", "hold", "reject")


def start_of_today() -> datetime:
    """Midnight in the gateway's local time zone, as UTC (what the archive stores)."""
    return as_utc(datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0))


def dashboard(connection: Connection) -> dict[str, Any]:
    since = start_of_today()
    waiting, oldest = queue.depth(connection)
    decisions = dict.fromkeys(DECISIONS, 0) | records.decisions_since(connection, since)
    return {
        "since": since,
        "decisions": decisions,
        "queue_waiting": waiting,
        "queue_oldest": oldest,
        "held": holds.pending_counts(connection),
    }


@requires(*users.ROLES)
def home(request: Request) -> Response:
    user = current_user(request)
    assert user is not None
    runtime = runtime_of(request)
    since = start_of_today()
    context: dict[str, Any] = {
        "dashboard": None,
        "waiting": worklist.for_user(runtime, user, since, datetime.now().astimezone().date()),
    }
    if user["role"] == "admin":
        with runtime.database.read() as connection:
            context["dashboard"] = dashboard(connection)
    return render(request, "home.html", context)


@requires("admin")
def users_page(request: Request) -> Response:
    with runtime_of(request).database.read() as connection:
        rows = [
            {key: value for key, value in row.items() if key != "password_hash"} | {"locked": users.is_locked(row)}
            for row in users.listing(connection)
        ]
    return render(request, "users.html", {"rows": rows, "roles": users.ROLES})
