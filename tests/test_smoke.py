"""The spine end to end: a real SMTP client, the gateway, a real downstream."""

from __future__ import annotations

import smtplib

from sqlalchemy import select

from archive import records
from tests.conftest import TRUSTED, message_bytes


def test_internal_message_is_stored_then_delivered_with_a_received_header(gateway, sink):
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client:
        refused = client.sendmail("sortiz@example.gov", ["dwhitfield@example.gov"], message_bytes())
    assert refused == {}
    delivered = sink.wait_for(1)[0]
    assert delivered.rcpt_tos == ["dwhitfield@example.gov"]
    assert delivered.data.startswith(b"Received: from ")
    assert b"by gateway.test (aup-milter) with ESMTP id " in delivered.data
    with gateway.runtime.database.read() as connection:
        rows = connection.execute(select(records.archive_record)).all()
    assert [(r.kind, r.direction, r.action) for r in rows] == [("received", "internal", "deliver")]
    assert gateway.runtime.blobs.exists(rows[0].blob_sha256)
