"""The Message's views: headers, MIME parts and paths, text bodies, caps, and computing each view once."""

from __future__ import annotations

import base64
import email.policy
import threading
import time
import zipfile
from email.message import EmailMessage
from io import BytesIO
from typing import Any

import pytest

from milter.mail import content
from milter.mail.message import MAX_PROBLEMS, Envelope, Message, normalise_line_endings
from milter.mail.settings import LimitSettings

SMTP = email.policy.SMTP  # CRLF line endings, as the relay hands messages over


def make_message(raw: bytes | EmailMessage, **limits: Any) -> Message:
    data = raw.as_bytes(policy=SMTP) if isinstance(raw, EmailMessage) else raw
    data, _ = normalise_line_endings(data)
    return Message(
        Envelope("sender@example.gov", ("dwhitfield@example.gov",)), data, "inbound", LimitSettings(**limits)
    )


def simple(headers: str, body: str = "Hello.\r\n") -> Message:
    return make_message(f"{headers}\r\n\r\n{body}".encode())


def kinds(message: Message) -> set[str]:
    return {problem.kind for problem in message.problems}


def nested_multiparts(levels: int, filler: bytes = b"deepest text\r\n") -> bytes:
    """A message whose body is `levels` multiparts, one inside the other, with one text part at the bottom."""
    opening = b"".join(b"Content-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\n" % (i, i) for i in range(levels))
    closing = b"".join(b"\r\n--b%d--\r\n" % i for i in reversed(range(levels)))
    return (
        b"From: a@example.gov\r\nTo: b@example.gov\r\nSubject: deep\r\nMIME-Version: 1.0\r\n"
        + opening
        + b"Content-Type: text/plain\r\n\r\n"
        + filler
        + closing
    )


# -- headers ---------------------------------------------------------------


def test_rfc2047_encoded_words_are_decoded_in_subject_and_display_names():
    message = simple(
        "From: =?utf-8?q?J=C3=BCrgen_M=C3=BCller?= <JMueller@Example.GOV>\r\n"
        "Subject: =?iso-8859-1?b?UGFpZW1lbnQgZOk=?= =?utf-8?q?_f=C3=A4llig?=\r\nTo: x@example.gov"
    )
    assert message.subject == "Paiement dé fällig"
    assert message.from_addresses == [("Jürgen Müller", "jmueller@example.gov")]


def test_utf8_headers_as_smtputf8_clients_send_them_are_read_as_utf8():
    message = make_message("From: José Núñez <josé@correo.example>\r\nSubject: Café für alle\r\n\r\nbody\r\n".encode())
    assert message.subject == "Café für alle"
    assert message.from_addresses == [("José Núñez", "josé@correo.example")]
    latin1 = make_message(b"Subject: Caf\xe9\r\n\r\nbody\r\n")  # not UTF-8: read as Windows-1252, as old clients meant
    assert latin1.subject == "Café"
    assert latin1.raw_header_values("Subject") == ["Caf\udce9"]  # the raw value keeps the byte for rules that compare
    undefined = make_message(b"Subject: \x81\r\n\r\nbody\r\n")  # no Windows-1252 character: Latin-1, never a crash
    assert undefined.subject == "\x81"


def test_two_from_headers_are_both_counted_and_listed():
    message = simple("From: a@example.gov\r\nFrom: b@example.gov\r\nTo: x@example.gov")
    assert message.header_count("From") == 2
    assert [addr for _, addr in message.from_addresses] == ["a@example.gov", "b@example.gov"]


def test_missing_from_is_none_not_an_error():
    message = simple("To: x@example.gov\r\nSubject: hi")
    assert message.header("From") is None
    assert message.header_count("from") == 0
    assert message.from_addresses == []


def test_group_syntax_without_members_names_no_address():
    message = simple("From: undisclosed-recipients:;\r\nTo: Team: a@example.gov, B@Example.gov;")
    assert message.from_addresses == []
    assert message.header("From") == "undisclosed-recipients:;"
    assert [addr for _, addr in message.addresses("To")] == ["a@example.gov", "b@example.gov"]


