"""The home page (a dashboard for admins, a list of their pages for everyone else) and the users page."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, func, select
from starlette.requests import Request
from starlette.responses import Response

from archive.records import archive_record
from console import users
from console.access import current_user, requires, runtime_of
from console.render import render
from milter import queue
from milter.db import as_utc
from quarantine import holds

DECISIONS = ("deliver", "hold", "reject")
HELD_SHOWN = 200  # counted from the listing; beyond this the page says "more than"


def start_of_today() -> datetime:
    """Midnight in the gateway's local time zone, as UTC (what the archive stores)."""
    return as_utc(datetime.now().astimezone().replace(hour=0, minute=0, second=0, microsecond=0))


def decisions_since(connection: Connection, since: datetime) -> dict[str, int]:
    """Messages received since `since`, by the gateway's decision (every decision listed, even at 0)."""
    rows = connection.execute(select(archive_record.c.action, func.count())
                              .where(archive_record.c.kind == "received", archive_record.c.recorded_at >= since)
                              .group_by(archive_record.c.action))
    counts = dict.fromkeys(DECISIONS, 0)
    counts.update({str(action): int(number) for action, number in rows})
    return counts


def held_by_queue(connection: Connection) -> dict[str, int]:
    return {name: len(holds.listing(connection, name, limit=HELD_SHOWN + 1)) for name in holds.QUEUES}


def dashboard(connection: Connection) -> dict[str, Any]:
    since = start_of_today()
    waiting, oldest = queue.depth(connection)
    return {"since": since, "decisions": decisions_since(connection, since), "queue_waiting": waiting,
            "queue_oldest": oldest, "held": held_by_queue(connection), "held_shown": HELD_SHOWN}


@requires(*users.ROLES)
def home(request: Request) -> Response:
    user = current_user(request)
    assert user is not None
    context: dict[str, Any] = {"dashboard": None}
    if user["role"] == "admin":
        with runtime_of(request).database.read() as connection:
            context["dashboard"] = dashboard(connection)
    return render(request, "home.html", context)


@requires("admin")
def users_page(request: Request) -> Response:
    with runtime_of(request).database.read() as connection:
        rows = [{key: value for key, value in row.items() if key != "password_hash"} | {"locked": users.is_locked(row)}
                for row in users.listing(connection)]
    return render(request, "users.html", {"rows": rows, "roles": users.ROLES})
