"""FOIA requests and litigation matters: the records officer's work on them, kept as a complete log.

A request (or a matter) has a number, a requester, the dates it was received
and is due, a status, and saved searches. Each message is reviewed:
responsive or not, released or withheld, under which exemption, with notes
and redactions. Reviews and redactions are only ever appended, so the latest
row is the decision and the earlier ones are its history; every change is
also an entry in the request's decision log (foia_event). Callers write the
audit entry for the person's action in the same transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

import holidays as holiday_calendars
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Connection,
    Date,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    func,
    insert,
    select,
    update,
)

from archive import records
from archive.config import FoiaSettings
from milter.kernel.db import clean_text, metadata, utcnow

KINDS = {"foia": "FOIA request", "litigation": "Litigation matter"}
STATUSES = ("open", "reviewing", "produced", "closed")
DISPOSITIONS = ("release", "withhold")

foia_request = Table(
    "foia_request",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("number", String(64), nullable=False, unique=True),
    Column("kind", String(16), nullable=False),
    Column("title", Text, nullable=False),
    Column("requester", Text, nullable=False),
    Column("contact", Text),
    Column("description", Text),
    Column("received_on", Date, nullable=False),
    Column("due_on", Date),
    Column("status", String(16), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)
foia_search = Table(
    "foia_search",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("request_id", BigInteger, nullable=False, index=True),
    Column("query", Text, nullable=False),
    Column("total", Integer, nullable=False),
    Column("saved_by", String(200), nullable=False),
    Column("saved_at", DateTime(timezone=True), nullable=False),
)
foia_review = Table(  # append-only: the newest row per (request, record) is the decision
    "foia_review",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("request_id", BigInteger, nullable=False),
    Column("record_id", BigInteger, nullable=False),
    Column("message_id", String(40), nullable=False),
    Column("responsive", Boolean, nullable=False),
    Column("disposition", String(16)),
    Column("exemption", String(64)),
    Column("note", Text),
    Column("reviewer", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
foia_redaction = Table(  # append-only: a removal is a row naming the redaction it takes back
    "foia_redaction",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("request_id", BigInteger, nullable=False),
    Column("record_id", BigInteger, nullable=False),
    Column("text", Text),
    Column("start", Integer),
    Column("end", Integer),
    Column("reason", String(64), nullable=False),
    Column("note", Text),
    Column("removes", BigInteger),
    Column("by", String(200), nullable=False),
    Column("at", DateTime(timezone=True), nullable=False),
)
foia_event = Table(  # the request's decision log
    "foia_event",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("request_id", BigInteger, nullable=False, index=True),
    Column("at", DateTime(timezone=True), nullable=False),
    Column("actor", String(200), nullable=False),
    Column("action", String(32), nullable=False),
    Column("record_id", BigInteger),
    Column("details", JSON, nullable=False),
)


def _inserted(result: Any) -> int:
    """The id of the row an INSERT just added."""
    return int(result.inserted_primary_key[0])


class FoiaError(ValueError):
    """A change that cannot be made, said so a person can fix it."""


# -- dates ---------------------------------------------------------------------


def business_days_after(start: date, days: int, settings: FoiaSettings) -> date:
    """The date `days` business days after `start`: weekends, the calendar's holidays and listed closures skipped."""
    closed = set(settings.holidays)
    calendar: Any = None
    if settings.holiday_calendar:
        country, _, subdivision = settings.holiday_calendar.partition("-")
        calendar = holiday_calendars.country_holidays(country, subdiv=subdivision or None)
    current, left = start, days
    while left > 0:
        current += timedelta(days=1)
        if current.weekday() < 5 and current not in closed and (calendar is None or current not in calendar):
            left -= 1
    return current


# -- requests ------------------------------------------------------------------


def _event(
    connection: Connection, request_id: int, actor: str, action: str, record_id: int | None = None, **details: Any
) -> None:
    connection.execute(
        insert(foia_event).values(
            request_id=request_id, at=utcnow(), actor=actor, action=action, record_id=record_id, details=details
        )
    )


def next_number(connection: Connection, kind: str, year: int) -> str:
    prefix = "FOIA" if kind == "foia" else "LIT"
    count = connection.execute(
        select(func.count()).select_from(foia_request).where(foia_request.c.number.like(f"{prefix}-{year}-%"))
    ).scalar_one()
    return f"{prefix}-{year}-{int(count) + 1:04d}"


