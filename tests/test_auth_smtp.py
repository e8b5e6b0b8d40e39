"""The sender checks over real SMTP: the real gateway asks a real DNS server on a loopback port.

The outside world is 127.0.0.1 (an outside client) and the agency's mail
server is 127.0.0.2 (the trusted network); DNS answers come from
tests/support/auth_dns.py's server, which the gateway reaches through [dns] nameservers.
"""

from __future__ import annotations

import json
import smtplib
from pathlib import Path

import dkim
import pytest

from milter import cli
from tests.conftest import TRUSTED, message_bytes, write_config
from tests.support.auth_dns import DnsServer
from tests.support.smtp_raw import OUTSIDE, received_records, settle

VECTORS = Path(__file__).parent / "data" / "auth" / "dkimpy"
KEY = (VECTORS / "test.private").read_bytes()
PUBLIC = (VECTORS / "test.txt").read_text().strip()

ZONE = {
    # The agency: its mail server is the trusted 127.0.0.2, it signs with selector "gw", and it publishes only p=none,
    # so refusing a forged agency sender is the gateway's own rule, not the domain's DMARC policy.
    "example.gov": [("TXT", "v=spf1 ip4:127.0.0.2 -all")],
    "_dmarc.example.gov": [("TXT", "v=DMARC1; p=none")],
    "gw._domainkey.example.gov": [("TXT", PUBLIC)],
    # A partner whose mail really comes from 127.0.0.1
    "partner.org": [("TXT", "v=spf1 ip4:127.0.0.1 -all")],
    "_dmarc.partner.org": [("TXT", "v=DMARC1; p=reject")],
    # Domains whose mail never comes from here
    "rejecting.example": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "_dmarc.rejecting.example": [("TXT", "v=DMARC1; p=reject")],
    "quarantining.example": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "_dmarc.quarantining.example": [("TXT", "v=DMARC1; p=quarantine")],
    "flaky.example": [("TXT", "v=spf1 ip4:127.0.0.1 -all")],
    "_dmarc.flaky.example": [("TIMEOUT", None)],
}


@pytest.fixture
def dns_server():
    server = DnsServer(ZONE).start()
    yield server
    server.stop()


@pytest.fixture
def auth_gateway(make_gateway, dns_server):
    return make_gateway(
        {
            "dns": {"nameservers": [dns_server.address], "timeout": "1s"},
            "policies": {"authentication": {"authserv_id": "gateway.test"}},
        }
    )


def send(gateway, raw: bytes, mail_from: str, source: str = OUTSIDE, rcpt: str = "sortiz@example.gov") -> dict:
    with smtplib.SMTP(
        "127.0.0.1", gateway.port, source_address=(source, 0), local_hostname="mx.sender.example"
    ) as client:
        return client.sendmail(mail_from, [rcpt], raw)


def refused(gateway, raw: bytes, mail_from: str) -> smtplib.SMTPDataError:
    with pytest.raises(smtplib.SMTPDataError) as error:
        send(gateway, raw, mail_from)
    return error.value


def signed_by_agency(raw: bytes) -> bytes:
    return dkim.sign(raw, b"gw", b"example.gov", KEY) + raw


def test_a_spoofed_internal_from_from_an_outside_client_is_rejected(auth_gateway, sink):
    raw = message_bytes(
        sender="Dana Whitfield <dwhitfield@example.gov>", to="sortiz@example.gov", subject="Urgent: wire today"
    )
    error = refused(auth_gateway, raw, "dwhitfield@example.gov")
    text = error.smtp_error.decode()
    assert error.smtp_code == 550 and text.startswith("5.7.1 The message claims to come from the agency's own domain")
    assert "arrived from outside (127.0.0.1) without authentication: SPF fail for example.gov" in " ".join(text.split())
    settle(0.3)
    assert sink.messages == []
    (record,) = received_records(auth_gateway.runtime)
    assert (record.action, record.direction) == ("reject", "inbound")
    rejecting = [f for f in record.findings if f["action"] == "reject"]
    assert [f["policy"] for f in rejecting] == ["authentication"]
    results = next(f for f in record.findings if f["action"] == "deliver" and f["policy"] == "authentication")[
        "evidence"
    ]
    assert 'dns: example.gov TXT: "v=spf1 ip4:127.0.0.2 -all" (ttl 300s)' in [line.strip() for line in results]


def test_the_same_message_from_the_trusted_server_signed_and_aligned_passes(auth_gateway, sink):
    raw = signed_by_agency(
        message_bytes(
            sender="Dana Whitfield <dwhitfield@example.gov>", to="sortiz@example.gov", subject="Urgent: wire today"
        )
    )
    assert send(auth_gateway, raw, "dwhitfield@example.gov", source=TRUSTED) == {}
    (delivered,) = sink.wait_for(1)
    assert delivered.data.endswith(raw)
    # Signed by the agency's key it passes from outside too (a cloud service sending for the agency): authenticated.
    assert send(auth_gateway, raw, "dwhitfield@example.gov", source=OUTSIDE) == {}
    sink.wait_for(2)
    inbound = [r for r in received_records(auth_gateway.runtime) if r.direction == "inbound"]
    (record,) = inbound
    summary = next(f for f in record.findings if f["policy"] == "authentication")
    assert summary["reason"] == "Authentication results: spf=fail, dkim=pass (d=example.gov), dmarc=pass, arc=none."


