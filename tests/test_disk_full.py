"""A full disk under the message store: 452 instead of 250, nothing half-written, nothing acknowledged lost.

The blob store lives on a real 1 MiB tmpfs mounted for the test (needs root,
as the suite runs in CI); a filler file eats the space. Below
`smtp.min_free_space` the gateway refuses at MAIL; when the blob write
itself runs out of space it refuses at DATA. Either way the client hears
4xx and retries later, and once space returns mail flows again.
"""

from __future__ import annotations

import os
import smtplib
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from archive import records
from milter.delivery import queue
from tests.conftest import TRUSTED, message_bytes
from tests.support.servers import wait_until

PAGE = 4096


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB filesystem of its own, unmounted afterwards."""
    mount = tmp_path / "blobs"
    mount.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", str(mount)], capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"cannot mount a 1 MiB tmpfs at {mount} (the test needs root): {result.stderr.strip()}")
    try:
        yield mount
    finally:
        subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def free_bytes(path: Path) -> int:
    stats = os.statvfs(path)
    return stats.f_bavail * stats.f_frsize


def fill(mount: Path, leave: int) -> Path:
    """Take all the space but about `leave` bytes."""
    filler = mount / "filler"
    with open(filler, "ab") as handle:
        handle.write(b"\0" * max(free_bytes(mount) - leave, 0))
    assert abs(free_bytes(mount) - leave) <= 2 * PAGE, free_bytes(mount)
    return filler


def counts(gateway: Any) -> tuple[int, int]:
    """(archive records, deliver-queue recipients)."""
    with gateway.runtime.database.read() as connection:
        archived = connection.execute(select(func.count()).select_from(records.archive_record)).scalar_one()
        queued = connection.execute(select(func.count()).select_from(queue.delivery_rcpt)).scalar_one()
    return archived, queued


def leftovers(mount: Path) -> list[Path]:
    """Half-written blobs: temporary files the store failed to rename into place."""
    return list(mount.rglob(".tmp-*"))


def big_message(subject: str, size: int) -> bytes:
    line = "Row of the attached budget table, repeated to make the message large.\r\n"
    return message_bytes(subject=subject, body=line * (size // len(line)))


def send(port: int, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, source_address=(TRUSTED, 0)) as client:
        client.sendmail("sortiz@example.gov", ["dwhitfield@example.gov"], data)


def subjects(sink: Any) -> list[str]:
    return sorted(
        line.split(b": ", 1)[1].decode()
        for m in sink.messages
        for line in m.data.split(b"\r\n")
        if line.startswith(b"Subject: ")
    )


def test_below_min_free_space_mail_is_refused_at_mail_from_then_flows_again(make_gateway, sink, small_disk):
    gateway = make_gateway({"smtp": {"min_free_space": "256KB"}, "storage": {"blobs": str(small_disk)}})
    send(gateway.port, message_bytes(subject="Before"))
    sink.wait_for(1)
    before = counts(gateway)
    filler = fill(small_disk, leave=100 * 1024)

    with (
        smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client,
        pytest.raises(smtplib.SMTPSenderRefused) as refused,
    ):
        client.sendmail("sortiz@example.gov", ["dwhitfield@example.gov"], message_bytes(subject="Refused"))
    assert refused.value.smtp_code == 452
    assert refused.value.smtp_error.startswith(b"4.3.1 Insufficient system storage")
    assert counts(gateway) == before  # nothing recorded, nothing queued

    filler.unlink()
    send(gateway.port, message_bytes(subject="After"))
    sink.wait_for(2)
    assert subjects(sink) == ["After", "Before"]


def test_a_blob_write_that_runs_out_of_space_answers_452_and_leaves_nothing_behind(make_gateway, sink, small_disk):
    gateway = make_gateway({"smtp": {"min_free_space": "16KB"}, "storage": {"blobs": str(small_disk)}})
    # Two messages are accepted while the downstream says "later": they wait in the queue, blobs on the small disk.
    sink.handler.data_reply = "451 4.3.0 busy, try again later"
    for n in range(2):
        send(gateway.port, message_bytes(subject=f"Queued {n}"))
    wait_until(lambda: counts(gateway)[1] == 2, what="two queued recipients")
    before = counts(gateway)
    filler = fill(small_disk, leave=64 * 1024)
    free = free_bytes(small_disk)

    with (
        smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client,
        pytest.raises(smtplib.SMTPDataError) as refused,
    ):
        client.sendmail(
            "sortiz@example.gov", ["dwhitfield@example.gov"], big_message("Too big for the disk", 300 * 1024)
        )
    assert refused.value.smtp_code == 452  # 4xx: the client keeps the message and retries
    assert counts(gateway) == before  # no archive record and no queue rows for the refused message
    assert leftovers(small_disk) == []  # the half-written blob was removed ...
    assert abs(free_bytes(small_disk) - free) <= PAGE  # ... and gave its space back

    send(gateway.port, message_bytes(subject="Small enough"))  # what fits is still accepted
    filler.unlink()
    send(gateway.port, big_message("Retried after space returned", 300 * 1024))
    sink.handler.data_reply = None
    sink.wait_for(4)
    assert subjects(sink) == ["Queued 0", "Queued 1", "Retried after space returned", "Small enough"]
    wait_until(
        lambda: len([r for r in _rows(gateway) if r["state"] == queue.DELIVERED]) == 4, what="four delivered rows"
    )


def _rows(gateway: Any) -> list[dict[str, Any]]:
    with gateway.runtime.database.read() as connection:
        return queue.listing(connection, state=None)
