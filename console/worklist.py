"""What waits for the signed-in person: the lines at the top of their home page.

Each role sees only the work it may act on: department heads the broadcasts
they may decide (with the day each is rejected unless decided), IT staff the
quarantine (with the oldest wait), records officers the open FOIA requests
(with the nearest due date), admins all of these plus the scanner and the
monitor-mode findings to review before a rule is enforced.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sqlalchemy import Connection, func, select

from archive import foia
from archive.index import archive_finding
from milter.kernel.db import as_utc, utcnow
from policies.rules.virus import scanner_health
from quarantine import approvals, holds, it_quarantine

if TYPE_CHECKING:
    from milter.runtime import Runtime


@dataclass(frozen=True)
class Waiting:
    """One line of work: "2 broadcasts waiting for your approval, the first due Fri 4 Dec"."""

    text: str
    href: str
    count: int
    level: str = "info"  # "ok" (nothing to do), "info", "warn" (late or broken)


def day_words(value: date | datetime, zone: tzinfo | None = None) -> str:
    """A day as people say it on a to-do list: "Fri 4 Dec"."""
    if isinstance(value, datetime):
        value = as_utc(value).astimezone(zone).date() if zone else value.date()
    return f"{value:%a} {value.day} {value:%b}"


def _plural(count: int, one: str, many: str | None = None) -> str:
    return f"{count} {one if count == 1 else (many or one + 's')}"


def approvals_waiting(connection: Connection, runtime: Runtime, user: dict[str, Any]) -> Waiting:
    settings = runtime.config.settings.approvals
    admin = user["role"] == "admin"
    items = approvals.pending(connection, runtime.directory, settings, user.get("email") or None, admin=admin)
    if not items:
        return Waiting(
            "No broadcasts are waiting for " + ("a decision." if admin else "your approval."), "/approvals", 0, "ok"
        )
    due = min(item.schedule.expire for item in items)
    late = utcnow() >= as_utc(due)
    text = (
        f"{_plural(len(items), 'broadcast')} waiting for {'a decision' if admin else 'your approval'}, "
        f"the first rejected unless decided by {day_words(due, settings.zone)}"
    )
    return Waiting(text + ".", "/approvals", len(items), "warn" if late else "info")


def quarantine_waiting(connection: Connection) -> Waiting:
    count, oldest = holds.pending_depth(connection)[it_quarantine.QUEUE]
    if not count:
        return Waiting("No messages are waiting for IT review.", "/quarantine", 0, "ok")
    assert oldest is not None
    text = f"{_plural(count, 'message')} with files waiting for IT review, the oldest for {it_quarantine.age(oldest)}."
    return Waiting(text, "/quarantine", count)


def foia_waiting(connection: Connection, today: date) -> Waiting:
    open_requests = [row for row in foia.listing(connection) if row["status"] not in ("produced", "closed")]
    if not open_requests:
        return Waiting("No FOIA requests or litigation matters are open.", "/foia", 0, "ok")
    dated = sorted(row["due_on"] for row in open_requests if row["due_on"])
    overdue = sum(1 for due in dated if due < today)
    text = f"{_plural(len(open_requests), 'open request')}"
    if dated:
        text += f", the next due {day_words(dated[0])}"
    if overdue:
        text += f"; {overdue} overdue"
    return Waiting(text + ".", "/foia", len(open_requests), "warn" if overdue else "info")


def monitor_waiting(connection: Connection, since: datetime) -> list[Waiting]:
    """Per rule in monitor mode: what it would have done today, for the admin to review before enforcing it."""
    rows = connection.execute(
        select(archive_finding.c.rule, func.count())
        .where(archive_finding.c.mode == "monitor", archive_finding.c.message_date >= since)
        .group_by(archive_finding.c.rule)
        .order_by(archive_finding.c.rule)
    )
    day = since.date().isoformat()
    return [
        Waiting(
            f"Rule {rule} (monitor mode) would have acted on {_plural(int(count), 'message')} today.",
            "/records?" + urlencode({"q": f"rule:{rule} after:{day}"}),
            int(count),
        )
        for rule, count in rows
    ]


def scanner_waiting(runtime: Runtime) -> Waiting:
    health = asyncio.run(scanner_health(runtime.config.policies["virus"]))  # type: ignore[arg-type]
    if not health.configured:
        return Waiting(
            "The virus scanner is not configured: attachments are not scanned for viruses.", "/healthz", 1, "warn"
        )
    if not health.reachable:
        return Waiting(
            f"The virus scanner is down ({health.error}); mail with attachments is tempfailed.", "/healthz", 1, "warn"
        )
    return Waiting(f"The virus scanner is running ({health.version}).", "/healthz", 0, "ok")


def for_user(runtime: Runtime, user: dict[str, Any], since: datetime, today: date) -> list[Waiting]:
    role = user["role"]
    found: list[Waiting] = []
    with runtime.database.read() as connection:
        if role in ("admin", "department-head"):
            found.append(approvals_waiting(connection, runtime, user))
        if role in ("admin", "it-staff"):
            found.append(quarantine_waiting(connection))
        if role in ("admin", "records-officer"):
            found.append(foia_waiting(connection, today))
        if role == "admin":
            found.extend(monitor_waiting(connection, since))
    if role == "admin":
        found.append(scanner_waiting(runtime))
    return found
