"""The relay's SMTP behaviour as an outside client sees it, over real SMTP.

Each test starts the real Gateway (SQLite and PostgreSQL) with the aiosmtpd
sink as its downstream, and talks to it with smtplib, a raw socket, or swaks.
"""

from __future__ import annotations

import asyncio
import errno
import smtplib
import subprocess
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from archive import records
from milter.delivery import queue
from tests.conftest import EXAMPLE_DIRECTORY, TRUSTED, message_bytes
from tests.support.smtp_raw import OUTSIDE, RawSMTP, received_records, settle, stored_state

OUTSIDE_SENDER = "pat@partner.org"
ALIAS = "robin.kim@example.gov"  # an alias of rkim@example.gov, added to the example directory below


def inbound_message(to: str = "dwhitfield@example.gov", **kwargs: str) -> bytes:
    return message_bytes(sender=OUTSIDE_SENDER, to=to, **kwargs)


def directory_file(folder: Path, *, check_recipients: bool = True) -> str:
    """The example directory plus a person with an alias; optionally without RCPT checks."""
    folder.mkdir(parents=True, exist_ok=True)
    text = EXAMPLE_DIRECTORY.read_text()
    if not check_recipients:
        text = text.replace("check_recipients = true", "check_recipients = false")
    text += '\n[[people]]\naddress = "rkim@example.gov"\nname = "Robin Kim"\naliases = ["robin.kim@example.gov"]\n'
    path = folder / "directory.toml"
    path.write_text(text)
    return str(path)


def rcpt_reply(port: int, address: str, source: str = OUTSIDE, mail_from: str = OUTSIDE_SENDER) -> str:
    """The reply to RCPT TO:<address>, sent byte for byte as written."""
    with RawSMTP(port, source) as client:
        assert client.ehlo().code == 250
        assert client.command(f"MAIL FROM:<{mail_from}>").code == 250
        reply = client.command(f"RCPT TO:<{address}>" if not address.startswith("<") else f"RCPT TO:{address}")
        client.command("QUIT")
    return str(reply)


# -- 1. no open relay --------------------------------------------------------

# What an attacker tries, and the safe answer. Routing tricks in the local part
# (%, !, a quoted @) are refused outright: a downstream server that honours
# them would relay outside. A source route is dropped by the parser (RFC 5321
# section 4.1.1.3 says to ignore it), leaving a remote address. A trailing dot
# is not a valid domain and is refused as malformed.
RELAY_ATTEMPTS = [
    ("someone@gmail.com", "550 5.7.1"),
    ("someone@GMAIL.COM", "550 5.7.1"),
    ("user%gmail.com@example.gov", "550 5.7.1"),
    ("user%gmail.com@EXAMPLE.GOV", "550 5.7.1"),
    ("@example.gov:user@gmail.com", "550 5.7.1"),
    ("@example.gov,@example.gov:user@gmail.com", "550 5.7.1"),
    ('"user@gmail.com"@example.gov', "550 5.7.1"),
    ('"user%gmail.com"@example.gov', "550 5.7.1"),
    ("gmail.com!user@example.gov", "550 5.7.1"),
    ("user@gmail.com.", "553 5.1.3"),
    ("dwhitfield@example.gov.", "553 5.1.3"),
    ("user@[127.0.0.2]", "550 5.7.1"),
    ("user@[IPv6:::1]", "550 5.7.1"),
    ("user@example.gov.gmail.com", "550 5.7.1"),
    ("user@mail.example.gov", "550 5.7.1"),
]


@pytest.mark.parametrize("address, expected", RELAY_ATTEMPTS, ids=[a for a, _ in RELAY_ATTEMPTS])
def test_outside_client_cannot_relay(make_gateway, sink, tmp_path, address, expected):
    # Recipient checks off: the routing defence must not depend on the directory listing people.
    gateway = make_gateway({"directory": {"path": directory_file(tmp_path / "dir", check_recipients=False)}})
    assert rcpt_reply(gateway.port, address).startswith(expected)
    settle(0.3)
    assert stored_state(gateway.runtime) == (0, 0, 0)
    assert sink.messages == []


