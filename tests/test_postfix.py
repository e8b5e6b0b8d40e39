"""A real client, the gateway, a real Postfix and its Maildir: what arrives is what was sent.

Postfix stores Maildir files with LF line ends and prepends its own trace
headers (Return-Path, X-Original-To, Delivered-To, Received); the gateway
prepends one Received header. Everything else must arrive byte for byte.
"""

from __future__ import annotations

import smtplib
from typing import Any

import pytest

from milter.delivery import queue
from milter.kernel.db import Database
from tests.conftest import TRUSTED
from tests.support.servers import Delivered, wait_until

pytestmark = pytest.mark.postfix

# Folded headers, a tab, trailing spaces, a line that is only a dot and one that
# starts with one (SMTP dot-stuffing), "From " at a line start, a long line, MIME.
TRICKY = (
    b"From: Sam Ortiz <sortiz@example.gov>\r\n"
    b"To: Dana Whitfield <dwhitfield@example.gov>\r\n"
    b"Subject: Road closures for the week of the 23rd, with a subject long enough\r\n"
    b"\tthat it is folded onto a second line\r\n"
    b"Message-ID: <tricky-1@example.gov>\r\n"
    b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
    b"X-Trailing-Space: yes   \r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="b1"\r\n'
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"\r\n"
    b"Main Street is closed Tuesday.\r\n"
    b".\r\n"
    b"..two dots\r\n"
    b".one dot\r\n"
    b"From the desk of the director\r\n"
    b"\tindented with a tab, trailing space \r\n" + b"long " * 180 + b"\r\n"
    b"\r\n"
    b"--b1\r\n"
    b"Content-Type: text/csv; name=closures.csv\r\n"
    b"Content-Disposition: attachment; filename=closures.csv\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"c3RyZWV0LGRheQpNYWluLFR1ZXNkYXkK\r\n"
    b"--b1--\r\n"
)


def as_stored(data: bytes) -> bytes:
    """How Postfix's Maildir stores a message it received: LF line ends."""
    return data.replace(b"\r\n", b"\n")


def received_by_gateway(delivered: Delivered) -> bytes:
    """What the gateway sent Postfix, minus the gateway's own Received header (checked here)."""
    rest = delivered.without_trace()
    assert rest.startswith(b"Received: from "), rest[:200]
    end = rest.index(b"\n") + 1
    while rest[end : end + 1] in (b" ", b"\t"):
        end = rest.index(b"\n", end) + 1
    assert b"by gateway.test (aup-milter) with ESMTP id " in rest[:end]
    return rest[end:]


def send(port: int, mail_from: str, rcpts: list[str], data: bytes, options: tuple[str, ...] = ()) -> None:
    with smtplib.SMTP("127.0.0.1", port, source_address=(TRUSTED, 0)) as client:
        assert client.sendmail(mail_from, rcpts, data, mail_options=list(options)) == {}


def test_a_message_arrives_in_the_maildir_byte_for_byte(make_gateway, postfix):
    gateway = make_gateway(deliver_url=postfix.url)
    send(gateway.port, "sortiz@example.gov", ["dwhitfield@example.gov"], TRICKY)
    [delivered] = postfix.wait_for(1)
    assert delivered.rcpt == "dwhitfield@example.gov"
    assert delivered.return_path == "<sortiz@example.gov>"
    assert received_by_gateway(delivered) == as_stored(TRICKY)


def test_an_8bit_utf8_body_arrives_unchanged(make_gateway, postfix):
    body = "Grüße aus dem Rathaus – the café on Ölweg reopens; señora Muñoz ✓\r\n".encode()
    data = (
        b"From: sortiz@example.gov\r\nTo: dwhitfield@example.gov\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\n"
        b"Message-ID: <utf8-1@example.gov>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n" + body
    )
    gateway = make_gateway(deliver_url=postfix.url)
    send(gateway.port, "sortiz@example.gov", ["dwhitfield@example.gov"], data, ("BODY=8BITMIME",))
    [delivered] = postfix.wait_for(1)
    assert received_by_gateway(delivered) == as_stored(data)


def test_a_null_sender_stays_null(make_gateway, postfix):
    data = (
        b"From: Mail Delivery System <mailer-daemon@example.gov>\r\nTo: dwhitfield@example.gov\r\n"
        b"Subject: Delivery report\r\nMessage-ID: <null-1@example.gov>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        b"\r\nA bounce travels with an empty envelope sender.\r\n"
    )
    gateway = make_gateway(deliver_url=postfix.url)
    send(gateway.port, "", ["dwhitfield@example.gov"], data)
    [delivered] = postfix.wait_for(1)
    assert delivered.return_path == "<>"
    assert received_by_gateway(delivered) == as_stored(data)


def test_several_recipients_in_one_transaction_each_get_the_message(make_gateway, postfix):
    rcpts = ["dwhitfield@example.gov", "lpark@example.gov", "cnguyen@example.gov"]
    data = (
        b"From: sortiz@example.gov\r\nTo: dwhitfield@example.gov, lpark@example.gov\r\nCc: cnguyen@example.gov\r\n"
        b"Subject: Staff meeting\r\nMessage-ID: <multi-1@example.gov>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        b"\r\nThursday at 9.\r\n"
    )
    gateway = make_gateway(deliver_url=postfix.url)
    send(gateway.port, "sortiz@example.gov", rcpts, data)
    delivered = postfix.wait_for(3)
    assert sorted(d.rcpt for d in delivered) == sorted(rcpts)
    assert all(received_by_gateway(d) == as_stored(data) for d in delivered)
    rows = wait_until(lambda: all_delivered(gateway.runtime.database), what="three delivered recipients")
    assert len({r["id"] for r in rows}) == 1  # one delivery: one SMTP transaction downstream, not three
    assert sorted(r["rcpt"] for r in rows) == sorted(rcpts)
    assert all(r["last_reply"].startswith("250 2.0.0 Ok: queued as ") for r in rows)
    assert "nrcpt=3" in postfix.log()


def all_delivered(database: Database) -> list[dict[str, Any]]:
    """Every deliver-queue recipient, if they are all delivered (else nothing)."""
    with database.read() as connection:
        rows = queue.listing(connection, state=None)
    return rows if rows and all(r["state"] == queue.DELIVERED for r in rows) else []


def test_an_smtputf8_recipient_is_delivered_with_smtputf8(make_gateway, postfix):
    data = (
        "From: sortiz@example.gov\r\nTo: jürgen@example.org\r\nSubject: Grüße\r\nMessage-ID: <utf8-2@example.gov>\r\n"
        "Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "\r\nHallo Jürgen.\r\n"
    ).encode()
    gateway = make_gateway(deliver_url=postfix.url)
    send(gateway.port, "sortiz@example.gov", ["jürgen@example.org"], data, ("SMTPUTF8", "BODY=8BITMIME"))
    [delivered] = postfix.wait_for(1)
    assert delivered.rcpt == "jürgen@example.org"
    assert received_by_gateway(delivered) == as_stored(data)
