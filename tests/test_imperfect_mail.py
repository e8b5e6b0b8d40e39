"""Real mail that is not RFC-perfect: long lines, bare LF, 8-bit headers, missing Date and Message-ID.

Each goes through a real SMTP client, the gateway and a real Postfix downstream
(its Maildir, LF line ends, proves what arrived) and the archive (its blob
proves what was kept).
"""

from __future__ import annotations

import smtplib
import time
from pathlib import Path

import pytest

from archive import index, records, search
from milter.config import load_config
from milter.kernel.settings import ConfigError
from milter.mail.message import normalise_line_endings
from tests.conftest import TRUSTED, RunningGateway, write_config
from tests.support.spamassassin import corpus, without_mbox_line
from tests.test_check_corpus import cpython_email_corpus
from tests.test_postfix import as_stored, received_by_gateway

pytestmark = pytest.mark.postfix

LONG_LINE_HAM = "easy-ham-1/02456.2d80a710374d58fdaec212af6d791179.txt"  # a 1,114-byte line in the body


def spamassassin_message(name: str) -> bytes:
    raw, _ = normalise_line_endings(without_mbox_line((corpus() / name).read_bytes()))
    return raw


def transaction(port: int, data: bytes, rcpt: str = "dwhitfield@example.gov") -> tuple[int, str]:
    """One message over SMTP from the agency's mail server; DATA's reply, for the message id it names."""
    with smtplib.SMTP("127.0.0.1", port, source_address=(TRUSTED, 0)) as client:
        client.ehlo("mail.example.gov")
        assert client.mail("sortiz@example.gov")[0] == 250
        assert client.rcpt(rcpt)[0] == 250
        code, reply = client.data(data)
        return code, reply.decode()


def accepted_id(port: int, data: bytes) -> str:
    code, reply = transaction(port, data)
    assert code == 250, reply
    return reply.rsplit(" as ", 1)[1]


def archived(gateway: RunningGateway, message_id: str) -> tuple[dict, bytes]:
    with gateway.runtime.database.read() as connection:
        [record] = [r for r in records.records_for(connection, message_id) if r["kind"] == "received"]
    return record, gateway.runtime.blobs.get(record["blob_sha256"], verify=True)


def test_the_default_line_length_limit_accepts_what_postfix_accepts(tmp_path: Path, database_url: str):
    settings = load_config(write_config(tmp_path, database_url, "maildir:outbox")).settings.smtp
    assert settings.line_length_limit >= 2048  # Postfix's line_length_limit; it accepts longer lines still


@pytest.mark.parametrize("value", [997, "65MiB", "lots"])
def test_a_line_length_limit_out_of_range_names_the_key_and_the_fix(tmp_path: Path, database_url: str, value):
    path = write_config(tmp_path, database_url, "maildir:outbox", {"smtp": {"line_length_limit": value}})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert "smtp.line_length_limit" in str(caught.value)
    assert "998" in str(caught.value)


def test_real_ham_with_a_1114_byte_line_is_delivered_and_archived_unchanged(make_gateway, postfix):
    data = spamassassin_message(LONG_LINE_HAM)
    assert max(len(line) for line in data.split(b"\r\n")) == 1114
    gateway = make_gateway(deliver_url=postfix.url)
    message_id = accepted_id(gateway.port, data)
    [delivered] = postfix.wait_for(1)
    # Not folded: the downstream takes long lines. Postfix's cleanup drops a Return-Path header
    # from incoming mail (its delivery agent writes its own): the message's 2002 one goes.
    assert data.startswith(b"Return-Path: <sentto-")
    assert received_by_gateway(delivered) == as_stored(data.split(b"\r\n", 1)[1])
    record, blob = archived(gateway, message_id)
    assert blob == data
    assert record["action"] == "deliver"


def test_a_line_over_the_limit_is_refused_for_good_with_postfix_code_and_the_session_goes_on(make_gateway, postfix):
    gateway = make_gateway({"smtp": {"line_length_limit": 2048}}, deliver_url=postfix.url)
    head = b"From: sortiz@example.gov\r\nTo: dwhitfield@example.gov\r\nSubject: minutes\r\n\r\n"
    refusals = gateway.runtime.metrics.refusals.labels(stage="DATA", code="552")
    refused_before = refusals._value.get()
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client:
        client.ehlo("mail.example.gov")
        client.mail("sortiz@example.gov")
        client.rcpt("dwhitfield@example.gov")
        code, reply = client.data(head + b"x" * 2049 + b"\r\n")
        assert (code, reply.split(b" ", 1)[0]) == (552, b"5.3.4")
        assert b"longer than 2048 bytes" in reply
        client.mail("sortiz@example.gov")
        client.rcpt("dwhitfield@example.gov")
        code, reply = client.data(head + b"x" * 2048 + b"\r\n")  # exactly the limit: accepted
        assert code == 250, reply
    [delivered] = postfix.wait_for(1)
    assert received_by_gateway(delivered).endswith(b"\n" + b"x" * 2048 + b"\n")
    assert refusals._value.get() == refused_before + 1


