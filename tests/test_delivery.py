"""The deliver queue against a real downstream: waiting, retrying, bouncing, and never losing a recipient.

Postfix plays the agency's mail server (it refuses `bounce-me@...` with 550);
an aiosmtpd sink plays a server that answers 4xx on request. Every test
checks the per-recipient rows in the queue tables, not only what arrived.
"""

from __future__ import annotations

import email
import email.policy
import smtplib
import socket
import time
from datetime import timedelta
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select

from archive import records
from milter import cli
from milter.delivery import queue
from milter.delivery.runner import backoff
from milter.kernel.blobstore import BlobStore
from milter.kernel.db import Database, utcnow
from tests.conftest import TRUSTED, Sink, SinkHandler, message_bytes
from tests.support.servers import Delivered, free_port, wait_until

# -- helpers ----------------------------------------------------------------


def send(port: int, mail_from: str, rcpts: list[str], data: bytes | None = None) -> str:
    """One SMTP transaction as the agency mail server; returns the gateway's message id from its 250."""
    with smtplib.SMTP("127.0.0.1", port, source_address=(TRUSTED, 0)) as client:
        client.ehlo()
        assert client.mail(mail_from)[0] == 250
        for rcpt in rcpts:
            assert client.rcpt(rcpt)[0] == 250
        code, reply = client.data(data or message_bytes())
    assert code == 250, reply
    return reply.decode().rsplit(" ", 1)[1]


def rows(database: Database, state: str | None = None) -> list[dict[str, Any]]:
    with database.read() as connection:
        return queue.listing(connection, state=state, limit=1000)


def by_rcpt(database: Database) -> dict[str, dict[str, Any]]:
    return {row["rcpt"]: row for row in rows(database)}


def generated_records(database: Database) -> list[dict[str, Any]]:
    with database.read() as connection:
        found = connection.execute(select(records.archive_record).where(records.archive_record.c.kind == "generated"))
        return [dict(row._mapping) for row in found]


def delivery_status(delivered: Delivered) -> tuple[Message, list[Message]]:
    """Parse a DSN from the Maildir; returns the report and its per-recipient blocks."""
    report = email.message_from_bytes(delivered.data, policy=email.policy.compat32)
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    parts = report.get_payload()
    assert [p.get_content_type() for p in parts] == ["text/plain", "message/delivery-status", "text/rfc822-headers"]
    blocks = parts[1].get_payload()
    return report, blocks[1:]


def dead_url() -> str:
    """An SMTP URL where nothing listens: connection refused, as when the relay host is down."""
    return f"smtp://127.0.0.1:{free_port()}"


# -- the downstream is down -------------------------------------------------


