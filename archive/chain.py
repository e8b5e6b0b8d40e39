"""A hash chain over the rows of one append-only table.

Each row's hash covers every other column, including the previous row's hash
and the row's sequence number, so any change to any row breaks the chain from
that row on. Appending takes the head row's lock (FOR UPDATE on PostgreSQL;
the write transaction's lock on SQLite), so concurrent writers line up.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Integer,
    String,
    Table,
    bindparam,
    event,
    select,
)
from sqlalchemy.schema import DDL

from milter.kernel.db import as_utc, metadata

GENESIS = "0" * 64


def head_table(name: str) -> Table:
    table = Table(
        name,
        metadata,
        Column("id", Integer, primary_key=True),
        Column("last_id", BigInteger, nullable=False),
        Column("last_hash", String(64), nullable=False),
    )
    event.listen(table, "after_create", DDL(f"INSERT INTO {name} (id, last_id, last_hash) VALUES (1, 0, '{GENESIS}')"))
    return table


def _canonical(value: Any) -> Any:
    if isinstance(value, datetime):
        return as_utc(value).isoformat(timespec="microseconds")
    return value


class Chain:
    """Append and walk rows of `table`, whose columns include id, prev_hash and row hash."""

    def __init__(self, table: Table, head: Table, hash_column: str) -> None:
        self.table, self.head, self.hash_column = table, head, hash_column
        self.hashed = tuple(c.name for c in table.columns if c.name != hash_column)
        # Built once: this runs for every message, inside the one writer transaction.
        self._lock_head = select(head.c.last_id, head.c.last_hash).where(head.c.id == 1).with_for_update()
        self._insert = table.insert()
        self._move_head = (
            head.update().where(head.c.id == 1).values(last_id=bindparam("new_id"), last_hash=bindparam("new_hash"))
        )

    def digest(self, row: dict[str, Any]) -> str:
        body = {name: _canonical(row.get(name)) for name in self.hashed}
        encoded = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(encoded.encode("utf-8")).hexdigest()

    def append(self, connection: Connection, row: dict[str, Any]) -> tuple[int, str]:
        """Insert `row` at the head; the caller's transaction commits it."""
        last_id, last_hash = connection.execute(self._lock_head).one()
        row = {name: row.get(name) for name in self.hashed}
        row["id"] = last_id + 1
        row["prev_hash"] = last_hash
        row[self.hash_column] = self.digest(row)
        connection.execute(self._insert, row)
        connection.execute(self._move_head, {"new_id": row["id"], "new_hash": row[self.hash_column]})
        return row["id"], row[self.hash_column]

    def append_many(self, connection: Connection, rows: list[dict[str, Any]]) -> list[tuple[int, str]]:
        """Insert `rows` in order at the head with one lock and one statement (bulk import)."""
        if not rows:
            return []
        last_id, last_hash = connection.execute(self._lock_head).one()
        chained, added = [], []
        for given in rows:
            row = {name: given.get(name) for name in self.hashed}
            row["id"] = last_id = last_id + 1
            row["prev_hash"] = last_hash
            row[self.hash_column] = last_hash = self.digest(row)
            chained.append(row)
            added.append((last_id, last_hash))
        connection.execute(self._insert, chained)
        connection.execute(self._move_head, {"new_id": last_id, "new_hash": last_hash})
        return added

    def head_of(self, connection: Connection) -> tuple[int, str]:
        row = connection.execute(select(self.head.c.last_id, self.head.c.last_hash).where(self.head.c.id == 1)).one()
        return row.last_id, row.last_hash

    def rows(self, connection: Connection, batch: int = 1000, after: int = 0) -> Iterator[dict[str, Any]]:
        while True:
            found = connection.execute(
                select(self.table).where(self.table.c.id > after).order_by(self.table.c.id).limit(batch)
            ).all()
            if not found:
                return
            for row in found:
                yield dict(row._mapping)
            after = found[-1].id

    def first_break(self, connection: Connection) -> tuple[int, str] | None:
        """The first row whose link or hash does not match, as (id, problem); None if intact."""
        previous, expected = GENESIS, 1
        for row in self.rows(connection):
            problem = self.check_row(row, previous, expected)
            if problem:
                return row["id"], problem
            previous, expected = row[self.hash_column], expected + 1
        last_id, last_hash = self.head_of(connection)
        if expected - 1 != last_id or previous != last_hash:
            return last_id, "the chain head does not match the last row"
        return None

    def check_row(self, row: dict[str, Any], previous: str, expected_id: int) -> str | None:
        if row["id"] != expected_id:
            return f"row {expected_id} is missing from the chain"
        if row["prev_hash"] != previous:
            return "its link to the previous row does not match"
        if self.digest(row) != row[self.hash_column]:
            return "its contents were altered (hash does not match)"
        return None
