"""SQLite's write-ahead log stays bounded in every process.

The gateway turns SQLite's automatic checkpoints off (a checkpoint inside a
commit would delay that message's 250) and runs them from a background job;
every other process (an `archive import` of a large mbox, the indexer) must
keep them, or the log grows with every write until the process ends.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from milter.kernel.db import Database

ROW = "x" * 3000  # about one 4 KiB page per row
ROWS = 3000  # three times SQLite's default automatic checkpoint (1,000 pages)


def fill(database: Database) -> None:
    with database.write() as connection:
        connection.execute(text("CREATE TABLE filler (body TEXT)"))
    for _ in range(ROWS // 100):
        with database.write() as connection:
            connection.execute(text("INSERT INTO filler VALUES (:body)"), [{"body": ROW}] * 100)


def wal_pages(path: Path) -> int:
    return Path(f"{path}-wal").stat().st_size // 4096


def test_a_process_without_the_checkpoint_job_keeps_the_log_bounded(tmp_path):
    path = tmp_path / "cli.db"
    fill(Database(f"sqlite:///{path}"))
    assert wal_pages(path) < 1500, "automatic checkpoints should have kept the log near 1,000 pages"


def test_the_gateway_leaves_checkpoints_to_its_job(tmp_path):
    path = tmp_path / "gateway.db"
    database = Database(f"sqlite:///{path}", background_checkpoints=True)
    fill(database)
    assert wal_pages(path) >= ROWS, "no commit should have paid for a checkpoint"
    database.checkpoint()  # what the gateway's job does every two seconds
    with database.write() as connection:  # after a completed checkpoint the log starts again from the top
        connection.execute(text("INSERT INTO filler VALUES ('one more')"))
    with database.read() as connection:
        _busy, frames, _copied = connection.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)").one()
    assert frames < 10, f"the log should hold only the new commit, not {frames} frames"