@pytest.mark.postfix
def test_downstream_down_messages_are_accepted_and_wait_then_go_out(make_gateway, postfix, capsys):
    postfix.stop()
    gateway = make_gateway(deliver_url=postfix.url)
    database = gateway.runtime.database
    ids = [
        send(gateway.port, "sortiz@example.gov", ["dwhitfield@example.gov"], message_bytes(subject=f"Closure {n}"))
        for n in range(3)
    ]
    tried = wait_until(
        lambda: len(found := [r for r in rows(database) if r["attempts"] >= 1]) == 3 and found,
        what="three recipients tried once",
    )
    for row in tried:
        assert row["state"] == queue.QUEUED
        assert row["last_reply"].startswith("451 4.4.1 ") and "Connect" in row["last_reply"]
    assert cli.main(["--config", str(gateway.config.path), "queue", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(message_id in listing for message_id in ids) and listing.count("dwhitfield@example.gov") == 3

    postfix.start()
    delivered = postfix.wait_for(3)
    assert sorted(email.message_from_bytes(d.data)["Subject"] for d in delivered) == [
        "Closure 0",
        "Closure 1",
        "Closure 2",
    ]
    wait_until(lambda: len(rows(database, queue.DELIVERED)) == 3, what="three delivered rows")
    assert cli.main(["--config", str(gateway.config.path), "queue", "list"]) == 0
    assert capsys.readouterr().out.strip() == "(none)"


# -- one recipient refused for good ------------------------------------------


@pytest.mark.postfix
def test_a_refused_recipient_alone_is_bounced_with_a_dsn_to_the_sender(make_gateway, postfix):
    gateway = make_gateway(deliver_url=postfix.url)
    database = gateway.runtime.database
    original = message_bytes(
        to="dwhitfield@example.gov, bounce-me@example.org, lpark@example.gov", subject="Paving bids"
    )
    message_id = send(
        gateway.port,
        "sortiz@example.gov",
        ["dwhitfield@example.gov", "bounce-me@example.org", "lpark@example.gov"],
        original,
    )
    delivered = {d.rcpt: d for d in postfix.wait_for(3)}
    assert set(delivered) == {"dwhitfield@example.gov", "lpark@example.gov", "sortiz@example.gov"}

    notice = delivered["sortiz@example.gov"]
    assert notice.return_path == "<>"  # a DSN has a null sender (RFC 5321 section 4.5.5)
    report, blocks = delivery_status(notice)
    assert report["To"] == "<sortiz@example.gov>"
    assert [block["Final-Recipient"] for block in blocks] == ["rfc822; bounce-me@example.org"]
    assert blocks[0]["Action"] == "failed" and blocks[0]["Status"] == "5.1.1"
    assert "550 5.1.1 <bounce-me@example.org>" in " ".join(blocks[0]["Diagnostic-Code"].split())
    headers = report.get_payload()[2].get_payload()
    assert "Subject: Paving bids" in headers and "Just a note." not in headers

    recipients = wait_until(
        lambda: (found := by_rcpt(database)) and all(r["state"] != queue.QUEUED for r in found.values()) and found,
        what="every recipient finished",
    )
    assert {rcpt: (row["state"], row["message_id"] == message_id) for rcpt, row in recipients.items()} == {
        "dwhitfield@example.gov": (queue.DELIVERED, True),
        "bounce-me@example.org": (queue.BOUNCED, True),
        "lpark@example.gov": (queue.DELIVERED, True),
        "sortiz@example.gov": (queue.DELIVERED, False),  # the DSN, a delivery of its own
    }
    assert recipients["bounce-me@example.org"]["last_reply"].startswith("550 5.1.1 ")
    assert (recipients["sortiz@example.gov"]["origin"], recipients["sortiz@example.gov"]["mail_from"]) == ("dsn", "")

    [record] = generated_records(database)  # the DSN is archived like every other message
    assert record["message_id"] == recipients["sortiz@example.gov"]["message_id"]
    assert (record["mail_from"], record["rcpt_to"], record["details"]) == (
        "",
        ["sortiz@example.gov"],
        {"origin": "dsn"},
    )
    stored = gateway.runtime.blobs.get(record["blob_sha256"])
    assert notice.without_trace() == stored.replace(b"\r\n", b"\n")  # what was archived is what was sent
    time.sleep(0.5)
    assert len(postfix.messages()) == 3  # nothing more: no second DSN, no retry of the delivered ones


@pytest.fixture
def sink_without_smtputf8() -> Any:
    """A downstream that does not offer SMTPUTF8, like many older servers."""
    handler = SinkHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port(), enable_SMTPUTF8=False)
    controller.start()
    yield controller, handler
    controller.stop()


def test_a_utf8_address_is_bounced_5_6_7_when_the_downstream_lacks_smtputf8(make_gateway, sink_without_smtputf8):
    controller, handler = sink_without_smtputf8
    gateway = make_gateway(deliver_url=f"smtp://127.0.0.1:{controller.port}")
    database = gateway.runtime.database
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client:
        refused = client.sendmail(
            "sortiz@example.gov",
            ["jürgen@example.org"],
            message_bytes(to="jurgen@example.org"),
            mail_options=["SMTPUTF8"],
        )
    assert refused == {}
    [notice] = handler.wait_for(1)  # only the DSN: the message itself could not be sent
    assert (notice.mail_from, notice.rcpt_tos) == ("<>", ["sortiz@example.gov"])
    report = email.message_from_bytes(notice.data, policy=email.policy.compat32)
    [block] = report.get_payload()[1].get_payload()[1:]
    assert block["Final-Recipient"] == "utf-8; j\\x{FC}rgen@example.org"
    assert block["Status"] == "5.6.7"
    assert by_rcpt(database)["jürgen@example.org"]["state"] == queue.BOUNCED


# -- temporary failures -------------------------------------------------------


class TimedHandler(SinkHandler):
    """A sink that notes when each RCPT was tried."""

    def __init__(self) -> None:
        super().__init__()
        self.tries: list[float] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: list[str]) -> str:
        self.tries.append(time.monotonic())
        return await super().handle_RCPT(server, session, envelope, address, options)


