"""What the quarantine, software, virus and known-sender tests share: real files, mail with them, SMTP."""

from __future__ import annotations

import email.policy
import io
import smtplib
import struct
import zipfile
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any, TypeVar

from fpdf import FPDF

from tests.conftest import TRUSTED

STRANGER = "sales@roadsalt-depot.net"  # an outside sender no one at the agency has written to
PDF = "application/pdf"
# The rule ships in monitor mode (a new installation learns its correspondents first); these tests enforce it.
ENFORCE = {"policies": {"unknown_sender": {"mode": "enforce"}}}


T = TypeVar("T")


def in_thread(function: Callable[..., T], *args: Any) -> T:
    """Run `function` in a thread of its own, where asyncio.run works even when this thread has a loop
    (Playwright's sync API leaves one running for the rest of the session once a browser test has run)."""
    with ThreadPoolExecutor(1) as worker:
        return worker.submit(function, *args).result()


def pdf(text: str = "Quote 4471: 40 tonnes of road salt, delivered.") -> bytes:
    """A real one-page PDF with text, as a vendor's quote would be."""
    document = FPDF()
    document.add_page()
    document.set_font("helvetica", size=12)
    document.cell(text=text)
    return bytes(document.output())


def png(width: int = 120, height: int = 40) -> bytes:
    """A real PNG (a grey rectangle), as a signature logo would be."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    rows = b"".join(b"\0" + b"\x80" * width for _ in range(height))
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


def zip_of(files: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


def mail(
    *files: tuple[str, bytes, str],
    sender: str = STRANGER,
    to: str = "sortiz@example.gov",
    cc: str | None = None,
    subject: str = "Quote for road salt",
    body: str = "Hello, our quote is attached.\n",
    html: str | None = None,
) -> bytes:
    message = EmailMessage()
    message["From"] = sender
    message["To"] = to
    if cc:
        message["Cc"] = cc
    message["Subject"] = subject
    message["Message-ID"] = make_msgid(domain="roadsalt-depot.net")
    message["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    message.set_content(body)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for name, data, mime in files:
        maintype, subtype = mime.split("/", 1)
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message.as_bytes(policy=email.policy.SMTP)  # CRLF line ends, as on the wire


def send(port: int, raw: bytes, mail_from: str, rcpts: list[str], *, inside: bool = False) -> tuple[int, str]:
    """Send over SMTP as an outside server (127.0.0.1), or as the agency's mail server (inside)."""
    source = (TRUSTED, 0) if inside else ("127.0.0.1", 0)
    with smtplib.SMTP("127.0.0.1", port, source_address=source, timeout=60) as client:
        try:
            refused = client.sendmail(mail_from, rcpts, raw)
        except smtplib.SMTPDataError as exc:
            error = exc.smtp_error
            return exc.smtp_code, " ".join((error.decode() if isinstance(error, bytes) else error).split())
        assert not refused, refused
    return 250, ""
