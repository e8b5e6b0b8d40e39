"""The milter front-end against a real Postfix: swaks talks to Postfix, Postfix asks the gateway.

Postfix's own log and Maildir prove each outcome: delivered (with the
gateway's headers and the rules' edits), rejected with the rule's reply,
tempfailed when a rule breaks, held in the gateway (not in Postfix's Maildir)
until a release sends it once through Postfix's reinjection smtpd.
"""

from __future__ import annotations

import email
import email.policy
import re
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from archive import records
from milter.delivery import queue
from milter.kernel.db import Database
from tests.conftest import TRUSTED, message_bytes
from tests.support.servers import PostfixServer, free_port

pytestmark = pytest.mark.postfix

OUTSIDE = "127.0.0.1"
SWAKS_END = b"\r\n"  # swaks puts a CRLF of its own before the final dot
REPLY = re.compile(r"^<(?:-|\*\*) +(\d{3}.*)$", re.MULTILINE)


def swaks(postfix: PostfixServer, raw: bytes, mail_from: str, rcpts: list[str], *, inside: bool = False) -> str:
    """Send with swaks; the server's answer to the end of DATA (its last reply before QUIT)."""
    with tempfile.NamedTemporaryFile(suffix=".eml") as data:
        data.write(raw)
        data.flush()
        source = TRUSTED if inside else OUTSIDE
        command = ["swaks", "--server", f"127.0.0.1:{postfix.port}", "--local-interface", source, "--timeout", "60"]
        command += ["--from", mail_from, "--to", ",".join(rcpts), "--data", data.name, "--helo", "client.test"]
        result = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=120,
        )
    replies = REPLY.findall(result.stdout)
    assert len(replies) >= 2, result.stdout + result.stderr
    return replies[-2] if replies[-1].startswith("221") else replies[-1]


@pytest.fixture
def milter_postfix(make_gateway: Callable[..., Any]) -> Iterator[Callable[..., tuple[Any, PostfixServer]]]:
    """A gateway with its milter listener, and a Postfix whose smtpd_milters points at it."""
    started: list[PostfixServer] = []

    def start(extra: dict[str, Any] | None = None) -> tuple[Any, PostfixServer]:
        folder = Path(tempfile.mkdtemp(prefix="aup-pf-milter-"))  # Postfix's daemons must reach it
        milter = f"inet:127.0.0.1:{free_port()}"
        postfix = PostfixServer(folder, refuse={}, milter=milter)
        settings: dict[str, Any] = {"milter": {"enabled": True, "listen": milter, "progress_interval": "1s"}}
        for section, values in (extra or {}).items():
            settings.setdefault(section, {}).update(values)
        # What the gateway releases goes back to Postfix, past the milter (reinjection port).
        gateway = make_gateway(settings, deliver_url=f"smtp://127.0.0.1:{postfix.reinject_port}")
        started.append(postfix)
        postfix.start()
        return gateway, postfix

    yield start
    for postfix in started:
        postfix.stop()
        shutil.rmtree(postfix.folder, ignore_errors=True)


def received_records(database: Database) -> list[Any]:
    with database.read() as connection:
        table = records.archive_record
        return list(connection.execute(select(table).where(table.c.kind == "received").order_by(table.c.id)).all())


def gateway_deliveries(database: Database) -> int:
    with database.read() as connection:
        return len(connection.execute(select(queue.delivery)).all())


def parsed(data: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def test_a_clean_message_is_archived_then_delivered_by_postfix_with_the_gateway_trace(milter_postfix):
    gateway, postfix = milter_postfix()
    raw = message_bytes(sender="Pat Lee <pat@riverside-county.org>", to="sortiz@example.gov", subject="Budget")
    reply = swaks(postfix, raw, "pat@riverside-county.org", ["sortiz@example.gov"])
    assert reply.startswith("250 2.0.0 Ok: queued as"), reply
    (delivered,) = postfix.wait_for(1)
    [record] = received_records(gateway.runtime.database)
    assert record.action == "deliver" and record.direction == "inbound" and record.client_ip == OUTSIDE
    assert gateway.runtime.blobs.get(record.blob_sha256) == raw + SWAKS_END  # archived as sent
    message = parsed(delivered.data)
    ours = [" ".join(r.split()) for r in message.get_all("Received", []) if "(aup-milter)" in r]
    assert len(ours) == 1 and f"id {record.message_id}" in ours[0], message.get_all("Received")
    assert "spf=none smtp.mailfrom=pat@riverside-county.org" in message["Authentication-Results"]
    assert message["Subject"] == "Budget" and message.get_content().rstrip("\n") == "Just a note."
    # The gateway delivered nothing itself: Postfix delivers what the milter accepted.
    assert gateway_deliveries(gateway.runtime.database) == 0
    assert "status=sent (delivered to maildir)" in postfix.log() and ": milter-" not in postfix.log()


def test_a_rejected_message_gets_the_rules_reply_and_postfix_delivers_nothing(milter_postfix):
    gateway, postfix = milter_postfix({"policies": {"size": {"max_bytes": {"inbound": "2KiB"}}}})
    raw = message_bytes(sender="pat@riverside-county.org", body="A long report.\r\n" * 300)
    reply = swaks(postfix, raw, "pat@riverside-county.org", ["sortiz@example.gov"])
    assert reply.startswith("55") and " 5." in reply, reply
    [record] = received_records(gateway.runtime.database)
    assert record.action == "reject" and record.details["reply"][:3] == reply[:3]
    assert "milter-reject: END-OF-MESSAGE from unknown[127.0.0.1]: 5.3.4 The message is" in postfix.log()
    assert postfix.messages() == []


def test_a_rule_that_crashes_tempfails_through_postfix_and_nothing_is_delivered(milter_postfix, monkeypatch):
    gateway, postfix = milter_postfix()
    rule = next(p for p in gateway.runtime.pipeline.policies if p.name == "anonymous_sender")

    def crash(message: Any) -> Any:
        raise ValueError("the rule has a bug")

    monkeypatch.setattr(rule, "check", crash)
    reply = swaks(
        postfix, message_bytes(sender="pat@riverside-county.org"), "pat@riverside-county.org", ["sortiz@example.gov"]
    )
    assert reply.startswith("451 4.3.0"), reply
    assert "milter-reject: END-OF-MESSAGE from unknown[127.0.0.1]: 4.3.0 Temporary failure" in postfix.log()
    assert postfix.messages() == [] and postfix.queue_is_empty()
    assert {r.action for r in received_records(gateway.runtime.database)} <= {"tempfail"}


def test_impersonation_tag_subject_and_banner_reach_the_maildir_and_the_archive_keeps_the_original(milter_postfix):
    gateway, postfix = milter_postfix()
    raw = message_bytes(
        sender="Dana Whitfield <dana.whitfield.director@gmail.com>",
        to="sortiz@example.gov",
        subject="Wire transfer today",
    )
    reply = swaks(postfix, raw, "dana.whitfield.director@gmail.com", ["sortiz@example.gov"])
    assert reply.startswith("250"), reply
    (delivered,) = postfix.wait_for(1)
    message = parsed(delivered.data)
    assert message["Subject"] == "[Caution: check the sender] Wire transfer today"
    assert message.get_content().startswith("CAUTION: This message claims to be from Dana Whitfield")
    assert message["X-AUP-Milter-Tag"].startswith("impersonation: ")
    [record] = received_records(gateway.runtime.database)
    assert gateway.runtime.blobs.get(record.blob_sha256) == raw + SWAKS_END  # unedited
