"""Archive records: one per message the gateway saw, chained by hash, never changed.

Each record's hash covers the previous record's hash, the blob's SHA-256 and
the record's canonical metadata, so altering any record or blob breaks the
chain from that record on. The database refuses UPDATE and DELETE on this
table (see milter/kernel/db.py); there is no delete path anywhere in the code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
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

from archive.chain import GENESIS, Chain, head_table
from milter.kernel.blobstore import BlobCorrupt, BlobMissing, BlobStore
from milter.kernel.db import as_utc, clean_text, metadata, utcnow

KINDS = ("received", "delivered", "generated", "imported")

archive_record = Table(
    "archive_record",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("message_id", String(40), nullable=False, index=True),
    Column("kind", String(16), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, index=True),
    Column("blob_sha256", String(64), nullable=False, index=True),
    Column("size", BigInteger, nullable=False),
    Column("direction", String(16)),
    Column("action", String(16)),
    Column("hold_queue", String(16)),
    Column("client_ip", String(64)),
    Column("helo", Text),
    Column("auth_user", Text),
    Column("mail_from", Text),
    Column("rcpt_to", JSON),
    Column("header_from", Text),
    Column("header_to", Text),
    Column("header_cc", Text),
    Column("subject", Text),
    Column("header_message_id", Text),
    Column("header_date", Text),
    Column("findings", JSON),
    Column("details", JSON),
    Column("prev_hash", String(64), nullable=False),
    Column("record_hash", String(64), nullable=False, unique=True),
)
archive_head = head_table("archive_head")
chain = Chain(archive_record, archive_head, "record_hash")
COLUMNS = frozenset(chain.hashed) - {"id", "prev_hash"}
TEXT_LIMITS = {"subject": 2000, "header_from": 2000, "header_message_id": 1000, "header_date": 200, "helo": 500}


def _row(fields: dict[str, Any]) -> dict[str, Any]:
    if fields.get("kind") not in KINDS:
        raise ValueError(f"unknown record kind {fields.get('kind')!r}")
    unknown = set(fields) - COLUMNS
    if unknown:
        raise KeyError(f"archive_record has no column {sorted(unknown)}")
    row: dict[str, Any] = {
        name: clean_text(value, TEXT_LIMITS.get(name, 10_000)) if isinstance(value, str) else value
        for name, value in fields.items()
    }
    row["recorded_at"] = as_utc(row.get("recorded_at") or utcnow())
    return row


def append(connection: Connection, **fields: Any) -> tuple[int, str]:
    """Add one record at the head of the chain; the caller's transaction commits it."""
    return chain.append(connection, _row(fields))


def append_many(connection: Connection, rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
    """Add records in order with one statement (bulk import); the caller's transaction commits them."""
    return chain.append_many(connection, [_row(fields) for fields in rows])


def get(connection: Connection, record_id: int) -> dict[str, Any] | None:
    row = connection.execute(select(archive_record).where(archive_record.c.id == record_id)).first()
    return dict(row._mapping) if row else None


def stored_digests(connection: Connection, digests: list[str]) -> set[str]:
    """Which of these blob digests some record already refers to."""
    found: set[str] = set()
    for start in range(0, len(digests), 500):
        chunk = digests[start : start + 500]
        found.update(
            connection.execute(
                select(archive_record.c.blob_sha256).where(archive_record.c.blob_sha256.in_(chunk))
            ).scalars()
        )
    return found


def records_for(connection: Connection, message_id: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(archive_record).where(archive_record.c.message_id == message_id).order_by(archive_record.c.id)
    )
    return [dict(row._mapping) for row in rows]


def decisions_since(connection: Connection, since: datetime) -> dict[str, int]:
    """Messages received since `since`, counted by the gateway's decision."""
    rows = connection.execute(
        select(archive_record.c.action, func.count())
        .where(archive_record.c.kind == "received", archive_record.c.recorded_at >= as_utc(since))
        .group_by(archive_record.c.action)
    )
    return {str(action): int(number) for action, number in rows}


def head(connection: Connection) -> tuple[int, str]:
    return chain.head_of(connection)


@dataclass(frozen=True)
class Break:
    record_id: int
    message_id: str
    problem: str

    def __str__(self) -> str:
        return f"record {self.record_id} (message {self.message_id}): {self.problem}"


def verify(
    connection: Connection, blobs: BlobStore, progress: Callable[[int, int], None] | None = None
) -> Break | None:
    """Re-read every record and its blob in order; the first that does not match, or None."""
    total, _ = head(connection)
    previous, expected = GENESIS, 1
    for row in chain.rows(connection):
        problem = chain.check_row(row, previous, expected)
        if problem is None:
            try:
                blobs.get(row["blob_sha256"], verify=True)
            except BlobMissing:
                problem = f"its message blob {row['blob_sha256']} is missing"
            except BlobCorrupt:
                problem = f"its message blob {row['blob_sha256']} was altered"
        if problem:
            return Break(row["id"], row["message_id"], problem)
        previous, expected = row["record_hash"], expected + 1
        if progress:
            progress(row["id"], total)
    last_id, last_hash = head(connection)
    if expected - 1 != last_id or previous != last_hash:
        return Break(last_id, "-", "the chain head does not match the last record")
    return None