@pytest.mark.parametrize(
    "value",
    [
        "<<<garbage>>>@@",
        "John Smith",
        "<>",
        '"unterminated <a@example.gov>',
        "=?utf-8?b?!!!notbase64?= <x@example.gov>",
        "a@example.gov (comment (nested",
        "\udcff\udcfe raw 8-bit <x@example.gov>",
        "," * 5000,
    ],
)
def test_garbage_address_headers_never_raise(value):
    raw = f"From: {value}\r\nTo: x@example.gov\r\nSubject: x\r\n\r\nbody\r\n".encode("utf-8", "surrogateescape")
    message = make_message(raw)
    assert message.header_count("From") == 1
    assert isinstance(message.header("From"), str)
    for display, addr in message.from_addresses:
        assert isinstance(display, str) and isinstance(addr, str)


@pytest.mark.parametrize("value", ['"', ":;)", "(,).?=,?="])
def test_a_from_header_the_email_package_crashes_on_is_a_problem_and_its_raw_text_is_used(value):
    # Each of these makes email.headerregistry raise (IndexError, AttributeError, TypeError).
    message = simple(f"From: {value}\r\nTo: x@example.gov")
    assert message.header("From") == value
    assert all(addr for _, addr in message.from_addresses)
    assert any(p.kind == "malformed" and p.detail.startswith("From header cannot be parsed") for p in message.problems)


def test_a_content_type_the_email_package_crashes_on_does_not_stop_the_structure_being_read():
    raw = (
        b"From: a@example.gov\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\n"
        b"Content-Type: ;\xff *\r\n\r\nodd part\r\n--X\r\nContent-Type: application/zip; name=a.zip\r\n\r\nPK\r\n--X--\r\n"
    )
    message = make_message(raw)
    assert [(p.path, p.content_type) for p in message.parts] == [("1", "text/plain"), ("2", "application/zip")]
    assert message.body_text == "odd part"


def test_an_rfc2047_encoded_file_name_is_decoded():
    message = make_message(
        b"From: a@example.gov\r\nContent-Type: application/octet-stream\r\n"
        b'Content-Disposition: attachment; filename="=?utf-8?b?w6l0w6kuZXhl?="\r\n\r\nMZ\r\n'
    )
    assert message.attachments[0].filename == "été.exe"


# -- parts and paths ---------------------------------------------------------


def report_message() -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.gov", "b@example.gov", "report"
    msg.set_content("Plain version.")
    msg.add_alternative(
        "<html><body><p>HTML <b>version</b>.</p><script>var hidden = 1;</script></body></html>", subtype="html"
    )
    msg.add_attachment(b"%PDF-1.4 not really", maintype="application", subtype="pdf", filename="report.pdf")
    return msg


def test_nested_multipart_parts_are_numbered_as_imap_numbers_them():
    message = make_message(report_message())
    assert [(p.path, p.content_type, p.filename) for p in message.parts] == [
        ("1.1", "text/plain", None),
        ("1.2", "text/html", None),
        ("2", "application/pdf", "report.pdf"),
    ]
    assert [p.path for p in message.attachments] == ["2"]
    assert [(b.path, b.content_type) for b in message.text_bodies] == [("1.1", "text/plain"), ("1.2", "text/html")]


def test_a_single_part_message_is_part_1():
    message = simple("From: a@example.gov\r\nTo: b@example.gov", "Just text.\r\n")
    assert [(p.path, p.content_type, p.payload) for p in message.parts] == [("1", "text/plain", b"Just text.\r\n")]


def test_html_is_turned_into_text_without_scripts_and_the_markup_is_kept():
    message = make_message(report_message())
    html = next(body for body in message.text_bodies if body.content_type == "text/html")
    assert html.text == "HTML\nversion\n."
    assert "<script>" in html.html
    assert "hidden" not in message.body_text
    assert "Plain version." in message.body_text