def test_bare_lf_line_ends_from_an_old_client_arrive_as_crlf(make_gateway, postfix):
    # Over 1001 bytes with no CRLF before the end: aiosmtpd used to read it as one long line.
    lines = [b"From: sortiz@example.gov", b"To: dwhitfield@example.gov", b"Subject: Old client", b""]
    lines += [b"Line %d of a report from a 1990s mail program." % n for n in range(60)]
    gateway = make_gateway(deliver_url=postfix.url)
    message_id = accepted_id(gateway.port, b"\n".join(lines) + b"\r\n")
    crlf = b"\r\n".join(lines) + b"\r\n"
    [delivered] = postfix.wait_for(1)
    assert received_by_gateway(delivered) == as_stored(crlf)
    _, blob = archived(gateway, message_id)
    assert blob == crlf


def test_a_message_without_date_or_message_id_is_accepted_and_archived_as_sent(make_gateway, postfix):
    data = b"From: sortiz@example.gov\r\nTo: dwhitfield@example.gov\r\nSubject: No date\r\n\r\nFrom a scanner.\r\n"
    gateway = make_gateway(deliver_url=postfix.url)
    message_id = accepted_id(gateway.port, data)
    record, blob = archived(gateway, message_id)
    assert blob == data  # the gateway adds neither header: the downstream's cleanup decides
    assert (record["header_date"], record["header_message_id"], record["action"]) == (None, None, "deliver")
    [delivered] = postfix.wait_for(1)
    assert received_by_gateway(delivered).endswith(as_stored(data))


@pytest.mark.parametrize(
    ("raw_subject", "subject", "word"),
    [
        (
            "Grüße aus dem Rathaus: Straßensperrung".encode(),
            "Grüße aus dem Rathaus: Straßensperrung",
            "straßensperrung",
        ),
        ("Réunion du comité à Montréal".encode("latin-1"), "Réunion du comité à Montréal", "comité"),
    ],
    ids=["utf-8", "latin-1"],
)
def test_raw_8bit_headers_are_archived_decoded_and_searchable(make_gateway, postfix, raw_subject, subject, word):
    data = (
        b"From: sortiz@example.gov\r\nTo: dwhitfield@example.gov\r\nSubject: " + raw_subject + b"\r\n"
        b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMessage-ID: <8bit@example.gov>\r\n\r\nSee the subject.\r\n"
    )
    gateway = make_gateway(deliver_url=postfix.url)
    message_id = accepted_id(gateway.port, data)
    record, blob = archived(gateway, message_id)
    assert blob == data
    assert record["subject"] == subject
    [delivered] = postfix.wait_for(1)
    assert received_by_gateway(delivered) == as_stored(data)
    index.indexer_for(gateway.runtime).run()
    with gateway.runtime.database.read() as connection:
        assert [hit["subject"] for hit in search.search(connection, word).hits] == [subject]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)  # about 4 minutes: one database is enough
def test_every_message_of_the_real_corpora_gets_a_decision_over_smtp(make_gateway, capsys):
    """SpamAssassin ham and spam and CPython's email tests: no 4xx (a crash), no 500 or 552 (a limit)."""
    data = corpus()
    paths = [*sorted(data.glob("*/*.txt")), *cpython_email_corpus()]
    assert len(paths) > 6000
    gateway = make_gateway()
    replies: dict[str, list[str]] = {}
    started = time.monotonic()
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0)) as client:
        client.ehlo("mail.example.gov")
        for path in paths:
            raw, _ = normalise_line_endings(without_mbox_line(path.read_bytes()))
            client.mail("sortiz@example.gov")
            client.rcpt("dwhitfield@example.gov")
            try:
                code, reply = client.data(raw)
            except smtplib.SMTPDataError as exc:  # refused before the data: keep going
                code, reply = exc.smtp_code, exc.smtp_error
                client.rset()
            replies.setdefault(f"{code} {reply.decode()[:9]}", []).append(path.name)
    failed = {key: names for key, names in replies.items() if not key.startswith(("250", "550 5.7", "554 5.7"))}
    with capsys.disabled():
        counts = ", ".join(f"{key}: {len(names)}" for key, names in sorted(replies.items()))
        print(f"\nreal corpora over SMTP: {len(paths)} messages in {time.monotonic() - started:.0f} s; {counts}")
    assert failed == {}