@pytest.fixture
def timed_sink() -> Any:
    running = Sink()
    running.handler = TimedHandler()
    running.start()
    yield running
    running.stop()


def test_4xx_is_retried_with_growing_backoff_until_it_succeeds(make_gateway, timed_sink):
    handler: TimedHandler = timed_sink.handler
    handler.refuse["dwhitfield@example.gov"] = "451 4.2.1 mailbox busy, try again later"
    gateway = make_gateway(deliver_url=timed_sink.url)  # min_backoff 0.2s, max_backoff 1s
    database = gateway.runtime.database
    send(gateway.port, "sortiz@example.gov", ["dwhitfield@example.gov"])
    wait_until(lambda: len(handler.tries) >= 4, what="four attempts")
    row = rows(database)[0]
    assert row["state"] == queue.QUEUED and row["last_reply"] == "451 4.2.1 mailbox busy, try again later"
    del handler.refuse["dwhitfield@example.gov"]
    timed_sink.wait_for(1)
    row = wait_until(lambda: rows(database, queue.DELIVERED), what="the delivered row")[0]
    assert row["attempts"] == len(handler.tries) >= 5
    gaps = [later - earlier for earlier, later in zip(handler.tries, handler.tries[1:], strict=False)]
    for attempt, gap in enumerate(gaps[:3], start=1):
        expected = backoff(attempt, 0.2, 1.0)  # 0.2s, 0.4s, 0.8s
        assert expected - 0.05 <= gap <= expected + 1.0, f"gap {attempt}: {gap:.2f}s, expected about {expected}s"
    assert gaps[2] > gaps[0] + 0.3  # it really grows


def test_backoff_grows_like_postfix_and_stays_bounded():
    # Postfix: minimal_backoff_time = 300s, maximal_backoff_time = 4000s.
    delays = [backoff(attempt, 300, 4000) for attempt in range(1, 9)]
    assert delays == [300, 600, 1200, 2400, 4000, 4000, 4000, 4000]
    assert backoff(0, 300, 4000) == 300
    assert backoff(100_000, 300, 4000) == 4000  # days of retries with a tiny max_backoff must not overflow
    assert backoff(100_000, 0.2, 1.0) == 1.0
    assert backoff(3, 500, 400) == 500  # a misconfigured maximum never makes retries faster than the minimum
    five_days, waited, tries = 5 * 86400, 0.0, 0
    while waited < five_days:
        tries += 1
        waited += backoff(tries, 300, 4000)
    assert 100 <= tries <= 115  # about as many tries as Postfix makes before its 5-day bounce


@pytest.mark.postfix
def test_a_message_past_max_lifetime_bounces_with_status_4_4_7(make_gateway, postfix):
    # Outside recipients go through relay_url, which is down; the DSN to the local sender goes to Postfix.
    gateway = make_gateway({"deliver": {"max_lifetime": "1s", "relay_url": dead_url()}}, deliver_url=postfix.url)
    database = gateway.runtime.database
    send(
        gateway.port,
        "sortiz@example.gov",
        ["someone@example.net"],
        message_bytes(to="someone@example.net", subject="Permit"),
    )
    [notice] = postfix.wait_for(1)
    assert notice.rcpt == "sortiz@example.gov" and notice.return_path == "<>"
    report, [block] = delivery_status(notice)
    assert block["Final-Recipient"] == "rfc822; someone@example.net"
    assert (block["Action"], block["Status"]) == ("failed", "4.4.7")
    assert "451 4.4.1" in block["Diagnostic-Code"]
    assert "stopped trying" in report.get_payload()[0].get_payload()
    row = by_rcpt(database)["someone@example.net"]
    assert row["state"] == queue.BOUNCED and row["attempts"] >= 2
    assert len(generated_records(database)) == 1


