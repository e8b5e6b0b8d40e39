"""The deliver queue: per-recipient state that survives crashes.

A delivery is one message (blob plus the header lines the gateway prepends)
to one or more recipients; each recipient row moves queued -> delivered or
queued -> bounced. The delivery runner claims due rows with a lease, so a
crash mid-delivery only means the lease runs out and the row is tried again
(a duplicate at worst, never a loss).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    func,
    insert,
    or_,
    select,
    update,
)

from milter.kernel.db import as_utc, clean_text, metadata, utcnow

ID = BigInteger().with_variant(Integer, "sqlite")

delivery = Table(
    "delivery",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("message_id", String(40), nullable=False, index=True),
    Column("origin", String(16), nullable=False),  # relay, release, notice, dsn
    Column("blob_sha256", String(64), nullable=False),
    Column("prepend", LargeBinary, nullable=False),  # header lines the gateway adds (Received, tags)
    Column("mail_from", Text, nullable=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
)

delivery_rcpt = Table(
    "delivery_rcpt",
    metadata,
    Column("id", ID, primary_key=True, autoincrement=True),
    Column("delivery_id", ID, ForeignKey("delivery.id"), nullable=False, index=True),
    Column("rcpt", Text, nullable=False),
    Column("state", String(16), nullable=False),  # queued, delivered, bounced
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_attempt_at", DateTime(timezone=True), nullable=False),
    Column("lease_until", DateTime(timezone=True)),
    Column("lease_owner", String(200)),
    Column("last_reply", Text),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Index("delivery_rcpt_due", "state", "next_attempt_at"),
)

QUEUED, DELIVERED, BOUNCED = "queued", "delivered", "bounced"
_INSERT_DELIVERY = insert(delivery)  # built once: every accepted message runs these
_INSERT_RECIPIENT = insert(delivery_rcpt)


@dataclass(frozen=True)
class Recipient:
    id: int
    rcpt: str
    attempts: int


@dataclass(frozen=True)
class Work:
    """One delivery with the recipients claimed for this attempt."""

    delivery_id: int
    message_id: str
    origin: str
    blob_sha256: str
    prepend: bytes
    mail_from: str
    created_at: datetime
    recipients: tuple[Recipient, ...]


def enqueue(
    connection: Connection,
    *,
    message_id: str,
    blob_sha256: str,
    mail_from: str,
    rcpts: Iterable[str],
    origin: str,
    prepend: bytes = b"",
    at: datetime | None = None,
) -> int:
    now = as_utc(at or utcnow())
    inserted = connection.execute(
        _INSERT_DELIVERY,
        {
            "message_id": message_id,
            "origin": origin,
            "blob_sha256": blob_sha256,
            "prepend": prepend,
            "mail_from": clean_text(mail_from, 1000),
            "created_at": now,
        },
    ).inserted_primary_key
    assert inserted is not None
    delivery_id = inserted[0]
    connection.execute(
        _INSERT_RECIPIENT,
        [
            {
                "delivery_id": delivery_id,
                "rcpt": clean_text(rcpt, 1000),
                "state": QUEUED,
                "attempts": 0,
                "next_attempt_at": now,
                "updated_at": now,
            }
            for rcpt in rcpts
        ],
    )
    return int(delivery_id)


def claim_due(connection: Connection, owner: str, lease: float, limit: int, now: datetime | None = None) -> list[Work]:
    """Lease the due recipients of at most `limit` deliveries, grouped by delivery.

    Only what is returned is leased: a runner starts everything it claims, so
    nothing sits leased and idle until its lease runs out.
    """
    now = as_utc(now or utcnow())
    claimable = and_(
        delivery_rcpt.c.state == QUEUED,
        delivery_rcpt.c.next_attempt_at <= now,
        or_(delivery_rcpt.c.lease_until.is_(None), delivery_rcpt.c.lease_until < now),
    )
    candidates = connection.execute(
        select(delivery_rcpt.c.id, delivery_rcpt.c.delivery_id)
        .where(claimable)
        .order_by(delivery_rcpt.c.next_attempt_at, delivery_rcpt.c.id)
        .limit(limit * 50)
        .with_for_update(skip_locked=True)
    ).all()
    chosen: dict[int, list[int]] = {}
    for rcpt_id, delivery_id in candidates:
        if delivery_id in chosen or len(chosen) < limit:
            chosen.setdefault(delivery_id, []).append(rcpt_id)
    rows = [rcpt_id for ids in chosen.values() for rcpt_id in ids]
    if not rows:
        return []
    connection.execute(
        update(delivery_rcpt)
        .where(delivery_rcpt.c.id.in_(rows))
        .values(lease_until=now + timedelta(seconds=lease), lease_owner=owner)
    )
    joined = connection.execute(
        select(delivery, delivery_rcpt.c.id.label("rcpt_id"), delivery_rcpt.c.rcpt, delivery_rcpt.c.attempts)
        .join(delivery_rcpt, delivery_rcpt.c.delivery_id == delivery.c.id)
        .where(delivery_rcpt.c.id.in_(rows))
        .order_by(delivery.c.id, delivery_rcpt.c.id)
    ).all()
    grouped: dict[int, list[Any]] = {}
    for row in joined:
        grouped.setdefault(row.id, []).append(row)
    return [
        Work(
            first.id,
            first.message_id,
            first.origin,
            first.blob_sha256,
            bytes(first.prepend),
            first.mail_from,
            as_utc(first.created_at),
            tuple(Recipient(r.rcpt_id, r.rcpt, r.attempts) for r in items),
        )
        for first, items in ((items[0], items) for items in grouped.values())
    ]


def release_leases(connection: Connection, owner: str) -> int:
    """After a restart: this runner's old leases belong to a process that is gone."""
    result = connection.execute(
        update(delivery_rcpt)
        .where(delivery_rcpt.c.lease_owner == owner, delivery_rcpt.c.state == QUEUED)
        .values(lease_until=None, lease_owner=None)
    )
    return result.rowcount or 0