def create(
    connection: Connection,
    actor: str,
    settings: FoiaSettings,
    *,
    kind: str,
    title: str,
    requester: str,
    received_on: date,
    contact: str | None = None,
    description: str | None = None,
    number: str | None = None,
    due_on: date | None = None,
) -> int:
    if kind not in KINDS:
        raise FoiaError(f"kind {kind!r} is not known; use {' or '.join(KINDS)}")
    title, requester = (title or "").strip(), (requester or "").strip()
    if not title or not requester:
        raise FoiaError("a request needs a title and a requester")
    number = (number or "").strip() or next_number(connection, kind, received_on.year)
    if connection.execute(select(foia_request.c.id).where(foia_request.c.number == number)).first():
        raise FoiaError(f"there is already a request numbered {number}; choose another number or leave it blank")
    if due_on is None and kind == "foia":
        due_on = business_days_after(received_on, settings.due_business_days, settings)
    request_id = _inserted(
        connection.execute(
            insert(foia_request).values(
                number=clean_text(number, 64),
                kind=kind,
                title=clean_text(title, 1000),
                requester=clean_text(requester, 1000),
                contact=clean_text(contact, 1000),
                description=clean_text(description, 20_000),
                received_on=received_on,
                due_on=due_on,
                status="open",
                created_by=actor,
                created_at=utcnow(),
            )
        )
    )
    _event(
        connection,
        request_id,
        actor,
        "created",
        number=number,
        kind=kind,
        requester=requester,
        received_on=received_on.isoformat(),
        due_on=due_on.isoformat() if due_on else None,
    )
    return request_id


def get(connection: Connection, request_id: int) -> dict[str, Any] | None:
    row = connection.execute(select(foia_request).where(foia_request.c.id == request_id)).first()
    return dict(row._mapping) if row else None


def require(connection: Connection, request_id: int) -> dict[str, Any]:
    found = get(connection, request_id)
    if found is None:
        raise FoiaError(f"there is no request {request_id}")
    return found


def listing(connection: Connection, status: str | None = None) -> list[dict[str, Any]]:
    query = select(foia_request).order_by(foia_request.c.status == "closed", foia_request.c.due_on, foia_request.c.id)
    if status:
        query = query.where(foia_request.c.status == status)
    return [dict(row._mapping) for row in connection.execute(query)]


def set_status(connection: Connection, actor: str, request_id: int, status: str, note: str | None = None) -> None:
    if status not in STATUSES:
        raise FoiaError(f"status {status!r} is not known; use {', '.join(STATUSES)}")
    current = require(connection, request_id)
    connection.execute(update(foia_request).where(foia_request.c.id == request_id).values(status=status))
    _event(
        connection, request_id, actor, "status", previous=current["status"], status=status, note=clean_text(note, 2000)
    )


def save_search(connection: Connection, actor: str, request_id: int, query_text: str, total: int) -> int:
    require(connection, request_id)
    search_id = _inserted(
        connection.execute(
            insert(foia_search).values(
                request_id=request_id,
                query=clean_text(query_text, 2000),
                total=total,
                saved_by=actor,
                saved_at=utcnow(),
            )
        )
    )
    _event(connection, request_id, actor, "search.saved", query=query_text, total=total)
    return search_id


def searches(connection: Connection, request_id: int) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(foia_search).where(foia_search.c.request_id == request_id).order_by(foia_search.c.id)
    )
    return [dict(row._mapping) for row in rows]


# -- reviews -------------------------------------------------------------------


@dataclass(frozen=True)
class Review:
    record_id: int
    responsive: bool
    disposition: str | None
    exemption: str | None
    note: str | None


def review(connection: Connection, actor: str, settings: FoiaSettings, request_id: int, decision: Review) -> int:
    """Record a decision on one message (a new row; the earlier decision stays in the history)."""
    require(connection, request_id)
    record = records.get(connection, decision.record_id)
    if record is None:
        raise FoiaError(f"there is no archive record {decision.record_id}")
    disposition = decision.disposition if decision.responsive else None
    exemption = (decision.exemption or "").strip() or None
    if decision.responsive and disposition not in DISPOSITIONS:
        raise FoiaError("a responsive message is either released or withheld: choose one")
    if disposition == "withhold" and exemption is None:
        raise FoiaError("withholding a message needs the exemption it falls under")
    if exemption is not None and exemption not in settings.exemptions:
        raise FoiaError(f"exemption {exemption!r} is not in the configured list ([archive.foia] exemptions)")
    review_id = _inserted(
        connection.execute(
            insert(foia_review).values(
                request_id=request_id,
                record_id=decision.record_id,
                message_id=record["message_id"],
                responsive=decision.responsive,
                disposition=disposition,
                exemption=exemption,
                note=clean_text(decision.note, 5000),
                reviewer=actor,
                at=utcnow(),
            )
        )
    )
    _event(
        connection,
        request_id,
        actor,
        "review",
        decision.record_id,
        responsive=decision.responsive,
        disposition=disposition,
        exemption=exemption,
    )
    return review_id


