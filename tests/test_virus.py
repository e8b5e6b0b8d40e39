"""Virus scanning through a real ClamAV daemon (tests/support/fixtures_clamd.py) with a signature the test wrote itself.

A detection rejects; a scanner that cannot be reached or errs tempfails (451),
so nothing is accepted unscanned; a file larger than the scanner takes waits
for IT. Over real SMTP, on SQLite and on the real PostgreSQL server.
"""

from __future__ import annotations

import asyncio

import pytest

from policies.rules.virus import Clamd, ScannerError, VirusSettings, parse_reply
from quarantine import holds
from tests.support.fixtures_clamd import EICAR
from tests.support.quarantine_helpers import PDF, in_thread, mail, pdf, send, zip_of

PARTNER = "billing@partner.example.org"
SORTIZ = "sortiz@example.gov"


def partner_gateway(make_gateway, virus: dict) -> object:
    return make_gateway(
        {"policies": {"virus": virus, "unknown_sender": {"partners": {"senders": ["partner.example.org"]}}}}
    )


def test_eicar_is_refused_with_the_name_of_what_was_found(make_gateway, sink, clamd):
    gateway = partner_gateway(make_gateway, {"socket": str(clamd.socket_path)})
    code, reply = send(gateway.port, mail(("invoice.txt", EICAR, "text/plain"), sender=PARTNER), PARTNER, [SORTIZ])
    assert code == 554
    assert reply.startswith(f"5.7.1 A virus was found in invoice.txt ({clamd.detected_as})")
    code, reply = send(
        gateway.port,
        mail(("scans.zip", zip_of([("scan1.txt", EICAR)]), "application/zip"), sender=PARTNER),
        PARTNER,
        [SORTIZ],
    )
    assert code == 554  # the archive (clamd unpacks it) and the member (the gateway unpacked it) are both named
    assert reply.startswith(
        f"5.7.1 A virus was found in scans.zip ({clamd.detected_as}), scan1.txt (inside scans.zip) ({clamd.detected_as})"
    )
    with gateway.runtime.database.read() as connection:
        assert holds.listing(connection, state=None) == []
    assert sink.messages == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_clean_files_are_scanned_and_delivered_over_tcp_too(make_gateway, sink, clamd):
    gateway = partner_gateway(make_gateway, {"socket": clamd.tcp})
    raw = mail(
        ("quote.pdf", pdf(), PDF),
        ("notes.zip", zip_of([("notes.txt", b"all clean")]), "application/zip"),
        sender=PARTNER,
    )
    assert send(gateway.port, raw, PARTNER, [SORTIZ]) == (250, "")
    assert sink.wait_for(1)[0].rcpt_tos == [SORTIZ]
    log = clamd.log()
    assert "instream" in log.lower() or "OK" in log  # clamd saw the streams


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_scanner_that_cannot_be_reached_tempfails_the_message(make_gateway, sink, tmp_path):
    gateway = partner_gateway(make_gateway, {"socket": str(tmp_path / "no-clamd.sock")})
    code, reply = send(gateway.port, mail(("quote.pdf", pdf(), PDF), sender=PARTNER), PARTNER, [SORTIZ])
    assert code == 451 and reply.startswith("4.3.0")
    with gateway.runtime.database.read() as connection:
        assert holds.listing(connection, state=None) == []
    assert sink.messages == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_file_larger_than_the_scanner_takes_waits_for_it(make_gateway, sink, clamd):
    gateway = partner_gateway(make_gateway, {"socket": str(clamd.socket_path), "max_stream": "1KiB"})
    big = pdf("x" * 200) + b"%" + b"padding " * 400
    assert send(gateway.port, mail(("big.pdf", big, PDF), sender=PARTNER), PARTNER, [SORTIZ]) == (250, "")
    with gateway.runtime.database.read() as connection:
        [held] = holds.listing(connection, "quarantine")
    assert "big.pdf" in held["reason"] and "larger than the virus scanner takes (1.0 KB)" in held["reason"]


def test_clamd_answers_are_read_strictly(clamd):
    assert parse_reply("stream: OK").infected is False
    assert parse_reply("stream: Win.Test.EICAR_HDB-1 FOUND").signature == "Win.Test.EICAR_HDB-1"
    with pytest.raises(ScannerError, match="INSTREAM size limit exceeded"):
        parse_reply("INSTREAM size limit exceeded. ERROR")
    scanner = Clamd(VirusSettings(socket=str(clamd.socket_path)))
    assert in_thread(asyncio.run, scanner.ping())
    verdict = in_thread(asyncio.run, scanner.instream(b"harmless " * 20_000))  # several chunks
    assert verdict.infected is False
    assert in_thread(asyncio.run, scanner.instream(b"prefix " + EICAR)).signature == clamd.detected_as
