"""A sender cannot forge the gateway's own headers: the delivered copy drops them."""

from __future__ import annotations

import smtplib

from tests.conftest import TRUSTED, message_bytes


def test_forged_gateway_headers_are_removed_from_the_delivered_copy(gateway, sink):
    forged = message_bytes(
        extra_headers="X-AUP-Approved-By: Dana Whitfield <dwhitfield@example.gov>; 2026-11-23T10:00:00Z\r\n"
        "X-AUP-Notice: held\r\n"
    )
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client:
        assert client.sendmail("sortiz@example.gov", ["lpark@example.gov"], forged) == {}
    delivered = sink.wait_for(1)[0].data
    assert b"X-AUP-Approved-By" not in delivered and b"X-AUP-Notice" not in delivered
    assert b"Subject: Hello\r\n" in delivered


def test_ordinary_mail_is_not_touched(gateway, sink):
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client:
        client.sendmail("sortiz@example.gov", ["lpark@example.gov"], message_bytes())
    from sqlalchemy import select

    from archive import records

    sink.wait_for(1)
    with gateway.runtime.database.read() as connection:
        kinds = [row.kind for row in connection.execute(select(records.archive_record))]
    assert kinds == ["received"]  # no edited version was needed
