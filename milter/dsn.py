"""Delivery status notifications (RFC 3464) for recipients that failed for good."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from email.utils import format_datetime, make_msgid

from milter.db import utcnow


@dataclass(frozen=True)
class Failure:
    rcpt: str
    reply: str  # the downstream's last reply, e.g. "550 5.1.1 <x@y>: user unknown"
    status: str  # enhanced status code, e.g. "5.1.1"


def status_of(reply: str, default: str = "5.0.0") -> str:
    """The enhanced status code in an SMTP reply (RFC 3463), or a default for its class."""
    parts = reply.split()
    if len(parts) > 1 and parts[1][:1] in "245" and parts[1].count(".") == 2:
        return parts[1]
    if parts and parts[0][:1] in "45":
        return f"{parts[0][0]}.0.0"
    return default


def _ascii(text: str) -> str:
    return text.encode("ascii", "replace").decode("ascii").replace("\r", " ").replace("\n", " ")


def build(*, hostname: str, sender: str, failures: list[Failure], original_headers: bytes,
          original_id: str, arrived: datetime, expired: bool = False) -> bytes:
    """A multipart/report DSN to `sender` about the failed recipients."""
    boundary = f"dsn-{secrets.token_hex(12)}"
    now = utcnow()
    why = ("it could not be delivered for 5 days and the gateway has stopped trying" if expired
           else "the receiving mail server refused it")
    lines = "\r\n".join(f"    {_ascii(f.rcpt)}\r\n      {_ascii(f.reply)}" for f in failures)
    human = (
        f"This is the mail gateway at {hostname}.\r\n\r\n"
        f"Your message could not be delivered to the recipients below, because {why}:\r\n\r\n{lines}\r\n\r\n"
        "What to do: check each address for typing mistakes. If an address is right and the\r\n"
        "problem persists, forward this notice to your IT department. Other recipients of\r\n"
        "the same message, if any, are not affected.\r\n"
    )
    per_message = f"Reporting-MTA: dns; {hostname}\r\nX-Original-Queue-ID: {original_id}\r\nArrival-Date: {format_datetime(arrived)}\r\n"
    per_recipient = "".join(
        f"\r\nFinal-Recipient: rfc822; {_ascii(f.rcpt)}\r\nAction: failed\r\nStatus: {f.status}\r\n"
        f"Diagnostic-Code: smtp; {_ascii(f.reply)}\r\nLast-Attempt-Date: {format_datetime(now)}\r\n"
        for f in failures
    )
    headers = original_headers.rstrip(b"\r\n") + b"\r\n"
    encoding = "7bit" if headers.isascii() else "8bit"
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
        f"Content-Type: text/rfc822-headers\r\nContent-Transfer-Encoding: {encoding}\r\nContent-Description: Undelivered message headers\r\n\r\n"
    ).encode("ascii")
    return head + headers + f"\r\n--{boundary}--\r\n".encode("ascii")
