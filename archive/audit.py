"""The audit trail: every action a person takes, hash-chained like the archive.

Who, when, what and on which object, with details. Rows can only be appended
(the database refuses UPDATE and DELETE); `verify` names the first broken row.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    func,
    select,
)

from archive.chain import Chain, head_table
from milter.kernel.db import as_utc, clean_text, metadata, utcnow

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("at", DateTime(timezone=True), nullable=False, index=True),
    Column("actor", String(200), nullable=False, index=True),  # console login, "cli:root", or "system"
    Column("action", String(64), nullable=False, index=True),  # e.g. "login", "queue.retry", "approval.approve"
    Column("target", Text),  # what it acted on: a message id, a user, a search
    Column("source", String(64)),  # client address or "cli"
    Column("details", JSON),
    Column("prev_hash", String(64), nullable=False),
    Column("entry_hash", String(64), nullable=False, unique=True),
)
audit_head = head_table("audit_head")
chain = Chain(audit_log, audit_head, "entry_hash")


def record(
    connection: Connection,
    actor: str,
    action: str,
    target: str | None = None,
    *,
    source: str | None = None,
    details: dict[str, Any] | None = None,
) -> int:
    """Append one audit entry inside the caller's transaction."""
    entry_id, _ = chain.append(
        connection,
        {
            "at": as_utc(utcnow()),
            "actor": clean_text(actor, 200),
            "action": action,
            "target": clean_text(target, 2000),
            "source": clean_text(source, 64),
            "details": details or {},
        },
    )
    return entry_id


def entries(
    connection: Connection,
    *,
    limit: int = 100,
    before: int | None = None,
    actor: str | None = None,
    action: str | None = None,
) -> list[dict[str, Any]]:
    query = select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if before:
        query = query.where(audit_log.c.id < before)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if action:
        query = query.where(audit_log.c.action == action)
    return [dict(row._mapping) for row in connection.execute(query)]


def newer(
    connection: Connection, *, limit: int = 100, after: int, actor: str | None = None, action: str | None = None
) -> list[dict[str, Any]]:
    """The `limit` entries just after id `after` (the page before, when paging newest first), newest first."""
    query = select(audit_log).where(audit_log.c.id > after).order_by(audit_log.c.id).limit(limit)
    if actor:
        query = query.where(audit_log.c.actor == actor)
    if action:
        query = query.where(audit_log.c.action == action)
    return [dict(row._mapping) for row in connection.execute(query)][::-1]


def get(connection: Connection, entry_id: int) -> dict[str, Any] | None:
    row = connection.execute(select(audit_log).where(audit_log.c.id == entry_id)).first()
    return dict(row._mapping) if row else None


def actions(connection: Connection) -> list[str]:
    """Every action name in the log, for filters."""
    return list(connection.execute(select(audit_log.c.action).distinct().order_by(audit_log.c.action)).scalars())


def count(connection: Connection) -> int:
    return connection.execute(select(func.count()).select_from(audit_log)).scalar_one()


def verify(connection: Connection) -> tuple[int, str] | None:
    return chain.first_break(connection)