@pytest.mark.parametrize(
    "address", ["user%gmail.com@example.gov", '"user@gmail.com"@example.gov', "gmail.com!user@example.gov"]
)
def test_routing_through_a_local_domain_is_refused_even_from_inside(gateway, address):
    """From inside it would pass as internal mail and skip the rules for mail leaving the agency."""
    assert rcpt_reply(gateway.port, address, source=TRUSTED, mail_from="sortiz@example.gov").startswith("550 5.7.1")


LOCAL_FORMS = [
    "dwhitfield@example.gov",
    "DWhitfield@EXAMPLE.GOV",
    '"dwhitfield"@example.gov',
    "<dwhitfield@Example.Gov>",
]


@pytest.mark.parametrize("address", LOCAL_FORMS)
def test_outside_client_reaches_local_recipients_in_any_case(gateway, address):
    assert rcpt_reply(gateway.port, address).startswith("250 2.1.5")


def test_outside_message_to_a_local_recipient_is_delivered_but_gmail_is_refused(gateway, sink):
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(OUTSIDE, 0)) as client:
        refused = client.sendmail(OUTSIDE_SENDER, ["dwhitfield@example.gov", "someone@gmail.com"], inbound_message())
    assert set(refused) == {"someone@gmail.com"}
    assert refused["someone@gmail.com"][0] == 550 and refused["someone@gmail.com"][1].startswith(b"5.7.1")
    delivered = sink.wait_for(1)
    assert [m.rcpt_tos for m in delivered] == [["dwhitfield@example.gov"]]
    assert [(r.direction, r.rcpt_to) for r in received_records(gateway.runtime)] == [
        ("inbound", ["dwhitfield@example.gov"])
    ]


def test_trusted_mail_server_may_send_anywhere(gateway, sink):
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client:
        refused = client.sendmail(
            "sortiz@example.gov", ["someone@gmail.com", "dwhitfield@example.gov"], message_bytes(to="someone@gmail.com")
        )
    assert refused == {}
    assert sorted(sink.wait_for(1)[0].rcpt_tos) == ["dwhitfield@example.gov", "someone@gmail.com"]
    assert [r.direction for r in received_records(gateway.runtime)] == ["outbound"]


