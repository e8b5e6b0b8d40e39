"""Byte-level edits: only the changed field or text part differs; everything else stays byte for byte."""

from __future__ import annotations

import base64
import email
import email.policy

from milter.mail import edit

NOTE = "Sam Ortiz\nFor: Dana Whitfield – Director of Public Works"
ATTACHMENT = base64.encodebytes(bytes(range(256)) * 8).replace(b"\n", b"\r\n")

ALTERNATIVE_WITH_ATTACHMENT = (
    b"From: Sam Ortiz <sortiz@example.gov>\r\n"
    b"To: all-staff@example.gov\r\n"
    b"Subject: Road closure\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"This is a multi-part message.\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=us-ascii\r\n"
    b"Content-Transfer-Encoding: 7bit\r\n"
    b"\r\n"
    b"Main Street is closed on Friday.\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    + base64.encodebytes("<html><body><p>Main Street is closed on Friday – détour.</p></body></html>".encode()).replace(
        b"\n", b"\r\n"
    )
    + b"--inner--\r\n"
    b"--outer\r\n"
    b"Content-Type: application/octet-stream; name=map.bin\r\n"
    b"Content-Disposition: attachment; filename=map.bin\r\n"
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n" + ATTACHMENT + b"--outer\r\n"
    b"Content-Type: text/plain; name=notes.txt\r\n"
    b"Content-Disposition: attachment; filename=notes.txt\r\n"
    b"\r\n"
    b"an attached text file\r\n"
    b"--outer--\r\n"
)


def parsed(raw: bytes):
    return email.message_from_bytes(raw, policy=email.policy.default)


def bodies(raw: bytes) -> dict[str, str]:
    message = parsed(raw)
    return {kind: message.get_body((kind,)).get_content() for kind in ("plain", "html")}


def test_text_parts_are_found_at_any_depth_and_attachments_are_left_out():
    parts = edit.text_parts(ALTERNATIVE_WITH_ATTACHMENT)
    assert [(p.subtype, p.charset, p.encoding) for p in parts] == [
        ("plain", "us-ascii", "7bit"),
        ("html", "utf-8", "base64"),
    ]


def test_a_note_appended_to_both_bodies_changes_nothing_else():
    edited = edit.edit_text(
        ALTERNATIVE_WITH_ATTACHMENT,
        lambda text: edit.append_to_text(text, NOTE),
        lambda html: edit.append_to_html(html, "<p>Sam Ortiz<br>For: Dana Whitfield – Director of Public Works</p>"),
    )
    texts = bodies(edited)
    assert texts["plain"].rstrip().endswith("For: Dana Whitfield – Director of Public Works")
    assert texts["plain"].startswith("Main Street is closed on Friday.")
    assert texts["html"].index("For: Dana Whitfield – Director") < texts["html"].index("</body>")
    # Everything from the attachment's boundary on is byte for byte the same.
    tail = ALTERNATIVE_WITH_ATTACHMENT[ALTERNATIVE_WITH_ATTACHMENT.index(b"--inner--") :]
    assert edited.endswith(tail)
    assert edited.startswith(
        ALTERNATIVE_WITH_ATTACHMENT[: ALTERNATIVE_WITH_ATTACHMENT.index(b"Content-Type: text/plain")]
    )
    # The us-ascii 7bit part could not hold the dash: only its own charset and encoding changed.
    plain_part = parsed(edited).get_body(("plain",))
    assert plain_part.get_content_charset() == "utf-8"
    assert plain_part["Content-Transfer-Encoding"] == "quoted-printable"
    attachments = [p.get_filename() for p in parsed(edited).iter_attachments()]
    assert attachments == ["map.bin", "notes.txt"]
    assert parsed(edited).get_payload()[1].get_content() == bytes(range(256)) * 8


def test_a_single_part_message_gets_its_note_and_keeps_its_headers():
    raw = b"From: a@example.gov\r\nTo: b@example.gov\r\nSubject: hi\r\n\r\nLine one\r\nLine two\r\n"
    edited = edit.edit_text(raw, lambda text: edit.append_to_text(text, "For: Someone"), None)
    assert edited.startswith(b"From: a@example.gov\r\nTo: b@example.gov\r\nSubject: hi\r\n")
    assert edited.endswith(b"Line one\r\nLine two\r\n\r\nFor: Someone\r\n")


def test_quoted_printable_and_latin1_parts_keep_their_encoding():
    raw = (
        b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n"
        b"Caf=E9 ouvert.\r\n"
    )
    edited = edit.edit_text(raw, lambda text: edit.append_to_text(text, "Réunion à 10h"), None)
    message = parsed(edited)
    assert message["Content-Transfer-Encoding"] == "quoted-printable"
    assert message.get_content_charset() == "iso-8859-1"
    assert message.get_content().replace("\r\n", "\n") == "Café ouvert.\n\nRéunion à 10h\n"


def test_a_banner_goes_first_in_the_first_parts():
    edited = edit.edit_text(
        ALTERNATIVE_WITH_ATTACHMENT,
        lambda text: edit.prepend_to_text(text, "[EXTERNAL] Be careful."),
        lambda html: edit.prepend_to_html(html, "<p>[EXTERNAL] Be careful.</p>"),
        which="first",
    )
    texts = bodies(edited)
    assert texts["plain"].startswith("[EXTERNAL] Be careful.")
    assert "<body><p>[EXTERNAL] Be careful.</p><p>Main Street" in texts["html"]


def test_headers_are_removed_added_and_subjects_replaced():
    raw = (
        b"Authentication-Results: gateway.test; dkim=pass\r\n"
        b"Authentication-Results: other.example; spf=pass\r\n"
        b" header.d=example.org\r\n"
        b"Subject: Old\r\n\r\nbody\r\n"
    )
    kept = edit.remove_headers(raw, "Authentication-Results", unless=lambda value: not value.startswith("gateway.test"))
    assert (
        kept
        == b"Authentication-Results: other.example; spf=pass\r\n header.d=example.org\r\nSubject: Old\r\n\r\nbody\r\n"
    )
    retitled = edit.set_subject(kept, "[EXTERNAL] Café")
    assert parsed(retitled)["Subject"] == "[EXTERNAL] Café"
    assert retitled.count(b"Subject:") == 1
    assert edit.add_header(raw, "X-Test", "yes").startswith(b"X-Test: yes\r\nAuthentication-Results")
