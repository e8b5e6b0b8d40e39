"""Notices are real messages: composed, archived and delivered through the queue."""

from __future__ import annotations

import email
import email.policy

from sqlalchemy import select

from archive import records
from quarantine import notices


def test_a_notice_is_archived_and_delivered_with_both_bodies(gateway, sink):
    runtime = gateway.runtime
    data = notices.compose(
        runtime.config.settings.notices,
        ["sortiz@example.gov"],
        "Your message is held",
        "Your message to All Staff waits for approval.",
        html="<p>Your message waits.</p>",
        kind="held",
    )
    with runtime.database.write() as connection:
        message_id = notices.send(connection, runtime, data, ["sortiz@example.gov"])
    gateway.loop.call_soon_threadsafe(gateway.gateway.runner.wake.set)
    received = sink.wait_for(1)[0]
    assert received.rcpt_tos == ["sortiz@example.gov"]
    assert received.mail_from == "postmaster@example.gov"
    parsed = email.message_from_bytes(received.data, policy=email.policy.default)
    assert parsed["Auto-Submitted"] == "auto-generated" and parsed["X-AUP-Notice"] == "held"
    assert parsed.get_body(("plain",)).get_content().strip() == "Your message to All Staff waits for approval."
    assert "<p>Your message waits.</p>" in parsed.get_body(("html",)).get_content()
    with runtime.database.read() as connection:
        row = connection.execute(
            select(records.archive_record).where(records.archive_record.c.message_id == message_id)
        ).one()
    assert (row.kind, row.subject, row.details["origin"]) == ("generated", "Your message is held", "notice")
