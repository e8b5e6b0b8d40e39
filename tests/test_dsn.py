"""milter/delivery/dsn.py: bounces that follow RFC 3464, parsed back with the email package."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime
from email.message import Message

import pytest

from milter.delivery import dsn

ARRIVED = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ORIGINAL = (
    b"Received: from mail.example.gov ([127.0.0.2])\r\n\tby gateway.test (aup-milter) with ESMTP id M1\r\n"
    b"From: Sam Ortiz <sortiz@example.gov>\r\nTo: nobody-here@example.org\r\nSubject: Budget\r\n"
    b"Message-ID: <abc@example.gov>\r\n\r\n"
)


def parse(report: bytes) -> Message:
    return email.message_from_bytes(report, policy=email.policy.compat32)


def delivery_status(report: Message) -> tuple[Message, list[Message]]:
    """The per-message block and the per-recipient blocks of the message/delivery-status part."""
    part = report.get_payload()[1]
    assert part.get_content_type() == "message/delivery-status"
    blocks = part.get_payload()
    return blocks[0], blocks[1:]


def build(failures: list[dsn.Failure], headers: bytes = ORIGINAL, expired: bool = False) -> bytes:
    return dsn.build(
        hostname="gateway.test",
        sender="sortiz@example.gov",
        failures=failures,
        original_headers=headers,
        original_id="M1",
        arrived=ARRIVED,
        expired=expired,
    )


def test_a_dsn_is_a_multipart_report_with_three_parts_in_rfc3464_order():
    report = parse(
        build([dsn.Failure("nobody-here@example.org", "550 5.1.1 <nobody-here@example.org>: no such user", "5.1.1")])
    )
    assert report.get_content_type() == "multipart/report"
    assert report.get_param("report-type") == "delivery-status"
    assert [p.get_content_type() for p in report.get_payload()] == [
        "text/plain",
        "message/delivery-status",
        "text/rfc822-headers",
    ]
    assert report["To"] == "<sortiz@example.gov>"
    assert report["From"] == "Mail Delivery System <MAILER-DAEMON@gateway.test>"
    assert report["Auto-Submitted"] == "auto-replied"  # RFC 3834: no auto-reply loops
    assert report["Message-ID"].endswith("@gateway.test>") and report["Date"]
    assert report.defects == [] and all(p.defects == [] for p in report.walk())


def test_the_delivery_status_names_every_failed_recipient_with_its_status_and_diagnostic():
    failures = [
        dsn.Failure("a@example.org", "550 5.1.1 <a@example.org>: user unknown", "5.1.1"),
        dsn.Failure("b@example.org", "552 5.2.2 mailbox full", "5.2.2"),
    ]
    per_message, per_recipient = delivery_status(parse(build(failures)))
    assert per_message["Reporting-MTA"] == "dns; gateway.test"
    assert per_message["Arrival-Date"] == "Mon, 23 Nov 2026 10:00:00 +0000"
    assert [b["Final-Recipient"] for b in per_recipient] == ["rfc822; a@example.org", "rfc822; b@example.org"]
    assert [b["Action"] for b in per_recipient] == ["failed", "failed"]
    assert [b["Status"] for b in per_recipient] == ["5.1.1", "5.2.2"]
    assert per_recipient[0]["Diagnostic-Code"] == "smtp; 550 5.1.1 <a@example.org>: user unknown"
    assert all(b["Last-Attempt-Date"] for b in per_recipient)


def test_the_text_part_says_what_happened_and_what_to_do():
    report = parse(build([dsn.Failure("a@example.org", "550 5.1.1 no such user", "5.1.1")]))
    text = report.get_payload()[0].get_payload()
    assert "<a@example.org>" in text and "550 5.1.1 no such user" in text
    assert "refused" in text and "What to do" in text


def test_an_expired_message_says_since_when_the_gateway_tried():
    report = parse(build([dsn.Failure("a@example.org", "451 4.4.1 connection refused", "4.4.7")], expired=True))
    text = report.get_payload()[0].get_payload()
    assert "Mon, 23 Nov 2026 10:00:00 +0000" in text and "stopped trying" in text
    assert delivery_status(report)[1][0]["Status"] == "4.4.7"


def test_the_original_headers_are_included_and_the_body_is_not():
    original = ORIGINAL + b"The confidential body.\r\n"
    end = original.find(b"\r\n\r\n")
    report_bytes = build([dsn.Failure("a@example.org", "550 5.1.1 x", "5.1.1")], headers=original[: end + 2])
    headers_part = parse(report_bytes).get_payload()[2]
    assert headers_part.get_payload(decode=True) == ORIGINAL.rstrip(b"\r\n") + b"\r\n"
    assert b"confidential body" not in report_bytes


def test_8bit_headers_go_in_a_message_global_headers_part_byte_for_byte():
    headers = "From: Jürgen Groß <jgross@example.gov>\r\nSubject: Grüße aus dem Rathaus ✓\r\n".encode()
    report_bytes = build([dsn.Failure("a@example.org", "550 5.1.1 x", "5.1.1")], headers=headers)
    head, _, _ = report_bytes.partition(b"Content-Description: Undelivered message headers")
    assert head.isascii()  # everything the gateway writes itself is ASCII
    assert headers in report_bytes
    report = email.message_from_bytes(report_bytes, policy=email.policy.default)
    part = list(report.iter_parts())[2]
    assert part.get_content_type() == "message/global-headers"  # RFC 6533
    assert part["Content-Transfer-Encoding"] == "8bit"
    assert part.get_payload()[0]["Subject"] == "Grüße aus dem Rathaus ✓"


def test_long_diagnostics_are_folded_and_survive_parsing():
    reply = "550 5.7.1 " + " ".join(f"word{i}" for i in range(300)) + " " + "x" * 1500
    report_bytes = build([dsn.Failure("a@example.org", reply, "5.7.1")])
    assert max(len(line) for line in report_bytes.split(b"\r\n")) <= 998  # RFC 5322 section 2.1.1
    diagnostic = delivery_status(parse(report_bytes))[1][0]["Diagnostic-Code"]
    assert " ".join(diagnostic.split()).replace(" ", "") == f"smtp; {reply}".replace(" ", "")


def test_huge_original_headers_are_cut_at_a_line_end():
    headers = b"".join(f"X-Filler-{i}: {'y' * 70}\r\n".encode() for i in range(5000))
    report_bytes = build([dsn.Failure("a@example.org", "550 5.1.1 x", "5.1.1")], headers=headers)
    included = parse(report_bytes).get_payload()[2].get_payload()
    assert len(included) <= dsn.MAX_HEADER_BYTES + 2
    assert included.endswith(("y" * 70 + "\r\n", "y" * 70 + "\n"))


def test_one_endless_header_line_is_cut_too():
    report_bytes = build(
        [dsn.Failure("a@example.org", "550 5.1.1 x", "5.1.1")], headers=b"X-Endless: " + b"z" * 200_000
    )
    assert len(report_bytes) < dsn.MAX_HEADER_BYTES + 4096


@pytest.mark.parametrize(
    ("reply", "status"),
    [
        ("550 5.1.1 <a@example.org>: user unknown", "5.1.1"),
        ("552 5.2.2 mailbox full", "5.2.2"),
        ("554 no enhanced code here", "5.0.0"),
        ("550 4.1.1 the class disagrees with the reply", "5.0.0"),
        ("451 4.4.1 connection refused", "4.4.1"),
        ("421 closing", "4.0.0"),
        ("553 5.6.7 downstream does not support SMTPUTF8", "5.6.7"),
        ("550 5.1.1. trailing dot is not a code", "5.0.0"),
        ("garbage", "5.0.0"),
        ("", "5.0.0"),
    ],
)
def test_status_of_takes_the_enhanced_code_of_the_reply(reply, status):
    assert dsn.status_of(reply) == status


def test_a_utf8_recipient_is_reported_losslessly_in_ascii_as_rfc6533_says():
    report_bytes = build([dsn.Failure("jürgen@example.org", "553 5.6.7 no SMTPUTF8 downstream", "5.6.7")])
    assert report_bytes.isascii()
    _, [block] = delivery_status(parse(report_bytes))
    assert block["Final-Recipient"] == "utf-8; j\\x{FC}rgen@example.org"
    assert "<j\\x{FC}rgen@example.org>" in parse(report_bytes).get_payload()[0].get_payload()
