"""Held messages: the approval queue and the IT quarantine.

A hold keeps the message (by blob) for some recipients until a person
releases or rejects it. Nothing is purged by age: a hold waits until someone
decides. Release hands the message to the deliver queue; every decision is
written to the audit log in the same transaction.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    cast,
    func,
    insert,
    or_,
    select,
    update,
)

from archive import audit, records
from milter.delivery import queue
from milter.kernel.db import as_utc, clean_text, metadata, utcnow
from milter.mail.message import Message, message_from_record

if TYPE_CHECKING:
    from milter.runtime import Runtime

QUEUES = ("approval", "quarantine")
PENDING, RELEASED, REJECTED = "pending", "released", "rejected"

held_message = Table(
    "held_message",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("message_id", String(40), nullable=False, index=True),
    Column("queue", String(16), nullable=False, index=True),
    Column("state", String(16), nullable=False, index=True),
    Column("blob_sha256", String(64), nullable=False),
    Column("prepend", LargeBinary, nullable=False),
    Column("mail_from", Text, nullable=False),
    Column("rcpt_to", JSON, nullable=False),
    Column("subject", Text),
    Column("reason", Text, nullable=False),
    Column("findings", JSON, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("decided_at", DateTime(timezone=True)),
    Column("decided_by", String(200)),
    Column("decision_note", Text),
)


class HoldError(Exception):
    pass


def hold(
    connection: Connection,
    *,
    message_id: str,
    queue_name: str,
    blob_sha256: str,
    prepend: bytes,
    mail_from: str,
    rcpts: Iterable[str],
    subject: str,
    reason: str,
    findings: list[dict[str, Any]],
) -> int:
    if queue_name not in QUEUES:
        raise ValueError(f"unknown hold queue {queue_name!r}")
    return _insert(
        connection,
        {
            "message_id": message_id,
            "queue": queue_name,
            "state": PENDING,
            "blob_sha256": blob_sha256,
            "prepend": prepend,
            "mail_from": clean_text(mail_from, 1000),
            "rcpt_to": list(rcpts),
            "subject": clean_text(subject, 2000),
            "reason": clean_text(reason, 5000),
            "findings": findings,
            "created_at": utcnow(),
        },
    )


def _insert(connection: Connection, row: dict[str, Any]) -> int:
    inserted = connection.execute(insert(held_message).values(row)).inserted_primary_key
    assert inserted is not None
    return int(inserted[0])


def listing(
    connection: Connection, queue_name: str | None = None, state: str | None = PENDING, limit: int = 200
) -> list[dict[str, Any]]:
    query = select(held_message).order_by(held_message.c.created_at).limit(limit)
    if queue_name:
        query = query.where(held_message.c.queue == queue_name)
    if state:
        query = query.where(held_message.c.state == state)
    return [dict(row._mapping) for row in connection.execute(query)]


def decided(
    connection: Connection,
    queue_name: str,
    *,
    state: str | None = None,
    decided_by: str | None = None,
    text: str | None = None,
    limit: int | None = 1000,
    offset: int = 0,
) -> tuple[int, list[dict[str, Any]]]:
    """Decided holds of a queue, newest decision first, and how many match: for the history pages."""
    table = held_message
    where = [table.c.queue == queue_name, table.c.state != PENDING]
    if state:
        where.append(table.c.state == state)
    if decided_by:
        where.append(table.c.decided_by.contains(decided_by, autoescape=True))
    if text:
        where.append(
            or_(
                table.c.subject.contains(text, autoescape=True),
                table.c.mail_from.contains(text, autoescape=True),
                cast(table.c.rcpt_to, Text).contains(text, autoescape=True),
            )
        )
    total = int(connection.execute(select(func.count()).select_from(table).where(*where)).scalar_one())
    query = select(table).where(*where).order_by(table.c.decided_at.desc(), table.c.id.desc()).offset(offset)
    if limit is not None:
        query = query.limit(limit)
    return total, [dict(row._mapping) for row in connection.execute(query)]


def pending_counts(connection: Connection) -> dict[str, int]:
    """Held messages waiting for a decision, per queue (every queue listed)."""
    rows = connection.execute(
        select(held_message.c.queue, func.count()).where(held_message.c.state == PENDING).group_by(held_message.c.queue)
    )
    return dict.fromkeys(QUEUES, 0) | {str(name): int(number) for name, number in rows}


def pending_depth(connection: Connection) -> dict[str, tuple[int, datetime | None]]:
    """Per queue (every queue listed): how many wait for a decision, and since when the oldest has waited."""
    rows = connection.execute(
        select(held_message.c.queue, func.count(), func.min(held_message.c.created_at))
        .where(held_message.c.state == PENDING)
        .group_by(held_message.c.queue)
    )
    return dict.fromkeys(QUEUES, (0, None)) | {
        str(name): (int(number), as_utc(oldest) if oldest else None) for name, number, oldest in rows
    }


def get(connection: Connection, hold_id: int) -> dict[str, Any] | None:
    row = connection.execute(select(held_message).where(held_message.c.id == hold_id)).first()
    return dict(row._mapping) if row else None


def split(connection: Connection, hold_id: int, recipients: Iterable[str]) -> int:
    """Take some recipients out of a pending hold into a new pending hold of their own; returns its id.

    A decision for some recipients only (release to one, keep the others
    waiting) is a split followed by release or reject of the new hold: every
    hold stays all-or-nothing, and each decision keeps its own row. Both rows
    keep the message id, blob, findings and creation time. Recipients are
    compared lower-case; they must be some, not all, of the hold's recipients.
    """
    row = connection.execute(select(held_message).where(held_message.c.id == hold_id).with_for_update()).first()
    if row is None:
        raise HoldError(f"hold {hold_id} does not exist")
    held = dict(row._mapping)
    if held["state"] != PENDING:
        raise HoldError(f"hold {hold_id} was already {held['state']}")
    wanted = {r.strip().lower() for r in recipients}
    chosen = [r for r in held["rcpt_to"] if r.lower() in wanted]
    rest = [r for r in held["rcpt_to"] if r.lower() not in wanted]
    unknown = wanted - {r.lower() for r in held["rcpt_to"]}
    if unknown:
        raise HoldError(f"hold {hold_id} is not held for {', '.join(sorted(unknown))}")
    if not chosen or not rest:
        raise HoldError(f"hold {hold_id}: choose some of its recipients, not {'none' if not chosen else 'all'} of them")
    connection.execute(
        update(held_message).where(held_message.c.id == hold_id, held_message.c.state == PENDING).values(rcpt_to=rest)
    )
    copy = {key: value for key, value in held.items() if key != "id"}
    return _insert(connection, {**copy, "rcpt_to": chosen})


def _decide(connection: Connection, hold_id: int, state: str, actor: str, note: str | None) -> dict[str, Any]:
    # The state condition makes a decision single-use even when two people click at once.
    result = connection.execute(
        update(held_message)
        .where(held_message.c.id == hold_id, held_message.c.state == PENDING)
        .values(state=state, decided_at=utcnow(), decided_by=actor, decision_note=clean_text(note, 5000))
    )
    if result.rowcount != 1:
        current = get(connection, hold_id)
        raise HoldError(
            f"hold {hold_id} does not exist" if current is None else f"hold {hold_id} was already {current['state']}"
        )
    found = get(connection, hold_id)
    assert found is not None
    return found


def hand_over(
    connection: Connection,
    hold_id: int,
    actor: str,
    to_queue: str,
    *,
    reason: str,
    findings: list[dict[str, Any]],
    blob_sha256: str | None = None,
    note: str | None = None,
) -> int:
    """Decide a hold by moving its message to another queue (approved, but IT must still review it).

    The old hold is closed as released, single-use like every decision; a new
    pending hold in `to_queue` takes the (possibly changed) message. Returns the new hold's id.
    """
    held = _decide(connection, hold_id, RELEASED, actor, note)
    new_id = hold(
        connection,
        message_id=held["message_id"],
        queue_name=to_queue,
        blob_sha256=blob_sha256 or held["blob_sha256"],
        prepend=held["prepend"],
        mail_from=held["mail_from"],
        rcpts=held["rcpt_to"],
        subject=held["subject"] or "",
        reason=reason,
        findings=findings,
    )
    handed = f"handed to the {to_queue} queue as hold {new_id}"
    connection.execute(
        update(held_message)
        .where(held_message.c.id == hold_id)
        .values(decision_note=clean_text(f"{note}; {handed}" if note else handed, 5000))
    )
    return new_id


def release(
    connection: Connection,
    hold_id: int,
    actor: str,
    *,
    note: str | None = None,
    source: str | None = None,
    blob_sha256: str | None = None,
    prepend: bytes | None = None,
) -> int:
    """Hand a held message to the deliver queue; returns the delivery id.

    A release may deliver a changed version (an approval note appended): pass
    its blob; the archive keeps both versions.
    """
    held = _decide(connection, hold_id, RELEASED, actor, note)
    delivery_id = queue.enqueue(
        connection,
        message_id=held["message_id"],
        blob_sha256=blob_sha256 or held["blob_sha256"],
        prepend=held["prepend"] if prepend is None else prepend,
        mail_from=held["mail_from"],
        rcpts=held["rcpt_to"],
        origin="release",
    )
    audit.record(
        connection,
        actor,
        f"{held['queue']}.release",
        held["message_id"],
        source=source,
        details={"hold": hold_id, "note": note, "recipients": held["rcpt_to"]},
    )
    return delivery_id


def reject(
    connection: Connection, hold_id: int, actor: str, *, note: str | None = None, source: str | None = None
) -> dict[str, Any]:
    held = _decide(connection, hold_id, REJECTED, actor, note)
    audit.record(
        connection,
        actor,
        f"{held['queue']}.reject",
        held["message_id"],
        source=source,
        details={"hold": hold_id, "note": note},
    )
    return held


def message_of(runtime: Runtime, hold: dict[str, Any]) -> Message:
    """The held bytes as a Message, with the envelope and direction its archive record has.

    The hold keeps the recipients still waiting; the record keeps how the
    message arrived (client, AUTH user, direction), so previews, notices and
    trust checks see what the pipeline saw.
    """
    with runtime.database.read() as connection:
        received = next(
            (r for r in records.records_for(connection, hold["message_id"]) if r["kind"] == "received"), None
        )
    if received is None:
        raise LookupError(f"held message {hold['message_id']} has no archive record")
    raw = runtime.blobs.get(hold["blob_sha256"])
    return message_from_record({**received, "rcpt_to": hold["rcpt_to"]}, raw, runtime.config.settings.limits)