def current_reviews(connection: Connection, request_id: int) -> dict[int, dict[str, Any]]:
    """The latest decision for each reviewed message of the request, by record id."""
    rows = connection.execute(
        select(foia_review).where(foia_review.c.request_id == request_id).order_by(foia_review.c.id)
    )
    return {row.record_id: dict(row._mapping) for row in rows}


def review_history(connection: Connection, request_id: int, record_id: int) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(foia_review)
        .where(foia_review.c.request_id == request_id, foia_review.c.record_id == record_id)
        .order_by(foia_review.c.id)
    )
    return [dict(row._mapping) for row in rows]


# -- redactions ----------------------------------------------------------------


def redact(
    connection: Connection,
    actor: str,
    settings: FoiaSettings,
    request_id: int,
    record_id: int,
    *,
    reason: str,
    text: str | None = None,
    start: int | None = None,
    end: int | None = None,
    note: str | None = None,
) -> int:
    """Black out every occurrence of `text`, or the span [start, end) of the message's rendered text."""
    require(connection, request_id)
    if records.get(connection, record_id) is None:
        raise FoiaError(f"there is no archive record {record_id}")
    text = (text or "").strip() or None
    if text is None and (start is None or end is None or start < 0 or end <= start):
        raise FoiaError("say what to black out: the exact text, or a start and end offset with start before end")
    if text is not None and len(text) > 5000:
        raise FoiaError("the text to black out is longer than 5000 characters; use offsets for long passages")
    if reason not in settings.exemptions:
        raise FoiaError(f"the reason for a redaction must be an exemption from the configured list, not {reason!r}")
    redaction_id = _inserted(
        connection.execute(
            insert(foia_redaction).values(
                request_id=request_id,
                record_id=record_id,
                text=text,
                start=None if text else start,
                end=None if text else end,
                reason=reason,
                note=clean_text(note, 2000),
                by=actor,
                at=utcnow(),
            )
        )
    )
    # The log names the redaction and its reason, never the text: the log is handed to the requester.
    _event(
        connection,
        request_id,
        actor,
        "redaction.added",
        record_id,
        redaction=redaction_id,
        reason=reason,
        by_text=text is not None,
    )
    return redaction_id


def unredact(connection: Connection, actor: str, request_id: int, redaction_id: int, note: str | None = None) -> None:
    row = connection.execute(
        select(foia_redaction).where(foia_redaction.c.id == redaction_id, foia_redaction.c.request_id == request_id)
    ).first()
    if row is None or row.removes is not None:
        raise FoiaError(f"request {request_id} has no redaction {redaction_id}")
    if redaction_id not in {r["id"] for r in redactions(connection, request_id, row.record_id)}:
        raise FoiaError(f"redaction {redaction_id} was already taken back")
    connection.execute(
        insert(foia_redaction).values(
            request_id=request_id,
            record_id=row.record_id,
            reason=row.reason,
            removes=redaction_id,
            note=clean_text(note, 2000),
            by=actor,
            at=utcnow(),
        )
    )
    _event(connection, request_id, actor, "redaction.removed", row.record_id, redaction=redaction_id)


def redactions(connection: Connection, request_id: int, record_id: int | None = None) -> list[dict[str, Any]]:
    """The redactions in force (added and not taken back), oldest first."""
    query = select(foia_redaction).where(foia_redaction.c.request_id == request_id).order_by(foia_redaction.c.id)
    if record_id is not None:
        query = query.where(foia_redaction.c.record_id == record_id)
    rows = [dict(row._mapping) for row in connection.execute(query)]
    removed = {row["removes"] for row in rows if row["removes"] is not None}
    return [row for row in rows if row["removes"] is None and row["id"] not in removed]


def events(connection: Connection, request_id: int) -> list[dict[str, Any]]:
    rows = connection.execute(select(foia_event).where(foia_event.c.request_id == request_id).order_by(foia_event.c.id))
    return [dict(row._mapping) for row in rows]


def note_export(connection: Connection, actor: str, request_id: int, **details: Any) -> None:
    _event(connection, request_id, actor, "exported", **details)


def summary(connection: Connection, request_id: int) -> dict[str, int]:
    """How far the review is: reviewed, responsive, released, withheld, redacted messages."""
    current = current_reviews(connection, request_id).values()
    redacted = {row["record_id"] for row in redactions(connection, request_id)}
    responsive = [r for r in current if r["responsive"]]
    return {
        "reviewed": len(current),
        "responsive": len(responsive),
        "released": sum(1 for r in responsive if r["disposition"] == "release"),
        "withheld": sum(1 for r in responsive if r["disposition"] == "withhold"),
        "redacted": sum(1 for r in responsive if r["disposition"] == "release" and r["record_id"] in redacted),
    }