@pytest.mark.postfix
@pytest.mark.parametrize("failure", ["refused", "expired"])
def test_a_null_sender_never_gets_a_dsn(make_gateway, postfix, failure):
    gateway = make_gateway({"deliver": {"max_lifetime": "1s", "relay_url": dead_url()}}, deliver_url=postfix.url)
    database = gateway.runtime.database
    failing = "bounce-me@example.org" if failure == "refused" else "someone@example.net"
    send(gateway.port, "", [failing, "dwhitfield@example.gov"], message_bytes(sender="mailer-daemon@example.gov"))
    wait_until(lambda: by_rcpt(database).get(failing, {}).get("state") == queue.BOUNCED, what=f"{failing} bounced")
    postfix.wait_for(1)
    time.sleep(0.5)  # time enough for a DSN to be queued and delivered, were there one
    assert [d.rcpt for d in postfix.messages()] == ["dwhitfield@example.gov"]
    assert generated_records(database) == []
    assert all(row["origin"] == "relay" for row in rows(database))


# -- the admin's retry --------------------------------------------------------


@pytest.mark.postfix
def test_queue_retry_makes_a_deferred_message_due_now(make_gateway, postfix, capsys):
    postfix.stop()
    gateway = make_gateway({"deliver": {"min_backoff": "1h", "max_backoff": "2h"}}, deliver_url=postfix.url)
    database = gateway.runtime.database
    message_id = send(gateway.port, "sortiz@example.gov", ["dwhitfield@example.gov"])
    row = wait_until(
        lambda: rows(database, queue.QUEUED)[0] if rows(database, queue.QUEUED)[0]["attempts"] else None,
        what="the first attempt",
    )
    assert row["next_attempt_at"].replace(tzinfo=None) > (utcnow() + timedelta(minutes=50)).replace(tzinfo=None)
    postfix.start()
    time.sleep(1.0)  # ten polls: nothing is due, nothing goes out
    assert postfix.messages() == []
    assert cli.main(["--config", str(gateway.config.path), "queue", "retry", message_id]) == 0
    assert "1 recipients will be tried again now" in capsys.readouterr().out
    [delivered] = postfix.wait_for(1, timeout=10)
    assert delivered.rcpt == "dwhitfield@example.gov"
    wait_until(lambda: rows(database, queue.DELIVERED), what="the delivered row")


# -- leases: a crash mid-delivery never strands a recipient ----------------------


@pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_a_delivery_that_died_mid_way_is_claimed_again_after_its_lease(database_url):
    database = Database(database_url)
    database.create_schema()
    t0 = utcnow()
    with database.write() as connection:
        queue.enqueue(
            connection,
            message_id="M1",
            blob_sha256="0" * 64,
            mail_from="a@example.gov",
            rcpts=["b@example.gov", "c@example.gov"],
            origin="relay",
            at=t0,
        )
        [work] = queue.claim_due(connection, "crashed-runner", 60, 10, now=t0)
    assert len(work.recipients) == 2  # ... and the runner dies before recording anything
    with database.write() as connection:
        assert queue.claim_due(connection, "other", 60, 10, now=t0 + timedelta(seconds=30)) == []
    with database.write() as connection:
        [again] = queue.claim_due(connection, "other", 60, 10, now=t0 + timedelta(seconds=61))
    assert [r.rcpt for r in again.recipients] == ["b@example.gov", "c@example.gov"]
    database.dispose()


@pytest.mark.parametrize(
    "database_url", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)], indirect=True
)
def test_release_leases_frees_only_the_restarted_runners_own_claims(database_url):
    database = Database(database_url)
    database.create_schema()
    with database.write() as connection:
        for n in range(2):
            queue.enqueue(
                connection,
                message_id=f"M{n}",
                blob_sha256="0" * 64,
                mail_from="a@example.gov",
                rcpts=["b@example.gov"],
                origin="relay",
            )
        [mine] = queue.claim_due(connection, "me", 3600, 1)
        [theirs] = queue.claim_due(connection, "them", 3600, 1)
    assert mine.message_id != theirs.message_id
    with database.write() as connection:
        assert queue.release_leases(connection, "me") == 1
        [reclaimed] = queue.claim_due(connection, "me", 3600, 10)
    assert reclaimed.message_id == mine.message_id  # theirs stays leased to its (live) owner
    database.dispose()


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_claim_due_limits_deliveries_and_leases_only_what_it_returns(database_url):
    database = Database(database_url)
    database.create_schema()
    with database.write() as connection:
        for n in range(5):
            queue.enqueue(
                connection,
                message_id=f"M{n}",
                blob_sha256="0" * 64,
                mail_from="a@example.gov",
                rcpts=["b@example.gov", "c@example.gov"],
                origin="relay",
            )
        first = queue.claim_due(connection, "one", 3600, 2)
        rest = queue.claim_due(connection, "two", 3600, 100)
    assert [w.message_id for w in first] == ["M0", "M1"] and all(len(w.recipients) == 2 for w in first)
    assert [w.message_id for w in rest] == ["M2", "M3", "M4"]  # not leased by the first claim
    database.dispose()