def test_swaks_outside_relay_attempt_is_refused_and_trusted_send_goes_through(gateway, sink):
    base = ["swaks", "--server", "127.0.0.1", "--port", str(gateway.port), "--helo", "client.test", "--timeout", "15"]
    outside = subprocess.run(
        [*base, "--local-interface", OUTSIDE, "--from", OUTSIDE_SENDER, "--to", "someone@gmail.com"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert outside.returncode != 0
    assert "<** 550 5.7.1" in outside.stdout
    assert "<-  354" not in outside.stdout  # DATA never started (the reply, not a port number)
    trusted = subprocess.run(
        [
            *base,
            "--local-interface",
            TRUSTED,
            "--from",
            "sortiz@example.gov",
            "--to",
            "someone@gmail.com",
            "--header",
            "Subject: from swaks",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert trusted.returncode == 0, trusted.stdout + trusted.stderr
    delivered = sink.wait_for(1)
    assert [m.rcpt_tos for m in delivered] == [["someone@gmail.com"]]
    assert b"Subject: from swaks" in delivered[0].data


# -- 2. recipients checked at RCPT time -----------------------------------------


@pytest.mark.parametrize(
    "address, expected",
    [
        ("nobody-here@example.gov", "550 5.1.1"),
        ("all-staff@example.gov", "250 2.1.5"),  # a group
        ("public-works-team@example.gov", "250 2.1.5"),  # a group with members
        (ALIAS, "250 2.1.5"),  # a person's alias
        ("postmaster", "250 2.1.5"),  # RFC 5321 section 4.5.1: no domain needed
        ("Postmaster@EXAMPLE.GOV", "250 2.1.5"),
        ("no-domain", "550 5.1.3"),
    ],
)
def test_recipients_are_checked_at_rcpt_time(make_gateway, tmp_path, address, expected):
    gateway = make_gateway({"directory": {"path": directory_file(tmp_path / "dir")}})
    assert rcpt_reply(gateway.port, address).startswith(expected)


def test_postmaster_without_domain_is_delivered_to_the_local_postmaster(gateway, sink):
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(OUTSIDE, 0)) as client:
        assert client.sendmail(OUTSIDE_SENDER, ["postmaster"], inbound_message(to="postmaster")) == {}
    assert sink.wait_for(1)[0].rcpt_tos == ["postmaster@example.gov"]


def test_null_sender_bounce_reaches_a_local_recipient(gateway, sink):
    """Bounces (MAIL FROM:<>) from the internet must be accepted, not refused for a 'missing' sender."""
    with RawSMTP(gateway.port, OUTSIDE) as client:
        client.ehlo()
        assert client.command("MAIL FROM:<>").code == 250
        assert str(client.command("RCPT TO:<dwhitfield@example.gov>")).startswith("250 2.1.5")
        assert client.command("DATA").code == 354
        client.send(inbound_message(subject="Undelivered Mail Returned to Sender") + b".\r\n")
        assert str(client.reply()).startswith("250 2.0.0")
        assert client.command("MAIL FROM:<>").code == 250  # the transaction was reset, not "nested MAIL"
        client.command("QUIT")
    delivered = sink.wait_for(1)[0]
    assert (delivered.mail_from, delivered.rcpt_tos) == ("<>", ["dwhitfield@example.gov"])
    assert received_records(gateway.runtime)[0].mail_from == ""


def test_too_many_recipients_are_deferred_and_the_rest_delivered(make_gateway, sink):
    gateway = make_gateway({"smtp": {"max_recipients": 3}})
    rcpts = ["dwhitfield@example.gov", "lpark@example.gov", "sortiz@example.gov", "jdoe@example.gov"]
    with RawSMTP(gateway.port, OUTSIDE) as client:
        client.ehlo()
        client.command(f"MAIL FROM:<{OUTSIDE_SENDER}>")
        replies = [str(client.command(f"RCPT TO:<{r}>")) for r in rcpts]
        assert [r[:9] for r in replies] == ["250 2.1.5"] * 3 + ["452 4.5.3"]
        assert client.command("DATA").code == 354
        client.send(inbound_message() + b".\r\n")
        assert client.reply().code == 250
        client.command("QUIT")
    assert sink.wait_for(1)[0].rcpt_tos == rcpts[:3]


# -- 3. size ---------------------------------------------------------------------


def test_size_is_advertised_and_a_huge_size_declaration_is_refused_at_mail(make_gateway):
    gateway = make_gateway({"smtp": {"max_message_size": "4KiB"}})
    with RawSMTP(gateway.port, OUTSIDE) as client:
        assert "SIZE 4096" in client.ehlo().text.splitlines()
        assert client.command(f"MAIL FROM:<{OUTSIDE_SENDER}> SIZE=1000000000").code == 552
        assert client.command(f"MAIL FROM:<{OUTSIDE_SENDER}> SIZE=4000").code == 250
    assert stored_state(gateway.runtime) == (0, 0, 0)


def test_message_larger_than_the_limit_gets_552_and_nothing_is_kept(make_gateway, sink):
    gateway = make_gateway({"smtp": {"max_message_size": "4KiB"}})
    big = inbound_message(body=("y" * 70 + "\r\n") * 100)  # about 7 KiB
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(OUTSIDE, 0)) as client:
        client.ehlo()
        client.esmtp_features.pop("size")  # do not let smtplib declare the size: make the server count
        with pytest.raises(smtplib.SMTPDataError) as refused:
            client.sendmail(OUTSIDE_SENDER, ["dwhitfield@example.gov"], big)
        assert refused.value.smtp_code == 552
        # The session is still usable and a small message goes through.
        assert client.sendmail(OUTSIDE_SENDER, ["dwhitfield@example.gov"], inbound_message(subject="small")) == {}
    delivered = sink.wait_for(1)
    settle(0.3)
    assert len(sink.messages) == 1 and b"Subject: small" in delivered[0].data
    assert [r.subject for r in received_records(gateway.runtime)] == ["small"]


def test_low_disk_space_refuses_new_mail_with_452(make_gateway):
    gateway = make_gateway({"smtp": {"min_free_space": "999999GiB"}})
    with RawSMTP(gateway.port, TRUSTED) as client:
        client.ehlo()
        assert str(client.command("MAIL FROM:<sortiz@example.gov>")).startswith("452 4.3.1")


# -- 4. CR, LF or NUL inside MAIL and RCPT arguments -----------------------------

BAD_MAIL = [
    b"MAIL FROM:<a\rb@partner.org>",
    b"MAIL FROM:<a\x00b@partner.org>",
    b"MAIL FROM:<a\nb@partner.org>",
    b"MAIL FROM:<pat@partner.org\r>",
    b"MAIL FROM:<pat@partner.org>\rRCPT TO:<dwhitfield@example.gov>",
    b"MAIL FROM:<pat@partner.org\x00>",
    b"MAIL FROM:<pat@partner.org> \x00",
]
BAD_RCPT = [
    b"RCPT TO:<dwhit\rfield@example.gov>",
    b"RCPT TO:<dwhit\x00field@example.gov>",
    b"RCPT TO:<dwhit\nfield@example.gov>",
    b"RCPT TO:<someone@gmail.com\x00@example.gov>",
    b"RCPT TO:<dwhitfield@example.gov\r>",
    b"RCPT TO:<dwhitfield@example.gov>\rDATA",
    b"RCPT TO:<someone@gmail.com>\x00<dwhitfield@example.gov>",
]


@pytest.mark.parametrize("line", BAD_MAIL, ids=repr)
def test_cr_lf_or_nul_in_mail_from_is_refused(gateway, sink, line):
    with RawSMTP(gateway.port, OUTSIDE) as client:
        client.ehlo()
        client.send(line + b"\r\n")
        replies = client.replies()  # two when a bare LF split the line: the fragment is junk too
        assert replies and all(500 <= r.code < 600 for r in replies), replies
        rcpt = client.command("RCPT TO:<dwhitfield@example.gov>")
        assert rcpt.code == 503, rcpt  # no sender was accepted
        assert client.command("DATA").code == 503
    settle(0.3)
    assert stored_state(gateway.runtime) == (0, 0, 0)
    assert sink.messages == []


@pytest.mark.parametrize("line", BAD_RCPT, ids=repr)
def test_cr_lf_or_nul_in_rcpt_to_is_refused(gateway, sink, line):
    with RawSMTP(gateway.port, OUTSIDE) as client:
        client.ehlo()
        assert client.command(f"MAIL FROM:<{OUTSIDE_SENDER}>").code == 250
        client.send(line + b"\r\n")
        replies = client.replies()
        assert replies and all(500 <= r.code < 600 for r in replies), replies
        data = client.command("DATA")
        assert data.code == 503, data  # no recipient was accepted
    settle(0.3)
    assert stored_state(gateway.runtime) == (0, 0, 0)
    assert sink.messages == []


# -- 7. internal failures answer 4xx ----------------------------------------------


def send_trusted(gateway, subject: str = "Hello") -> smtplib.SMTPResponseException | None:
    """Send one internal message from the trusted server; returns the refusal, if any."""
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client:
        try:
            client.sendmail("sortiz@example.gov", ["dwhitfield@example.gov"], message_bytes(subject=subject))
        except smtplib.SMTPResponseException as exc:
            return exc
    return None


def reply_of(exc: smtplib.SMTPResponseException | None) -> str:
    assert exc is not None, "the gateway accepted the message"
    return f"{exc.smtp_code} {exc.smtp_error.decode()}"


@pytest.mark.parametrize(
    "error, expected",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "452 4.3.1"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "452 4.3.1"),
        (OSError(errno.EROFS, "Read-only file system"), "451 4.3.0"),
        (RuntimeError("the blob store is broken"), "451 4.3.0"),
    ],
    ids=["ENOSPC", "EDQUOT", "EROFS", "RuntimeError"],
)
def test_blob_store_failure_answers_4xx_and_keeps_nothing(gateway, sink, monkeypatch, error, expected):
    def broken_put(data: bytes) -> str:
        raise error

    monkeypatch.setattr(gateway.runtime.blobs, "put", broken_put)
    assert reply_of(send_trusted(gateway)).startswith(expected)
    monkeypatch.undo()
    assert send_trusted(gateway, subject="after the disk was fixed") is None  # the client's retry works
    sink.wait_for(1)
    settle(0.3)
    assert [m.data.count(b"Subject: after the disk was fixed") for m in sink.messages] == [1]
    assert stored_state(gateway.runtime) == (1, 1, 1)