def attached_message(inner: EmailMessage) -> EmailMessage:
    outer = EmailMessage()
    outer["From"], outer["To"], outer["Subject"] = "a@example.gov", "b@example.gov", "Fwd"
    outer.set_content("See the attached message.")
    outer.add_attachment(inner)  # message/rfc822
    return outer


def test_an_attached_message_is_an_attachment_and_its_parts_are_walked():
    inner = EmailMessage()
    inner["From"], inner["Subject"] = "c@example.com", "original"
    inner.set_content("The original words.")
    zipped = BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("notes.txt", "inside the zip")
    inner.add_attachment(zipped.getvalue(), maintype="application", subtype="zip", filename="files.zip")
    message = make_message(attached_message(inner))

    assert [(p.path, p.content_type) for p in message.parts] == [
        ("1", "text/plain"),
        ("2", "message/rfc822"),
        ("2.1", "text/plain"),
        ("2.2", "application/zip"),
    ]
    assert [p.path for p in message.attachments] == ["2", "2.2"]
    assert message.attachments[0].true_type.mime == "message/rfc822"
    assert b"Subject: original" in message.attachments[0].payload
    assert "The original words." in message.body_text
    assert [m.path for m in message.archive_members] == ["2.2/files.zip/notes.txt"]


def test_an_attached_single_part_message_has_its_body_at_path_dot_1():
    inner = EmailMessage()
    inner["Subject"] = "short"
    inner.set_content("one part only")
    message = make_message(attached_message(inner))
    assert [(p.path, p.content_type) for p in message.parts] == [
        ("1", "text/plain"),
        ("2", "message/rfc822"),
        ("2.1", "text/plain"),
    ]


def test_inline_images_are_marked_inline_and_still_inspected_as_files():
    msg = EmailMessage()
    msg["From"], msg["To"] = "a@example.gov", "b@example.gov"
    msg.set_content("<p>logo: <img src='cid:logo'></p>", subtype="html")
    msg.add_related(b"\x89PNG\r\n\x1a\n" + b"\0" * 32, maintype="image", subtype="png", cid="<logo>")
    msg.add_attachment(b"\x89PNG\r\n\x1a\n" + b"\0" * 32, maintype="image", subtype="png", filename="photo.png")
    message = make_message(msg)
    logo, photo = (p for p in message.parts if p.content_type == "image/png")
    assert (logo.is_inline_image, logo.content_id, logo.filename) == (True, "<logo>", None)
    assert (photo.is_inline_image, photo.disposition) == (False, "attachment")
    assert [p.path for p in message.attachments] == [logo.path, photo.path]
    assert [b.content_type for b in message.text_bodies] == ["text/html"]


def test_text_that_is_not_a_body_type_is_an_attachment_not_lost():
    message = make_message(
        b"From: a@example.gov\r\nTo: b@example.gov\r\nContent-Type: text/javascript\r\n\r\n"
        b"new ActiveXObject('WScript.Shell').Run('calc');\r\n"
    )
    assert [p.content_type for p in message.attachments] == ["text/javascript"]
    assert message.text_bodies == []
    assert "WScript.Shell" in message.attachment_texts[0].text


def test_a_text_part_with_a_file_name_is_an_attachment_and_its_text_is_extracted():
    msg = EmailMessage()
    msg["From"], msg["To"] = "a@example.gov", "b@example.gov"
    msg.set_content("Cover note.")
    msg.add_attachment("name,ssn\r\nAna,123-45-6789\r\n", subtype="csv", filename="staff.csv")
    message = make_message(msg)
    assert [p.filename for p in message.attachments] == ["staff.csv"]
    assert message.body_text == "Cover note.\r\n"
    assert "123-45-6789" in message.all_text


# -- charsets and encodings ---------------------------------------------------


