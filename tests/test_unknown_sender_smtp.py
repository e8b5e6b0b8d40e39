"""Over real SMTP: files from a sender the recipient does not know wait in the IT quarantine, per recipient.

The gateway learns who knows whom from the mail it carries: once
sortiz@example.gov has written to an outside address, files from that
address reach sortiz directly. On SQLite and on the real PostgreSQL server.
"""

from __future__ import annotations

import email
import email.policy
import json
from pathlib import Path

import pytest
from sqlalchemy import select

from milter import cli
from policies.rules import correspondents
from policies.rules.software import format_size
from quarantine import holds, it_quarantine
from tests.support.quarantine_helpers import ENFORCE, PDF, STRANGER, in_thread, mail, pdf, png, send

SORTIZ, DWHITFIELD = "sortiz@example.gov", "dwhitfield@example.gov"


@pytest.fixture
def gateway(make_gateway):
    """The gateway with the rule enforcing (it ships in monitor mode)."""
    return make_gateway(ENFORCE)


def quarantined(runtime) -> list[dict]:
    with runtime.database.read() as connection:
        return holds.listing(connection, "quarantine")


def check_json(config_path: Path, raw: bytes, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    (tmp_path / "quote.eml").write_bytes(raw)
    assert (
        in_thread(
            cli.main,
            [
                "--config",
                str(config_path),
                "check",
                "--json",
                str(tmp_path / "quote.eml"),
                "--mail-from",
                STRANGER,
                "--rcpt",
                SORTIZ,
                "--client-ip",
                "203.0.113.9",
            ],
        )
        == 3  # check exits 3 for a hold (README: exit codes)
    )
    return json.loads(capsys.readouterr().out)


def test_a_pdf_from_a_stranger_waits_for_it_until_the_recipient_has_written_to_the_sender(
    gateway, sink, tmp_path, capsys
):
    raw = mail(("quote.pdf", pdf(), PDF))
    verdict = check_json(gateway.config.path, raw, tmp_path, capsys)
    assert (verdict["action"], verdict["hold_queue"]) == ("hold", "quarantine")
    [finding] = [f for f in verdict["findings"] if f["policy"] == "unknown_sender"]
    assert finding["recipients"] == [SORTIZ] and "quote.pdf, PDF document" in finding["reason"]
    asking = [f["policy"] for f in verdict["findings"] if f["mode"] == "enforce" and f["action"] in ("hold", "reject")]
    assert asking == ["unknown_sender"]  # a real PDF: no other rule holds it

    assert send(gateway.port, raw, STRANGER, [SORTIZ]) == (250, "")
    [held] = quarantined(gateway.runtime)
    assert (held["rcpt_to"], held["mail_from"]) == ([SORTIZ], STRANGER)
    assert f"sortiz@example.gov has not written to {STRANGER}" in held["reason"]
    assert sink.messages == []  # nothing reached the mailbox

    # sortiz writes to the vendor (relayed by the agency's mail server): the vendor is now known to sortiz.
    reply = mail(sender=SORTIZ, to=STRANGER, subject="Re: Quote for road salt", body="Please send the quote.\n")
    assert send(gateway.port, reply, SORTIZ, [STRANGER], inside=True) == (250, "")
    sink.wait_for(1)
    with gateway.runtime.database.read() as connection:
        assert correspondents.known_to(connection, STRANGER, [SORTIZ, DWHITFIELD]) == {SORTIZ}

    assert send(gateway.port, raw, STRANGER, [SORTIZ]) == (250, "")
    delivered = sink.wait_for(2)[1]
    assert delivered.rcpt_tos == [SORTIZ] and b'filename="quote.pdf"' in delivered.data
    assert len(quarantined(gateway.runtime)) == 1  # only the first copy waits


def test_with_mixed_recipients_the_one_who_knows_the_sender_gets_it_and_the_others_copy_waits(gateway, sink):
    with gateway.runtime.database.write() as connection:
        correspondents.learn(connection, [(DWHITFIELD, STRANGER)])
    raw = mail(("quote.pdf", pdf(), PDF), to=DWHITFIELD, cc=SORTIZ)
    assert send(gateway.port, raw, STRANGER, [DWHITFIELD, SORTIZ]) == (250, "")
    [delivered] = sink.wait_for(1)
    assert delivered.rcpt_tos == [DWHITFIELD]
    [held] = quarantined(gateway.runtime)
    assert held["rcpt_to"] == [SORTIZ]
    [finding] = held["findings"]
    assert (finding["policy"], finding["recipients"]) == ("unknown_sender", [SORTIZ])


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_quarantined_recipient_gets_one_notice_that_says_what_and_what_next(gateway, sink):
    raw = mail(
        ("quote.pdf", pdf(), PDF),
        ("prices.pdf", pdf("Prices"), PDF),
        to=DWHITFIELD,
        cc=SORTIZ,
        subject="Quote for road salt",
    )
    assert send(gateway.port, raw, STRANGER, [SORTIZ, DWHITFIELD]) == (250, "")
    assert it_quarantine.notify_new(gateway.runtime) == 1
    assert it_quarantine.notify_new(gateway.runtime) == 0  # never twice
    gateway.loop.call_soon_threadsafe(gateway.gateway.runner.wake.set)
    notices = sorted(sink.wait_for(2), key=lambda m: m.rcpt_tos)
    assert [n.rcpt_tos for n in notices] == [[DWHITFIELD], [SORTIZ]]  # one each: Bcc recipients stay private
    parsed = email.message_from_bytes(notices[1].data, policy=email.policy.default)
    assert parsed["Subject"] == "Held for IT review: Quote for road salt"
    assert parsed["X-AUP-Notice"] == "quarantine-held" and parsed["Auto-Submitted"] == "auto-generated"
    text = parsed.get_body(("plain",)).get_content()
    assert f"From:     {STRANGER}" in text
    assert f"  - quote.pdf (PDF document, {format_size(len(pdf()))})" in text
    assert "prices.pdf (PDF document" in text
    assert "not exchanged mail with this sender" in text and "helpdesk@example.gov" in text
    [held] = quarantined(gateway.runtime)
    assert f"reference {held['message_id']}" in text
    assert DWHITFIELD not in text  # no other recipient is named


def test_a_known_address_in_from_over_another_envelope_sender_counts_for_nothing(gateway, sink):
    with gateway.runtime.database.write() as connection:
        correspondents.learn(connection, [(SORTIZ, STRANGER)])
    raw = mail(("quote.pdf", pdf(), PDF))  # From: the known vendor ...
    assert send(gateway.port, raw, "bounce@elsewhere.example.net", [SORTIZ]) == (250, "")  # ... sent by someone else
    [held] = quarantined(gateway.runtime)
    assert "the sender's identity could not be confirmed" in held["reason"]
    assert sink.messages == []


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_signature_logo_is_not_a_file_and_a_partner_domain_is_known_to_everyone(make_gateway, sink):
    gateway = make_gateway(
        {"policies": {"unknown_sender": {"mode": "enforce", "partners": {"senders": ["county.example.org"]}}}}
    )
    logo = mail(sender="clerk@other-town.example.net", html='<p>Hi</p><img src="cid:logo">')
    message = email.message_from_bytes(logo, policy=email.policy.default)
    message.get_body(("html",)).add_related(png(), "image", "png", cid="<logo>")
    assert send(gateway.port, message.as_bytes(policy=email.policy.SMTP), "clerk@other-town.example.net", [SORTIZ]) == (
        250,
        "",
    )
    partner = mail(("minutes.pdf", pdf(), PDF), sender="clerk@mail.county.example.org")
    assert send(gateway.port, partner, "clerk@mail.county.example.org", [SORTIZ]) == (250, "")
    assert [m.rcpt_tos for m in sink.wait_for(2)] == [[SORTIZ], [SORTIZ]]
    assert quarantined(gateway.runtime) == []


def test_learning_happens_in_the_accept_transaction_and_only_for_mail_from_inside(gateway, sink):
    outbound = mail(sender=SORTIZ, to="Partner <Partner@County.example.org>", subject="Minutes")
    assert send(gateway.port, outbound, SORTIZ, ["Partner@County.example.org"], inside=True) == (250, "")
    inbound = mail(sender="someone@outside.example.net", to=DWHITFIELD, subject="Hello")
    assert send(gateway.port, inbound, "someone@outside.example.net", [DWHITFIELD]) == (250, "")
    sink.wait_for(2)
    with gateway.runtime.database.read() as connection:
        rows = connection.execute(
            select(
                correspondents.known_sender.c.recipient,
                correspondents.known_sender.c.sender,
                correspondents.known_sender.c.source,
            )
        ).all()
    assert [tuple(r) for r in rows] == [(SORTIZ, "partner@county.example.org", "learned")]
