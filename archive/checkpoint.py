"""Checkpoints: the archive's chain head, written to the audit log daily and given to outside parties.

A checkpoint names the last archive record and its hash (which covers every
record before it) and the audit entry that recorded it. Whoever keeps a copy
of the file can later run `aup-milter archive verify --checkpoint FILE`: if
any record up to that point was changed, even with the whole chain rewritten
after it, the hash at that position no longer matches.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from sqlalchemy import Connection, select

from archive import audit, records
from archive.audit import audit_log
from milter.kernel.db import as_utc, utcnow

if TYPE_CHECKING:
    from milter.runtime import Runtime

log = logging.getLogger(__name__)

ACTION = "archive.checkpoint"
EVERY = timedelta(days=1)
TITLE = "aup-milter archive checkpoint"
_LINE = re.compile(r"^([a-z-]+):\s*(\S+)\s*$")
_HASH = re.compile(r"[0-9a-f]{64}")


class CheckpointError(ValueError):
    pass


@dataclass(frozen=True)
class Checkpoint:
    taken_at: datetime
    gateway: str
    records: int  # the id of the last archive record
    archive_head: str
    audit_entry: int  # the audit entry that recorded this checkpoint
    audit_head: str

    def to_text(self) -> str:
        return (
            f"{TITLE}\n"
            f"taken-at: {self.taken_at.isoformat(timespec='seconds')}\n"
            f"gateway: {self.gateway}\n"
            f"archive-records: {self.records}\n"
            f"archive-head: {self.archive_head}\n"
            f"audit-entry: {self.audit_entry}\n"
            f"audit-head: {self.audit_head}\n"
            "\n"
            "Keep this file. The archive-head hash covers every archived message up to record\n"
            f"{self.records}: its content (SHA-256), envelope, headers, direction and decision.\n"
            "To prove later that none of them was changed or removed, the agency runs\n"
            "    aup-milter archive verify --checkpoint THIS-FILE\n"
            "which re-reads every stored message and checks that the chain still passes\n"
            "through this hash at this position.\n"
        )


def parse(text: str) -> Checkpoint:
    """A checkpoint file's contents; CheckpointError says which line is missing or wrong."""
    if not text.startswith(TITLE):
        raise CheckpointError(f"not a checkpoint file: the first line should be {TITLE!r}")
    fields = {m[1]: m[2] for line in text.splitlines() if (m := _LINE.match(line))}
    try:
        checkpoint = Checkpoint(
            datetime.fromisoformat(fields["taken-at"]),
            fields.get("gateway", "-"),
            int(fields["archive-records"]),
            fields["archive-head"],
            int(fields["audit-entry"]),
            fields["audit-head"],
        )
    except KeyError as missing:
        raise CheckpointError(f"the checkpoint file has no {missing.args[0]}: line") from None
    except ValueError as exc:
        raise CheckpointError(f"the checkpoint file has a malformed line ({exc})") from None
    for name, value in (("archive-head", checkpoint.archive_head), ("audit-head", checkpoint.audit_head)):
        if not _HASH.fullmatch(value):
            raise CheckpointError(f"{name}: {value!r} is not a SHA-256 in hex")
    return checkpoint


def take(
    connection: Connection, actor: str, gateway: str, *, source: str | None = None, reason: str = "daily"
) -> Checkpoint:
    """Record the archive's head in the audit log now, inside the caller's transaction."""
    last_id, last_hash = records.head(connection)
    entry_id = audit.record(
        connection,
        actor,
        ACTION,
        f"archive record {last_id}",
        source=source,
        details={"records": last_id, "archive_head": last_hash, "gateway": gateway, "reason": reason},
    )
    entry = audit.get(connection, entry_id)
    assert entry is not None
    return Checkpoint(as_utc(entry["at"]), gateway, last_id, last_hash, entry_id, entry["entry_hash"])


def latest(connection: Connection) -> Checkpoint | None:
    row = connection.execute(
        select(audit_log).where(audit_log.c.action == ACTION).order_by(audit_log.c.id.desc()).limit(1)
    ).first()
    if row is None:
        return None
    details = row.details or {}
    return Checkpoint(
        as_utc(row.at),
        str(details.get("gateway", "-")),
        int(details.get("records", 0)),
        str(details.get("archive_head", "")),
        row.id,
        row.entry_hash,
    )


def check(connection: Connection, checkpoint: Checkpoint) -> list[str]:
    """What in the database disagrees with the checkpoint (empty: it still holds)."""
    problems = []
    if checkpoint.records > 0:
        record = records.get(connection, checkpoint.records)
        if record is None:
            problems.append(f"archive record {checkpoint.records} named by the checkpoint is missing")
        elif record["record_hash"] != checkpoint.archive_head:
            problems.append(
                f"archive record {checkpoint.records} no longer has the checkpoint's hash: "
                "the archive was changed at or before it"
            )
    entry = audit.get(connection, checkpoint.audit_entry)
    if entry is None:
        problems.append(f"audit entry {checkpoint.audit_entry} named by the checkpoint is missing")
    elif entry["entry_hash"] != checkpoint.audit_head:
        problems.append(
            f"audit entry {checkpoint.audit_entry} no longer has the checkpoint's hash: "
            "the audit log was changed at or before it"
        )
    return problems


def due(connection: Connection, now: datetime | None = None) -> bool:
    previous = latest(connection)
    return previous is None or (now or utcnow()) - previous.taken_at >= EVERY


def daily_job(runtime: Runtime) -> None:
    """The periodic job: one checkpoint a day, by the system."""
    with runtime.database.write() as connection:
        if not due(connection):
            return
        checkpoint = take(connection, "system", runtime.config.settings.smtp.hostname)
    log.info("archive checkpoint: record %d, head %s", checkpoint.records, checkpoint.archive_head)