def test_a_declared_charset_is_used():
    message = make_message(
        b"From: a@example.gov\r\nContent-Type: text/plain; charset=iso-8859-1\r\n\r\nCaf\xe9 cr\xe8me\r\n"
    )
    assert message.body_text == "Café crème\r\n"
    assert message.problems == []


@pytest.mark.parametrize("charset", ["x-no-such-charset", "idna", "rot13", "unknown-8bit"])
def test_an_unknown_or_unusable_charset_is_a_cosmetic_problem_not_a_crash(charset):
    raw = (
        f"From: a@example.gov\r\nContent-Type: text/plain; charset={charset}\r\n\r\n".encode()
        + "naïve text\r\n".encode()
    )
    message = make_message(raw)
    assert message.body_text == "naïve text\r\n"  # read as UTF-8 instead
    assert [(p.where, p.kind) for p in message.problems] == [("1", "defect")]
    assert charset in message.problems[0].detail


def test_utf16_body_without_charset_is_read_by_its_byte_order_mark():
    encoded = base64.b64encode("Hello from UTF-16".encode("utf-16")).decode()
    message = make_message(f"From: a@example.gov\r\nContent-Transfer-Encoding: base64\r\n\r\n{encoded}\r\n".encode())
    assert message.body_text == "Hello from UTF-16"


def test_bad_base64_characters_are_skipped_as_a_cosmetic_defect():
    good = base64.b64encode(b"attachment bytes!").decode()
    message = make_message(
        (
            "From: a@example.gov\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\n"
            "Content-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
            f"{good[:8]}!*{good[8:]}\r\n--X--\r\n"
        ).encode()
    )
    assert message.parts[0].payload == b"attachment bytes!"
    assert ("1", "defect") in {(p.where, p.kind) for p in message.problems}


def test_base64_that_cannot_be_decoded_is_corrupt():
    message = make_message(
        b"From: a@example.gov\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\n"
        b"Content-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"QUJDR\r\n--X--\r\n"
    )  # 5 characters: no padding can make that base64
    assert message.parts[0].path == "1"
    assert any(
        p.where == "1" and p.kind == "corrupt" and p.detail == "InvalidBase64LengthDefect" for p in message.problems
    )


def test_an_unknown_transfer_encoding_is_inspected_as_sent_and_noted():
    message = make_message(b"From: a@example.gov\r\nContent-Transfer-Encoding: x-gzip64\r\n\r\nH4sIAAAA\r\n")
    assert message.parts[0].payload == b"H4sIAAAA\r\n"
    assert [(p.kind, p.where) for p in message.problems] == [("defect", "1")]


# -- malformed and hostile structure ------------------------------------------


def test_a_missing_close_boundary_is_malformed():
    message = make_message(
        b"From: a@example.gov\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n--X\r\n"
        b"Content-Type: text/plain\r\n\r\nunfinished\r\n"
    )
    message.parts  # noqa: B018
    assert ("message", "malformed", "CloseBoundaryNotFoundDefect") in {
        (p.where, p.kind, p.detail) for p in message.problems
    }


def test_twenty_levels_of_nesting_are_inspected():
    message = make_message(nested_multiparts(20))
    assert [p.path for p in message.parts] == [".".join(["1"] * 20)]
    assert message.body_text == "deepest text\r\n"
    assert message.problems == []


def test_the_twenty_first_level_of_nesting_is_a_cap_problem():
    message = make_message(nested_multiparts(21))
    assert message.parts == []
    assert [(p.kind, p.detail) for p in message.problems] == [
        ("cap", "MIME nesting deeper than 20 levels; not inspected")
    ]


def test_a_1000_deep_nesting_bomb_is_stopped_quickly_without_recursion_errors():
    raw = nested_multiparts(1000, b"x\r\n" * 100_000)  # every line is checked against every open boundary
    started = time.monotonic()
    message = make_message(raw)
    parts = message.parts
    assert time.monotonic() - started < 2.0
    assert parts == []
    assert any(
        p.where == "message" and p.kind == "cap" and "nesting deeper than 20" in p.detail for p in message.problems
    )


