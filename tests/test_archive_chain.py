"""The archive and the audit log: append-only, hash-chained, and verified."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from archive import audit, records
from milter import cli
from milter.kernel.blobstore import BlobStore
from milter.kernel.db import Database
from tests.conftest import message_bytes, write_config


@pytest.fixture
def store(tmp_path, database_url):
    database = Database(database_url)
    database.create_schema()
    blobs = BlobStore(tmp_path / "blobs")
    yield database, blobs
    database.dispose()


def add_records(database, blobs, count):
    ids = []
    for number in range(count):
        raw = message_bytes(subject=f"message {number}")
        digest = blobs.put(raw)
        with database.write() as connection:
            record_id, _ = records.append(
                connection,
                message_id=f"M{number}",
                kind="received",
                blob_sha256=digest,
                size=len(raw),
                direction="internal",
                action="deliver",
                subject=f"message {number}",
                rcpt_to=["a@example.gov"],
                findings=[],
            )
        ids.append((record_id, digest))
    return ids


def drop_guards(database, table):
    """What an attacker with database access would do first."""
    with database.write() as connection:
        if database.is_sqlite:
            connection.execute(text(f"DROP TRIGGER {table}_no_update"))
        else:
            connection.execute(text(f"DROP TRIGGER {table}_immutable ON {table}"))


def test_an_untouched_archive_verifies(store):
    database, blobs = store
    add_records(database, blobs, 5)
    with database.read() as connection:
        assert records.verify(connection, blobs) is None
        assert records.head(connection)[0] == 5


def test_one_changed_byte_in_a_blob_names_that_record(store):
    database, blobs = store
    ids = add_records(database, blobs, 5)
    path = blobs.path(ids[2][1])
    path.chmod(0o640)
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))
    with database.read() as connection:
        broken = records.verify(connection, blobs)
    assert broken is not None and broken.record_id == ids[2][0]
    assert "altered" in broken.problem


def test_changed_metadata_names_that_record(store):
    database, blobs = store
    ids = add_records(database, blobs, 5)
    drop_guards(database, "archive_record")
    with database.write() as connection:
        connection.execute(
            text("UPDATE archive_record SET subject = 'nothing to see' WHERE id = :id"), {"id": ids[3][0]}
        )
    with database.read() as connection:
        broken = records.verify(connection, blobs)
    assert broken is not None and broken.record_id == ids[3][0]
    assert "metadata" in broken.problem or "altered" in broken.problem


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE archive_record SET subject = 'x'",
        "DELETE FROM archive_record",
        "UPDATE audit_log SET actor = 'someone else'",
        "DELETE FROM audit_log",
    ],
)
def test_the_database_refuses_to_change_or_delete_history(store, statement):
    database, blobs = store
    add_records(database, blobs, 1)
    with database.write() as connection:
        audit.record(connection, "admin", "test.action", "target")
    with pytest.raises(DBAPIError, match="cannot be changed or deleted"), database.write() as connection:
        connection.execute(text(statement))


def test_audit_chain_verifies_and_names_a_tampered_entry(store):
    database, _ = store
    with database.write() as connection:
        for number in range(4):
            audit.record(connection, f"user{number}", "console.login", None, source="127.0.0.1", details={"n": number})
    with database.read() as connection:
        assert audit.verify(connection) is None
        assert [e["actor"] for e in audit.entries(connection, limit=2)] == ["user3", "user2"]
    drop_guards(database, "audit_log")
    with database.write() as connection:
        connection.execute(text("UPDATE audit_log SET actor = 'nobody' WHERE id = 2"))
    with database.read() as connection:
        assert audit.verify(connection) == (2, "its contents were altered (hash does not match)")


def test_archive_verify_command_exits_non_zero_and_names_the_record(tmp_path, database_url, capsys):
    path = write_config(tmp_path, database_url, "maildir:/tmp/unused")
    database = Database(database_url)
    database.create_schema()
    blobs = BlobStore(tmp_path / "blobs")
    ids = add_records(database, blobs, 3)
    assert cli.main(["--config", str(path), "archive", "verify"]) == 0
    assert "ok, 3 records" in capsys.readouterr().out
    blobs.path(ids[1][1]).chmod(0o640)
    blobs.path(ids[1][1]).write_bytes(b"replaced")
    assert cli.main(["--config", str(path), "archive", "verify"]) == 1
    assert f"FAILED at record {ids[1][0]} (message M1)" in capsys.readouterr().out
    database.dispose()