def test_failure_inside_the_transaction_rolls_back_the_archive_record_too(gateway, sink, monkeypatch):
    """The archive record is written, then queueing fails: the client hears 451 and no record survives."""

    def failing_enqueue(*args, **kwargs):
        raise RuntimeError("the deliver queue table is broken")

    monkeypatch.setattr(queue, "enqueue", failing_enqueue)
    assert reply_of(send_trusted(gateway)).startswith("451 4.3.0")
    settle(0.3)
    assert stored_state(gateway.runtime) == (0, 0, 0)
    assert sink.messages == []


def _policy(gateway, name: str):
    return next(p for p in gateway.runtime.pipeline.policies if p.name == name)


def test_a_rule_that_raises_answers_451_and_nothing_is_accepted(gateway, sink, monkeypatch):
    def crash(message):
        raise ValueError("the rule has a bug")

    monkeypatch.setattr(_policy(gateway, "anonymous_sender"), "check", crash)
    assert reply_of(send_trusted(gateway)).startswith("451 4.3.0")
    _assert_not_accepted(gateway, sink)


def test_a_rule_past_its_time_budget_answers_451_and_nothing_is_accepted(make_gateway, sink, monkeypatch):
    gateway = make_gateway({"pipeline": {"rule_timeout": "0.2s"}})

    def slow(message):
        time.sleep(1.0)
        return []

    monkeypatch.setattr(_policy(gateway, "anonymous_sender"), "check", slow)
    started = time.monotonic()
    assert reply_of(send_trusted(gateway)).startswith("451 4.3.0")
    assert time.monotonic() - started < 0.9, "the reply waited for the slow rule"
    _assert_not_accepted(gateway, sink)