def test_nesting_the_parser_cannot_handle_is_a_cap_problem_not_a_recursion_error():
    # With the nesting cap set absurdly high the parser itself recurses too deep; that is caught too.
    message = make_message(nested_multiparts(5000), mime_nesting=100_000)
    assert [p.content_type for p in message.parts] == ["multipart/mixed"]  # the headers alone
    assert ("message", "cap", "MIME nesting is too deep to parse") in {
        (p.where, p.kind, p.detail) for p in message.problems
    }


def test_the_part_count_cap_is_a_problem_and_stops_the_walk():
    msg = EmailMessage()
    msg["From"] = "a@example.gov"
    msg.set_content("body")
    for index in range(15):
        msg.add_attachment(
            f"file {index}".encode(), maintype="application", subtype="octet-stream", filename=f"f{index}.bin"
        )
    message = make_message(msg, mime_parts=10)
    assert len(message.parts) == 10
    assert [(p.where, p.kind, p.detail) for p in message.problems] == [
        ("message", "cap", "more than 10 MIME parts; the rest were not inspected")
    ]


def test_a_breadth_bomb_of_empty_parts_is_stopped_while_parsing():
    raw = (
        b"From: a@example.gov\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n"
        + b"--X\r\n\r\nx\r\n" * 200_000
        + b"--X--\r\n"
    )
    message = make_message(raw)
    started = time.monotonic()
    parts = message.parts
    assert time.monotonic() - started < 1.5  # parsing all 200,000 took over 10 s
    assert len(parts) == 1000
    assert ("message", "cap", "more than 1000 MIME parts; the rest were not inspected") in {
        (p.where, p.kind, p.detail) for p in message.problems
    }


def test_an_html_body_past_the_character_cap_is_cut_and_the_cut_is_a_problem():
    html = "<html><body>" + "<p>word</p>" * 600 + "</body></html>"
    message = make_message(f"From: a@example.gov\r\nContent-Type: text/html\r\n\r\n{html}".encode(), extract_chars=1000)
    assert message.text_bodies[0].text.count("word") == html[:4000].count("word") < 600  # 4 x extract_chars of markup
    assert [(p.where, p.kind) for p in message.problems] == [("1", "cap")]


def test_html_nested_past_what_the_parser_reads_is_a_cap_problem():
    html = "<div>" * 3000 + "hidden deep" + "</div>" * 3000 + "<p>after</p>"
    message = make_message(f"From: a@example.gov\r\nContent-Type: text/html\r\n\r\n{html}".encode())
    assert "hidden deep" not in message.body_text
    assert [(p.where, p.kind) for p in message.problems] == [("1", "cap")]
    assert "nested too deeply" in message.problems[0].detail


def test_large_html_bodies_are_read_in_bounded_time():
    block = '<div class="x"><p>Some words <b>here</b></p></div>\r\n'
    for blocks, cut in ((150_000, False), (500_000, True)):  # 7.5 MB is read whole; 25 MB up to 4 x extract_chars
        html = "<html><body>" + block * blocks + "</body></html>"
        message = make_message(f"From: a@example.gov\r\nContent-Type: text/html\r\n\r\n{html}".encode())
        started = time.monotonic()
        text = message.body_text
        assert time.monotonic() - started < 4
        assert text.count("Some words") == (html[:8_000_000].count("Some words") if cut else blocks)
        assert [p.kind for p in message.problems] == (["cap"] if cut else [])