def test_a_partner_that_passes_is_delivered_and_one_that_fails_p_reject_is_refused(auth_gateway, sink):
    assert send(auth_gateway, message_bytes(sender="Pat <pat@partner.org>"), "pat@partner.org") == {}
    sink.wait_for(1)
    error = refused(
        auth_gateway, message_bytes(sender="Accounts <accounts@rejecting.example>"), "accounts@rejecting.example"
    )
    assert error.smtp_code == 550
    assert "rejecting.example, whose owner publishes a DMARC policy of reject, and it failed DMARC" in " ".join(
        error.smtp_error.decode().split()
    )


def test_a_failure_under_p_quarantine_is_held_for_it(auth_gateway, sink):
    reply = None
    with smtplib.SMTP("127.0.0.1", auth_gateway.port, source_address=(OUTSIDE, 0)) as client:
        client.ehlo("mx.sender.example")
        client.mail("news@quarantining.example")
        client.rcpt("sortiz@example.gov")
        reply = client.data(message_bytes(sender="News <news@quarantining.example>"))
    assert reply[0] == 250 and b"held for review by IT" in reply[1]
    settle(0.3)
    assert sink.messages == []
    (record,) = received_records(auth_gateway.runtime)
    assert (record.action, record.hold_queue) == ("hold", "quarantine")


def test_a_dns_timeout_is_a_temporary_failure_and_the_retry_goes_through(auth_gateway, dns_server, sink):
    raw = message_bytes(sender="Flaky <f@flaky.example>")
    error = refused(auth_gateway, raw, "f@flaky.example")
    assert error.smtp_code == 451 and error.smtp_error.decode().startswith(
        "4.4.3 Authentication could not be completed"
    )
    assert "_dmarc.flaky.example TXT" in error.smtp_error.decode()
    settle(0.2)
    assert sink.messages == []
    dns_server.set("_dmarc.flaky.example", [("TXT", "v=DMARC1; p=reject")])  # the sender's DNS is back
    assert send(auth_gateway, raw, "f@flaky.example") == {}
    sink.wait_for(1)


def test_incoming_results_claiming_the_gateway_are_removed_from_what_is_delivered(auth_gateway, sink):
    forged = (
        "Authentication-Results: gateway.test; dkim=pass header.d=example.gov; dmarc=pass header.from=example.gov\r\n"
    )
    theirs = "Authentication-Results: mx.partner.org; spf=pass smtp.mailfrom=pat@partner.org\r\n"
    raw = message_bytes(sender="Pat <pat@partner.org>", extra_headers=forged + theirs)
    assert send(auth_gateway, raw, "pat@partner.org") == {}
    (delivered,) = sink.wait_for(1)
    assert forged.encode() not in delivered.data and theirs.encode() in delivered.data
    kinds = [r.kind for r in received_records(auth_gateway.runtime)]
    assert kinds == ["received", "delivered"]  # the archive keeps the message as it came, forged header and all


def test_the_delivered_message_carries_our_authentication_results(auth_gateway, sink):
    assert send(auth_gateway, message_bytes(sender="Pat <pat@partner.org>"), "pat@partner.org") == {}
    (delivered,) = sink.wait_for(1)
    assert b"\r\nAuthentication-Results: gateway.test; spf=pass smtp.mailfrom=pat@partner.org;" in delivered.data


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_check_shows_each_result_with_the_dns_data_it_used(tmp_path, dns_server, database_url, capsys):
    path = write_config(
        tmp_path,
        database_url,
        "maildir:/tmp/unused",
        {
            "dns": {"nameservers": [dns_server.address], "timeout": "1s"},
            "policies": {"authentication": {"authserv_id": "gateway.test"}},
        },
    )
    eml = tmp_path / "spoof.eml"
    eml.write_bytes(message_bytes(sender="Accounts <accounts@rejecting.example>", to="sortiz@example.gov"))
    assert cli.main(["--config", str(path), "check", str(eml), "--client-ip", "198.51.100.7"]) == 1  # rejected
    out = capsys.readouterr().out
    assert "authentication (gateway.test), with the DNS data each result used:" in out
    assert "  spf mailfrom=accounts@rejecting.example: fail (SPF fail - not authorized)" in out
    assert '      dns: rejecting.example TXT: "v=spf1 ip4:192.0.2.0/24 -all" (ttl 300s)' in out
    assert (
        "  dmarc header.from=rejecting.example: fail (p=reject sp=reject adkim=r aspf=r pct=100, applies reject, disposition reject)"
        in out
    )
    assert '      dns: _dmarc.rejecting.example TXT: "v=DMARC1; p=reject" (ttl 300s)' in out
    assert "decision:  reject" in out
    assert cli.main(["--config", str(path), "check", str(eml), "--client-ip", "198.51.100.7", "--json"]) == 1
    result = json.loads(capsys.readouterr().out)
    assert result["authentication"]["header"].startswith(
        "gateway.test; spf=fail smtp.mailfrom=accounts@rejecting.example"
    )