def _assert_not_accepted(gateway, sink) -> None:
    settle(0.3)
    actions = [r.action for r in received_records(gateway.runtime)]
    assert not {"deliver", "hold"} & set(actions), actions
    assert stored_state(gateway.runtime)[1:] == (0, 0)
    assert sink.messages == []


def test_an_unexpected_error_while_handling_data_answers_451_and_resets_the_transaction(gateway, sink, monkeypatch):
    async def broken_run(message):
        raise RuntimeError("pipeline exploded")

    monkeypatch.setattr(gateway.runtime.pipeline, "run", broken_run)
    with RawSMTP(gateway.port, TRUSTED) as client:
        client.ehlo()
        client.command("MAIL FROM:<sortiz@example.gov>")
        client.command("RCPT TO:<dwhitfield@example.gov>")
        assert client.command("DATA").code == 354
        client.send(message_bytes() + b".\r\n")
        assert str(client.reply()).startswith("451 4.3.0")
        # The failed transaction is over: a new MAIL starts a fresh one.
        assert client.command("MAIL FROM:<sortiz@example.gov>").code == 250
        assert client.command("DATA").code == 503
    _assert_not_accepted(gateway, sink)


# -- 8. a client that disconnects mid-commit --------------------------------------


def _slow_commit(gateway, monkeypatch) -> None:
    original = gateway.runtime.committer.run

    async def slow_run(work):
        await asyncio.sleep(0.5)
        return await original(work)

    monkeypatch.setattr(gateway.runtime.committer, "run", slow_run)