def mark(
    connection: Connection,
    rcpt_id: int,
    state: str,
    reply: str,
    *,
    attempts: int,
    next_attempt_at: datetime | None = None,
) -> None:
    now = utcnow()
    values: dict[str, Any] = {
        "state": state,
        "last_reply": clean_text(reply, 2000),
        "attempts": attempts,
        "lease_until": None,
        "lease_owner": None,
        "updated_at": now,
    }
    if next_attempt_at is not None:
        values["next_attempt_at"] = as_utc(next_attempt_at)
    connection.execute(update(delivery_rcpt).where(delivery_rcpt.c.id == rcpt_id).values(**values))


def retry_now(connection: Connection, ids: Iterable[int] = (), message_id: str | None = None) -> int:
    """Make queued recipients due now (all of them when nothing is named)."""
    query = update(delivery_rcpt).where(delivery_rcpt.c.state == QUEUED)
    ids = list(ids)
    if ids:
        query = query.where(delivery_rcpt.c.delivery_id.in_(ids))
    if message_id:
        query = query.where(
            delivery_rcpt.c.delivery_id.in_(select(delivery.c.id).where(delivery.c.message_id == message_id))
        )
    return connection.execute(query.values(next_attempt_at=utcnow(), lease_until=None, lease_owner=None)).rowcount or 0


def listing(connection: Connection, *, state: str | None = QUEUED, limit: int = 100) -> list[dict[str, Any]]:
    query = (
        select(
            delivery.c.id,
            delivery.c.message_id,
            delivery.c.origin,
            delivery.c.mail_from,
            delivery.c.created_at,
            delivery_rcpt.c.rcpt,
            delivery_rcpt.c.state,
            delivery_rcpt.c.attempts,
            delivery_rcpt.c.next_attempt_at,
            delivery_rcpt.c.last_reply,
        )
        .join(delivery_rcpt, delivery_rcpt.c.delivery_id == delivery.c.id)
        .order_by(delivery.c.id, delivery_rcpt.c.id)
        .limit(limit)
    )
    if state:
        query = query.where(delivery_rcpt.c.state == state)
    return [dict(row._mapping) for row in connection.execute(query)]


def show(connection: Connection, key: str) -> list[dict[str, Any]]:
    """Every delivery of a message id (or the delivery with that number), with its recipients."""
    condition = delivery.c.id == int(key) if key.isdigit() else delivery.c.message_id == key
    query = (
        select(
            delivery.c.id,
            delivery.c.message_id,
            delivery.c.origin,
            delivery.c.mail_from,
            delivery.c.created_at,
            delivery.c.blob_sha256,
            delivery_rcpt.c.rcpt,
            delivery_rcpt.c.state,
            delivery_rcpt.c.attempts,
            delivery_rcpt.c.next_attempt_at,
            delivery_rcpt.c.last_reply,
            delivery_rcpt.c.updated_at,
        )
        .join(delivery_rcpt, delivery_rcpt.c.delivery_id == delivery.c.id)
        .where(condition)
        .order_by(delivery.c.id, delivery_rcpt.c.id)
    )
    return [dict(row._mapping) for row in connection.execute(query)]


def depth(connection: Connection) -> tuple[int, datetime | None]:
    """How many recipients wait, and since when the oldest has waited."""
    row = connection.execute(
        select(func.count(), func.min(delivery.c.created_at))
        .select_from(delivery_rcpt.join(delivery, delivery_rcpt.c.delivery_id == delivery.c.id))
        .where(delivery_rcpt.c.state == QUEUED)
    ).one()
    return int(row[0]), as_utc(row[1]) if row[1] else None
