"""Delivery status notifications (RFC 3464) for recipients that failed for good.

A DSN is a multipart/report with three parts: a note for people, the
machine-readable message/delivery-status (one block per failed recipient),
and the original message's headers (never its body). Headers with 8-bit
bytes (UTF-8, RFC 6532) go in a message/global-headers part (RFC 6533), as
Postfix does, so the report itself stays a well-formed MIME message.
"""

from __future__ import annotations

import re
import secrets
import textwrap
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, make_msgid

from milter.kernel.db import utcnow

ENHANCED_STATUS = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})$")
MAX_HEADER_BYTES = 64 * 1024  # enough for any real header block; a DSN must stay small


@dataclass(frozen=True)
class Failure:
    rcpt: str
    reply: str  # the downstream's last reply, e.g. "550 5.1.1 <x@y>: user unknown"
    status: str  # enhanced status code, e.g. "5.1.1"


def status_of(reply: str, default: str = "5.0.0") -> str:
    """The enhanced status code in an SMTP reply (RFC 3463), or X.0.0 for the reply's class.

    The enhanced code must agree with the reply's class ("550 4.1.1" is
    inconsistent, and the reply code wins), as RFC 3463 section 2 requires.
    """
    parts = reply.split(None, 2)
    code = parts[0] if parts else ""
    klass = code[:1] if len(code) == 3 and code.isdigit() and code[0] in "245" else ""
    if len(parts) > 1:
        found = ENHANCED_STATUS.match(parts[1])
        if found and (not klass or found.group(1) == klass):
            return parts[1]
    return f"{klass}.0.0" if klass else default


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii").replace("\r", " ").replace("\n", " ")


def _address(address: str) -> str:
    """An address-type field value: "rfc822; a@b", or RFC 6533's "utf-8; j\\x{FC}rgen@b" for UTF-8 addresses."""
    if address.isascii():
        return f"rfc822; {_ascii(address)}"
    return "utf-8; " + "".join(c if " " < c <= "~" and c not in "\\+=" else f"\\x{{{ord(c):X}}}" for c in address)


def _field(name: str, value: str, *, free_text: bool = False) -> str:
    """One header-style field, folded at spaces so lines stay short (free text may be cut anywhere)."""
    lines = textwrap.wrap(
        " ".join(_ascii(value).split()), 76 - len(name), break_long_words=free_text, break_on_hyphens=False
    ) or [""]
    return f"{name}: " + "\r\n  ".join(lines) + "\r\n"


def _original_headers(headers: bytes) -> tuple[bytes, str]:
    """The headers to include, cut at a line end if huge, and the part's Content-Type and encoding."""
    headers = headers.rstrip(b"\r\n")
    if len(headers) > MAX_HEADER_BYTES:
        cut = headers.rfind(b"\r\n", 0, MAX_HEADER_BYTES)
        headers = headers[: cut if cut > 0 else MAX_HEADER_BYTES]
    headers += b"\r\n"
    if headers.isascii():
        return headers, "Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: 7bit\r\n"
    return headers, "Content-Type: message/global-headers\r\nContent-Transfer-Encoding: 8bit\r\n"


def build(
    *,
    hostname: str,
    sender: str,
    failures: list[Failure],
    original_headers: bytes,
    original_id: str,
    arrived: datetime,
    expired: bool = False,
) -> bytes:
    """A multipart/report DSN to `sender` about the failed recipients."""
    boundary = f"dsn-{secrets.token_hex(12)}"
    now = utcnow()
    why = (
        f"it could not be delivered since it arrived ({format_datetime(arrived)}) and the gateway has stopped trying"
        if expired
        else "the receiving mail server refused it"
    )
    lines = "".join(
        f"  <{_address(f.rcpt).split('; ', 1)[1]}>:\r\n"
        + "".join(f"      {line}\r\n" for line in textwrap.wrap(_ascii(f.reply), 70))
        for f in failures
    )
    human = (
        f"This is the mail gateway at {hostname}.\r\n\r\n"
        f"Your message could not be delivered to the recipients below, because {why}:\r\n\r\n{lines}\r\n"
        "What to do: check each address for typing mistakes. If an address is right and the\r\n"
        "problem persists, forward this notice to your IT department. Other recipients of\r\n"
        "the same message, if any, are not affected.\r\n"
    )
    per_message = (
        _field("Reporting-MTA", f"dns; {hostname}")
        + _field("X-Original-Queue-ID", original_id)
        + _field("Arrival-Date", format_datetime(arrived))
    )
    per_recipient = "".join(
        "\r\n"
        + _field("Final-Recipient", _address(f.rcpt))
        + "Action: failed\r\n"
        + _field("Status", f.status)
        + _field("Diagnostic-Code", f"smtp; {f.reply}", free_text=True)
        + _field("Last-Attempt-Date", format_datetime(now))
        for f in failures
    )
    headers, headers_type = _original_headers(original_headers)
    head = (
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>\r\n"
        f"To: <{_ascii(sender)}>\r\n"
        "Subject: Undelivered Mail Returned to Sender\r\n"
        f"Date: {format_datetime(now)}\r\n"
        f"Message-ID: {make_msgid(domain=hostname)}\r\n"
        "Auto-Submitted: auto-replied\r\n"
        "MIME-Version: 1.0\r\n"
        f'Content-Type: multipart/report; report-type=delivery-status; boundary="{boundary}"\r\n'
        "\r\n"
        "This is a MIME-encapsulated message.\r\n"
        f"\r\n--{boundary}\r\n"
        "Content-Type: text/plain; charset=us-ascii\r\nContent-Description: Notification\r\n\r\n"
        f"{human}"
        f"\r\n--{boundary}\r\n"
        "Content-Type: message/delivery-status\r\nContent-Description: Delivery report\r\n\r\n"
        f"{per_message}{per_recipient}"
        f"\r\n--{boundary}\r\n"
        f"{headers_type}Content-Description: Undelivered message headers\r\n\r\n"
    ).encode("ascii")
    return head + headers + f"\r\n--{boundary}--\r\n".encode("ascii")