def _slow_transaction(gateway, monkeypatch) -> None:
    original = queue.enqueue

    def slow_enqueue(*args, **kwargs):
        time.sleep(0.5)  # in the committer thread, inside the open transaction
        return original(*args, **kwargs)

    monkeypatch.setattr(queue, "enqueue", slow_enqueue)


@pytest.mark.parametrize("slow_down", [_slow_commit, _slow_transaction], ids=["before-commit", "inside-transaction"])
def test_client_disconnecting_mid_commit_leaves_all_or_nothing(gateway, sink, monkeypatch, slow_down):
    slow_down(gateway, monkeypatch)
    with RawSMTP(gateway.port, OUTSIDE) as client:
        client.ehlo()
        client.command(f"MAIL FROM:<{OUTSIDE_SENDER}>")
        client.command("RCPT TO:<dwhitfield@example.gov>")
        assert client.command("DATA").code == 354
        client.send(inbound_message(subject="hung up") + b".\r\n")
    # The socket is closed before any reply. Wait for the gateway to finish whatever it started.
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and not (stored_state(gateway.runtime)[0] and sink.messages):
        time.sleep(0.05)
    settle(0.5)
    records_count, deliveries, rcpts = stored_state(gateway.runtime)
    assert (records_count, deliveries, rcpts) in {(0, 0, 0), (1, 1, 1)}
    assert len(sink.messages) == records_count
    # The store is shielded from the disconnect: a message received in full is kept (the
    # client may retry and cause a duplicate, which is better than a loss).
    assert records_count == 1


# -- 9. mail loops ------------------------------------------------------------------


@pytest.mark.parametrize("hops, expected", [(5, "250"), (6, "554 5.4.6")])
def test_too_many_received_headers_is_a_loop(make_gateway, sink, hops, expected):
    gateway = make_gateway({"smtp": {"max_hops": 5}})
    received = "".join(
        f"Received: from relay{i}.partner.org by mx.partner.org; Mon, 23 Nov 2026 10:00:0{i % 10} +0000\r\n"
        for i in range(hops)
    )
    with RawSMTP(gateway.port, OUTSIDE) as client:
        client.ehlo()
        client.command(f"MAIL FROM:<{OUTSIDE_SENDER}>")
        client.command("RCPT TO:<dwhitfield@example.gov>")
        client.command("DATA")
        client.send(received.encode() + inbound_message() + b".\r\n")
        assert str(client.reply()).startswith(expected)
    if expected == "250":
        sink.wait_for(1)
    else:
        settle(0.3)
        assert sink.messages == []
        assert stored_state(gateway.runtime) == (1, 0, 0)  # archived with its verdict, never queued
        (record,) = received_records(gateway.runtime)
        assert (record.action, record.findings[0]["policy"]) == ("reject", "relay")


def test_archive_record_keeps_the_envelope(gateway, sink):
    with smtplib.SMTP(
        "127.0.0.1", gateway.port, source_address=(OUTSIDE, 0), local_hostname="mx.partner.org"
    ) as client:
        client.sendmail(OUTSIDE_SENDER, ["dwhitfield@example.gov"], inbound_message())
    sink.wait_for(1)
    with gateway.runtime.database.read() as connection:
        row = connection.execute(select(records.archive_record)).one()
    assert (row.client_ip, row.helo, row.mail_from, row.rcpt_to, row.auth_user) == (
        OUTSIDE,
        "mx.partner.org",
        OUTSIDE_SENDER,
        ["dwhitfield@example.gov"],
        None,
    )
