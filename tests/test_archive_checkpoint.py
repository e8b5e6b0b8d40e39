"""Checkpoints: the chain head goes to the audit log daily, and an exported one catches a rewritten chain."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from archive import checkpoint, records
from archive.records import archive_head, archive_record, chain
from milter import cli, server
from milter.config import load_config
from milter.runtime import Runtime
from tests.test_archive_chain import add_records, drop_guards, store  # noqa: F401 - the fixture


def rewrite_history(database, from_id: int) -> None:
    """What a careful attacker with database access does: change a record and re-hash every one after it."""
    drop_guards(database, "archive_record")
    with database.write() as connection:
        if database.is_sqlite:
            connection.execute(text("DROP TRIGGER archive_record_no_delete"))
        rows = [dict(r._mapping) for r in connection.execute(archive_record.select().order_by(archive_record.c.id))]
        previous = rows[from_id - 2]["record_hash"] if from_id > 1 else "0" * 64
        for row in rows[from_id - 1 :]:
            if row["id"] == from_id:
                row["subject"] = "nothing to see here"
            row["prev_hash"] = previous
            row["record_hash"] = previous = chain.digest(row)
            connection.execute(
                archive_record.update()
                .where(archive_record.c.id == row["id"])
                .values(subject=row["subject"], prev_hash=row["prev_hash"], record_hash=row["record_hash"])
            )
        connection.execute(archive_head.update().values(last_hash=previous))


def test_an_exported_checkpoint_catches_a_chain_rewritten_after_it(tmp_path, database_url, capsys, store):  # noqa: F811
    from tests.conftest import write_config

    database, blobs = store
    path = write_config(tmp_path, database_url, "maildir:/tmp/unused")
    ids = add_records(database, blobs, 4)
    saved = tmp_path / "checkpoint.txt"
    assert cli.main(["--config", str(path), "archive", "checkpoint", "export", "--output", str(saved)]) == 0
    assert f"record {ids[-1][0]}" in capsys.readouterr().out
    kept = checkpoint.parse(saved.read_text())
    assert kept.records == ids[-1][0]
    add_records(database, blobs, 2)  # the archive goes on after the export
    assert cli.main(["--config", str(path), "archive", "verify", "--checkpoint", str(saved)]) == 0
    out, err = capsys.readouterr()
    assert "ok, 6 records" in out and f"record {kept.records} still has hash {kept.archive_head}" in out
    assert "verifying" in err and "6/6" in err  # the progress bar

    rewrite_history(database, 2)
    with database.read() as connection:
        assert records.verify(connection, blobs) is None  # the rewritten chain is consistent in itself ...
    assert cli.main(["--config", str(path), "archive", "verify", "--checkpoint", str(saved)]) == 1
    out = capsys.readouterr().out
    assert (
        f"archive record {kept.records} no longer has the checkpoint's hash" in out
    )  # ... but not with the checkpoint


def test_a_damaged_checkpoint_file_gets_a_clear_answer(tmp_path, database_url, capsys):
    from tests.conftest import write_config

    path = write_config(tmp_path, database_url, "maildir:/tmp/unused")
    bad = tmp_path / "bad.txt"
    bad.write_text("aup-milter archive checkpoint\narchive-records: 3\n")
    assert cli.main(["--config", str(path), "archive", "verify", "--checkpoint", str(bad)]) == 2
    assert "has no taken-at: line" in capsys.readouterr().err


def test_the_daily_job_writes_one_checkpoint_a_day_to_the_audit_log(tmp_path, database_url, store):  # noqa: F811
    from tests.conftest import write_config

    database, blobs = store
    add_records(database, blobs, 3)
    runtime = Runtime(load_config(write_config(tmp_path / "gw", database_url, "maildir:/tmp/unused")))
    try:
        assert any(job.run is checkpoint.daily_job for job in server.JOBS)
        checkpoint.daily_job(runtime)
        checkpoint.daily_job(runtime)  # the same day: nothing new
        with database.read() as connection:
            taken = checkpoint.latest(connection)
            assert taken is not None and taken.records == 3
            assert taken.archive_head == records.head(connection)[1]
            assert not checkpoint.due(connection, taken.taken_at + timedelta(hours=23))
            assert checkpoint.due(connection, taken.taken_at + timedelta(hours=24))
            entries = (
                connection.execute(text("SELECT actor FROM audit_log WHERE action = 'archive.checkpoint'"))
                .scalars()
                .all()
            )
        assert entries == ["system"]
    finally:
        runtime.close()