def test_a_backlog_with_concurrency_1_is_delivered_without_waiting_for_leases(make_gateway, sink):
    # Work claimed but not started would sit leased for timeout*3+60 = 90s.
    sink.handler.data_reply = "451 4.3.0 busy, try again later"  # let a backlog build up
    gateway = make_gateway({"deliver": {"concurrency": 1}})
    database = gateway.runtime.database
    for n in range(6):
        send(gateway.port, "sortiz@example.gov", ["dwhitfield@example.gov"], message_bytes(subject=f"Backlog {n}"))
    wait_until(lambda: all(r["attempts"] >= 1 for r in rows(database)), what="every message tried once")
    sink.handler.data_reply = None
    sink.wait_for(6, timeout=15)
    wait_until(lambda: len(rows(database, queue.DELIVERED)) == 6, what="six delivered rows")


def test_a_restarted_runner_takes_back_its_own_leases_at_once(tmp_path, database_url, make_gateway, sink):
    """Simulate a gateway killed mid-delivery: its claims (1h leases) are in the database when it starts again."""
    folder = tmp_path / "restarted"
    config_path = folder / "aup-milter.toml"
    database = Database(database_url)
    database.create_schema()
    digest = BlobStore(folder / "blobs").put(message_bytes(subject="Left behind"))
    with database.write() as connection:
        for name in ("mine", "someone-elses"):
            queue.enqueue(
                connection,
                message_id=name,
                blob_sha256=digest,
                mail_from="sortiz@example.gov",
                rcpts=["dwhitfield@example.gov"],
                origin="relay",
            )
        queue.claim_due(connection, f"{socket.gethostname()}:{config_path}", 3600, 1)
        queue.claim_due(connection, "another-host:/etc/aup-milter.toml", 3600, 1)
    database.dispose()
    gateway = make_gateway(folder=folder)
    assert Path(gateway.config.path) == config_path
    sink.wait_for(1, timeout=10)
    time.sleep(0.5)
    assert len(sink.messages) == 1  # the other host's lease is still respected
    assert {r["message_id"]: r["state"] for r in rows(gateway.runtime.database)} == {
        "mine": queue.DELIVERED,
        "someone-elses": queue.QUEUED,
    }


def send_one(gateway, number: int) -> None:
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client:
        client.sendmail("sortiz@example.gov", ["dwhitfield@example.gov"], message_bytes(subject=f"reuse {number}"))


def test_consecutive_deliveries_reuse_one_downstream_session(make_gateway, sink):
    gateway = make_gateway({"deliver": {"concurrency": 1}})
    for number in range(4):
        send_one(gateway, number)
        sink.wait_for(number + 1)
    assert [m.data.count(b"Subject: reuse ") for m in sink.messages] == [1, 1, 1, 1]
    assert sink.handler.sessions == 1


def test_a_reused_session_the_downstream_closed_is_replaced_without_losing_the_message(make_gateway, sink):
    gateway = make_gateway({"deliver": {"concurrency": 1}})
    send_one(gateway, 1)
    sink.wait_for(1)
    sink.stop()  # closes the idle session the gateway kept
    sink.start()
    send_one(gateway, 2)
    received = sink.wait_for(2)
    assert b"Subject: reuse 2" in received[1].data
    with gateway.runtime.database.read() as connection:
        rows = queue.listing(connection, state=None)
    assert {row["state"] for row in rows} == {"delivered"}
    assert all(row["attempts"] == 1 for row in rows)  # the dead session cost no retry
