"""The database: SQLite (WAL) by default, PostgreSQL in production.

Each subsystem defines its own tables on `metadata` and owns the functions that
read and write them; this module only opens connections and creates the schema.
Writes go through `Database.write()`, which on SQLite takes the write lock at
BEGIN (BEGIN IMMEDIATE) so a read-then-write transaction, such as appending to
a hash chain, can never fail half way with a stale snapshot.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import threading
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, MetaData, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url

metadata = MetaData()

# Tables whose rows may never change or disappear; the database itself refuses.
IMMUTABLE_TABLES = ("archive_record", "audit_log")


def dialect_insert(connection: Connection) -> Callable[..., Any]:
    """The dialect's INSERT, which has ON CONFLICT (an upsert) on both SQLite and PostgreSQL."""
    dialect = connection.dialect.name
    if dialect == "postgresql":
        return postgresql.insert  # type: ignore[no-any-return]
    if dialect == "sqlite":
        return sqlite.insert  # type: ignore[no-any-return]
    raise RuntimeError(f"aup-milter needs SQLite or PostgreSQL, not {dialect}")


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; everything stored is UTC."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def clean_text(value: str | None, limit: int = 10_000) -> str | None:
    """Text safe for either database: no NUL, no lone surrogates, bounded length."""
    if value is None:
        return None
    value = value.replace("\x00", "").encode("utf-8", "replace").decode("utf-8")
    value = unicodedata.normalize("NFC", value)
    return value[:limit]


def _sqlite_engine(url: str, *, background_checkpoints: bool) -> Engine:
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")  # a commit survives power loss: 250 means durable
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        if background_checkpoints:
            # No checkpoint inside a committing transaction (it would stall that commit's 250);
            # the gateway's job calls Database.checkpoint() instead. Other processes (the CLI,
            # the indexer) keep SQLite's automatic checkpoints, or the log would grow without end.
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        mode = "IMMEDIATE" if connection.get_execution_options().get("sqlite_write") else "DEFERRED"
        connection.exec_driver_sql(f"BEGIN {mode}")

    return engine


class WriterLock:
    """Lines up SQLite writers of every process on one file lock.

    SQLite makes a writer that finds the database locked sleep and retry in
    steps of up to 100 ms; with several SMTP worker processes that sleeping,
    not the disk, would set the pace. A blocking flock wakes the next writer
    the moment the lock is free. Threads of one process share one lock file
    descriptor, so they are serialised here too.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._thread_lock = threading.RLock()  # re-entrant: a nested write fails in SQLite, not here
        self._depth = 0
        self._fd: int | None = None

    @contextmanager
    def held(self) -> Iterator[None]:
        with self._thread_lock:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            if self._depth == 0:
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            self._depth += 1
            try:
                yield
            finally:
                self._depth -= 1
                if self._depth == 0:
                    fcntl.flock(self._fd, fcntl.LOCK_UN)


class Database:
    def __init__(self, url: str, *, background_checkpoints: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self._lock: WriterLock | None = None
        if self.is_sqlite:
            self.engine = _sqlite_engine(url, background_checkpoints=background_checkpoints)
            database = make_url(url).database
            if database and database != ":memory:":
                self._lock = WriterLock(Path(f"{database}.writelock"))
        else:
            self.engine = create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)
        self._writer = self.engine.execution_options(sqlite_write=True)

    @contextmanager
    def write(self) -> Iterator[Connection]:
        """One transaction that will write; committed on leaving, rolled back on error."""
        with self._lock.held() if self._lock else contextlib.nullcontext(), self._writer.begin() as connection:
            yield connection

    @contextmanager
    def read(self) -> Iterator[Connection]:
        with self.engine.connect() as connection:
            yield connection

    def checkpoint(self) -> None:
        """Copy the SQLite write-ahead log into the database file without blocking writers (PASSIVE)."""
        if self.is_sqlite:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    def create_schema(self) -> None:
        # Importing the subsystems registers their tables on `metadata`.
        import archive.audit
        import archive.foia
        import archive.index
        import archive.records  # noqa: F401
        import console.users  # noqa: F401
        import milter.delivery.queue  # noqa: F401
        import policies.rules.correspondents
        import policies.rules.fingerprints  # noqa: F401
        import quarantine.approval_tokens
        import quarantine.approvals
        import quarantine.holds
        import quarantine.it_quarantine  # noqa: F401

        metadata.create_all(self.engine)
        with self.write() as connection:
            for table in IMMUTABLE_TABLES:
                self._forbid_changes(connection, table)

    def _forbid_changes(self, connection: Connection, table: str) -> None:
        if self.is_sqlite:
            for verb in ("UPDATE", "DELETE"):
                connection.execute(
                    text(
                        f"CREATE TRIGGER IF NOT EXISTS {table}_no_{verb.lower()} BEFORE {verb} ON {table} "
                        f"BEGIN SELECT RAISE(ABORT, '{table} rows cannot be changed or deleted'); END"
                    )
                )
            return
        connection.execute(
            text(
                "CREATE OR REPLACE FUNCTION aup_refuse_change() RETURNS trigger LANGUAGE plpgsql AS "
                "$$ BEGIN RAISE EXCEPTION '% rows cannot be changed or deleted', TG_TABLE_NAME; END $$"
            )
        )
        connection.execute(
            text(
                f"CREATE OR REPLACE TRIGGER {table}_immutable BEFORE UPDATE OR DELETE ON {table} "
                "FOR EACH ROW EXECUTE FUNCTION aup_refuse_change()"
            )
        )
        connection.execute(
            text(
                f"CREATE OR REPLACE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
                "FOR EACH STATEMENT EXECUTE FUNCTION aup_refuse_change()"
            )
        )

    def dispose(self) -> None:
        self.engine.dispose()
