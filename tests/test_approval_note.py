"""The approval note: the agencies' form at the end of the text and the HTML, every other byte kept."""

from __future__ import annotations

import base64
import datetime as dt
import email
import email.policy

from quarantine import approval_note
from tests.support.approval_support import ATTACHMENT, broadcast

WHEN = dt.datetime(2026, 11, 23, 15, 0, tzinfo=dt.UTC)
DANA = approval_note.Approval(
    "Sam Ortiz",
    "Dana Whitfield",
    "Director of Public Works",
    "Lee Park <lpark@example.gov>",
    "delegate of Dana Whitfield",
    WHEN,
)


def bodies(raw: bytes) -> tuple[str, str | None]:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    html = message.get_body(("html",))
    return (
        message.get_body(("plain",)).get_content().replace("\r\n", "\n"),  # type: ignore[union-attr]
        html.get_content().replace("\r\n", "\n") if html else None,
    )


def test_the_note_ends_text_and_html_and_nothing_else_changes():
    original = broadcast()
    approved = approval_note.apply(original, DANA)
    plain, html = bodies(approved)
    assert (
        plain
        == "Main Street is closed on Friday for paving.\nPlease use Elm Street.\n\nSam Ortiz\nFor: Dana Whitfield – Director of Public Works\n"
    )
    assert html is not None and html.endswith(
        "<p>Sam Ortiz<br>\nFor: Dana Whitfield – Director of Public Works</p>\n</body></html>"
    )
    header, rest = approved.split(b"\r\n", 1)
    assert header == b"X-AUP-Approved-By: Lee Park <lpark@example.gov> (delegate of Dana Whitfield);"
    assert rest.startswith(
        b" 2026-11-23T15:00:00Z\r\n" + original[: original.index(b"--inner\r\n")]
    )  # the header block and preamble as sent
    assert approved.endswith(original[original.index(b"\r\n--inner--") :]) and ATTACHMENT in approved


def test_names_are_escaped_in_html_and_a_forged_approval_header_is_dropped():
    forged = (
        b"X-AUP-Approved-By: Dana Whitfield <dwhitfield@example.gov> (department head); 2026-01-01T00:00:00Z\r\n"
        + broadcast()
    )
    odd = approval_note.Approval(
        "Pat <O'Brien> & Co",
        "Dana Whitfield",
        "Director",
        "Dana Whitfield <dwhitfield@example.gov>",
        "department head",
        WHEN,
    )
    approved = approval_note.apply(forged, odd)
    assert approved.count(b"X-AUP-Approved-By:") == 1 and b"2026-01-01T00:00:00Z" not in approved
    _, html = bodies(approved)
    assert "<p>Pat &lt;O&#x27;Brien&gt; &amp; Co<br>" in html  # type: ignore[operator]


def test_a_plain_text_message_in_base64_and_one_without_text():
    text = base64.encodebytes("Café closed today.\n".encode()).replace(b"\n", b"\r\n")
    single = (
        b"From: sortiz@example.gov\r\nTo: all-staff@example.gov\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n" + text
    )
    plain, html = bodies(approval_note.apply(single, DANA))
    assert html is None and plain == "Café closed today.\n\nSam Ortiz\nFor: Dana Whitfield – Director of Public Works\n"
    only_file = (
        b"From: sortiz@example.gov\r\nTo: all-staff@example.gov\r\nSubject: x\r\nMIME-Version: 1.0\r\n"
        b"Content-Type: application/pdf; name=flyer.pdf\r\nContent-Disposition: attachment; filename=flyer.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQK\r\n"
    )
    assert not approval_note.has_text(only_file) and approval_note.has_text(single)
    assert (
        approval_note.apply(only_file, DANA).split(b"\r\n", 2)[2] == only_file
    )  # the header records it; the bytes stay


def test_an_admin_approval_does_not_claim_a_department_head():
    admin = approval_note.Approval("Pat Quinn", None, None, "cli:root", "admin", WHEN)
    assert admin.text == "Pat Quinn\nApproved by the agency's mail administrators"
