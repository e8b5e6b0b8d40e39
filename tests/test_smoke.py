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


def test_an_enforced_edit_is_delivered_and_both_versions_are_archived(make_gateway, sink, monkeypatch):
    from milter.mail import edit
    from policies.rules.size import SizeLimit

    def tags_subject(self, message):
        return [
            self.finding("tagged for the test", action="tag", edit=lambda raw: edit.set_subject(raw, "[TAGGED] Hello"))
        ]

    monkeypatch.setattr(SizeLimit, "check", tags_subject)
    gateway = make_gateway()
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client:
        client.sendmail("sortiz@example.gov", ["dwhitfield@example.gov"], message_bytes(subject="Hello"))
    delivered = sink.wait_for(1)[0].data
    assert b"Subject: [TAGGED] Hello\r\n" in delivered and b"Subject: Hello\r\n" not in delivered
    with gateway.runtime.database.read() as connection:
        rows = connection.execute(select(records.archive_record).order_by(records.archive_record.c.id)).all()
    assert [r.kind for r in rows] == ["received", "delivered"]
    assert b"Subject: Hello\r\n" in gateway.runtime.blobs.get(rows[0].blob_sha256)
    assert b"Subject: [TAGGED] Hello\r\n" in gateway.runtime.blobs.get(rows[1].blob_sha256)
    assert rows[1].details["edited_by"] == ["size"]


def test_a_monitoring_rule_never_changes_the_message(make_gateway, sink, monkeypatch):
    from milter.mail import edit
    from policies.rules.size import SizeLimit

    monkeypatch.setattr(
        SizeLimit,
        "check",
        lambda self, message: [
            self.finding("would tag", action="tag", edit=lambda raw: edit.set_subject(raw, "[TAGGED]"))
        ],
    )
    gateway = make_gateway({"policies": {"size": {"mode": "monitor"}}})
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client:
        client.sendmail("sortiz@example.gov", ["dwhitfield@example.gov"], message_bytes(subject="Hello"))
    assert b"Subject: Hello\r\n" in sink.wait_for(1)[0].data
    with gateway.runtime.database.read() as connection:
        assert [r.kind for r in connection.execute(select(records.archive_record)).all()] == ["received"]
