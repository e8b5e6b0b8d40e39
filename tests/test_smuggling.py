"""SMTP smuggling: no end-of-data look-alike lets a second message through.

An attacker hides `<bare line ending>.<bare line ending>MAIL FROM...` inside
one message, hoping that some server on the way reads it as the end of DATA
and the rest as a new transaction. The gateway must end DATA only at
CRLF.CRLF, and must forward only CRLF line endings and no NUL, so that no
downstream server can be fooled either. Tried against the aiosmtpd sink and
against a real Postfix.
"""

from __future__ import annotations

import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import Delivered, PostfixServer, wait_until
from tests.support.smtp_raw import (
    OUTSIDE,
    RawSMTP,
    Reply,
    bare_line_endings,
    received_records,
    settle,
    stored_state,
)

SENDER = "pat@partner.org"
RECIPIENT = "dwhitfield@example.gov"
VICTIM = "jdoe@example.gov"  # a real local address: a smuggled RCPT to it would be accepted

END_OF_DATA_LOOKALIKES = [
    b"\n.\n",
    b"\n.\r",
    b"\r.\n",
    b"\r.\r",
    b"\n.\r\n",
    b"\r.\r\n",
    b"\r\n\x00.\r\n",
    b"\r\n.\r\r\n",
    b"\r\r\n.\r\r\n",
    b"\r\n.\n",
    b"\r\n.\r",
]


def smuggling_payload(variant: bytes, token: str) -> bytes:
    """One message whose body hides a second transaction after `variant`; ends with the real CRLF.CRLF."""
    outer = (
        f"From: Pat <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: outer {token}\r\n"
        f"Message-ID: <outer-{token}@partner.org>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n"
        "The outer message."
    ).encode()
    smuggled = (
        f"MAIL FROM:<evil@attacker.example>\r\nRCPT TO:<{VICTIM}>\r\nDATA\r\n"
        f"From: <evil@attacker.example>\r\nTo: <{VICTIM}>\r\nSubject: smuggled {token}\r\n\r\n"
        "smuggled body"
    ).encode()
    return outer + variant + smuggled + b"\r\n.\r\n"


def send_smuggling(port: int, variant: bytes, token: str) -> list[Reply]:
    """Send the payload from outside; returns every reply the gateway gave after DATA's 354."""
    with RawSMTP(port, OUTSIDE) as client:
        client.ehlo("mx.partner.org")
        assert client.command(f"MAIL FROM:<{SENDER}>").code == 250
        assert client.command(f"RCPT TO:<{RECIPIENT}>").code == 250
        assert client.command("DATA").code == 354
        client.send(smuggling_payload(variant, token))
        replies = client.replies(quiet=1.0)
        client.command("QUIT")
    return replies


def assert_one_clean_message_archived(gateway, token: str) -> None:
    """The gateway kept one message, one delivery, and its stored bytes are clean already."""
    assert stored_state(gateway.runtime) == (1, 1, 1)
    (record,) = received_records(gateway.runtime)
    assert record.rcpt_to == [RECIPIENT] and record.mail_from == SENDER
    stored = gateway.runtime.blobs.get(record.blob_sha256)
    assert f"outer {token}".encode() in stored
    assert bare_line_endings(stored) == [] and b"\x00" not in stored


@pytest.mark.parametrize("variant", END_OF_DATA_LOOKALIKES, ids=repr)
def test_smuggling_reaches_the_sink_as_one_clean_message(gateway, sink, variant):
    token = secrets.token_hex(4)
    replies = send_smuggling(gateway.port, variant, token)
    assert [r.code for r in replies] == [250], replies  # one message: one reply, no 250/354 for smuggled commands
    delivered = sink.wait_for(1)
    settle(1.0)  # a second, smuggled message would show up now
    assert len(sink.messages) == 1
    (message,) = sink.messages
    assert (message.mail_from, message.rcpt_tos) == (SENDER, [RECIPIENT])
    assert bare_line_endings(message.data) == [], message.data
    assert b"\x00" not in message.data
    assert f"smuggled {token}".encode() in delivered[0].data  # the hidden part is just text in the one message
    assert_one_clean_message_archived(gateway, token)


# -- against a real Postfix downstream --------------------------------------------


@pytest.fixture(scope="module")
def shared_postfix() -> Iterator[PostfixServer]:
    """One Postfix for the whole matrix (starting one takes seconds); tests tell their messages apart by a token."""
    folder = Path(tempfile.mkdtemp(prefix="aup-pf-"))
    server = PostfixServer(folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.postfix
@pytest.mark.parametrize("variant", END_OF_DATA_LOOKALIKES, ids=repr)
def test_smuggling_reaches_postfix_as_one_clean_message(make_gateway, shared_postfix, variant):
    gateway = make_gateway(deliver_url=shared_postfix.url)
    token = secrets.token_hex(4)
    replies = send_smuggling(gateway.port, variant, token)
    assert [r.code for r in replies] == [250], replies

    def mine() -> list[Delivered]:
        return [m for m in shared_postfix.messages() if token.encode() in m.data]

    wait_until(mine, what=f"Postfix to deliver the message with token {token}")
    settle(1.0)  # a second, smuggled message would show up now
    found = mine()
    assert len(found) == 1, [m.path for m in found]
    assert found[0].rcpt == RECIPIENT
    # Postfix stores LF line ends: a CR left in the file arrived bare.
    assert b"\r" not in found[0].data and b"\x00" not in found[0].data
    assert f"smuggled {token}".encode() in found[0].data
    assert not [m for m in found if m.rcpt == VICTIM]
    assert shared_postfix.queue_is_empty()
    assert_one_clean_message_archived(gateway, token)


# -- the HELO name goes into a header ----------------------------------------------


@pytest.mark.parametrize(
    "helo", [b"evil\rX-Injected: yes", b"evil\x00\rX-Injected: yes", b"evil X-Injected: yes"], ids=repr
)
def test_helo_name_cannot_inject_a_header_or_a_bare_cr(gateway, sink, helo):
    with RawSMTP(gateway.port, OUTSIDE) as client:
        assert client.command(b"EHLO " + helo).code == 250
        client.command(f"MAIL FROM:<{SENDER}>")
        client.command(f"RCPT TO:<{RECIPIENT}>")
        assert client.command("DATA").code == 354
        client.send(f"From: <{SENDER}>\r\nTo: <{RECIPIENT}>\r\nSubject: hello\r\n\r\nHello.\r\n.\r\n".encode())
        assert client.reply().code == 250
    (message,) = sink.wait_for(1)
    assert bare_line_endings(message.data) == [] and b"\x00" not in message.data
    headers = message.data.split(b"\r\n\r\n", 1)[0]
    assert not [line for line in headers.split(b"\r\n") if line.lower().startswith(b"x-injected")]
    assert headers.startswith(b"Received: from evil?")