def test_problems_stop_at_a_bound_with_one_saying_so():
    body = "".join(
        "--X\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n\r\nQUJ\r\n"
        for _ in range(MAX_PROBLEMS + 50)
    )
    message = make_message(
        f"From: a@example.gov\r\nContent-Type: multipart/mixed; boundary=X\r\n\r\n{body}--X--\r\n".encode()
    )
    message.parts  # noqa: B018
    assert len(message.problems) == MAX_PROBLEMS + 1
    assert message.problems[-1].detail == f"more than {MAX_PROBLEMS} problems; the rest were not recorded"


def test_a_header_only_message_has_one_empty_text_part():
    message = make_message(b"From: a@example.gov\r\nTo: b@example.gov\r\nSubject: nothing more")
    assert message.subject == "nothing more"
    assert [(p.path, p.content_type, p.payload) for p in message.parts] == [("1", "text/plain", b"")]
    assert message.attachments == [] and message.archive_members == [] and message.attachment_texts == []


def test_an_empty_message_has_no_headers_and_no_content():
    message = make_message(b"")
    assert message.header_count("From") == 0 and message.subject == "" and message.from_addresses == []
    assert [(p.content_type, p.payload) for p in message.parts] == [("text/plain", b"")]
    assert message.all_text == "\n\n"


def test_header_garbage_without_a_colon_does_not_break_the_parts():
    message = make_message(b"this is not a header\r\nFrom: a@example.gov\r\n\r\nbody\r\n")
    assert message.parts[0].content_type == "text/plain"
    assert any(p.kind == "malformed" for p in message.problems)


# -- views are computed once, from any thread -------------------------------------


def test_each_view_is_computed_exactly_once_when_many_threads_ask_at_the_same_time(monkeypatch):
    calls: dict[str, int] = {}

    def counting(name: str) -> Any:
        real = getattr(content, name)

        def wrapper(message: Message) -> Any:
            calls[name] = calls.get(name, 0) + 1
            time.sleep(0.05)  # widen the window in which a second thread could start computing too
            return real(message)

        return wrapper

    for name in ("parse", "walk", "text_bodies", "archive_members", "extracted_texts"):
        monkeypatch.setattr(content, name, counting(name))
    message = make_message(report_message())
    start = threading.Barrier(8)
    seen: list[tuple[int, ...]] = []

    def use_every_view() -> None:
        start.wait()
        seen.append(
            tuple(
                id(view)
                for view in (
                    message.tree,
                    message.parts,
                    message.text_bodies,
                    message.attachments,
                    message.archive_members,
                    message.attachment_texts,
                    message.all_text,
                )
            )
        )

    threads = [threading.Thread(target=use_every_view) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert calls == {"parse": 1, "walk": 1, "text_bodies": 1, "archive_members": 1, "extracted_texts": 1}
    assert len(seen) == 8 and len(set(seen)) == 1  # every thread got the very same objects


def test_the_author_is_the_one_from_address_and_the_sender_falls_back_to_the_envelope():
    def of(from_header: str, mail_from: str = "Bounce@Lists.Example.org") -> Message:
        raw = f"From: {from_header}\r\nSubject: x\r\n\r\nbody\r\n".encode()
        return Message(Envelope(mail_from, ("a@example.gov",)), raw, "inbound")

    one = of("Sam Ortiz <SOrtiz@Example.gov>")
    assert (one.author, one.sender) == ("sortiz@example.gov", "sortiz@example.gov")
    two = of("a@example.org, b@example.org")
    assert (two.author, two.sender) == (None, "bounce@lists.example.org")  # several authors: nobody in particular
    assert of("undisclosed-recipients:;", mail_from="").sender == ""


def test_an_address_list_matches_addresses_and_whole_domains_only():
    from milter.kernel.directory import listed

    entries = ["billing@vendor.com", "@county.org"]
    assert listed("Billing@Vendor.com", entries) and listed("clerk@county.org", entries)
    assert not listed("sales@vendor.com", entries)
    assert not listed("clerk@sub.county.org", entries)  # "@domain" is that domain, not its subdomains
    assert not listed("x@evilcounty.org", entries)  # a suffix of the name is not the domain
