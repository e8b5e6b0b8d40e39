"""What the approval tests share: the shipped approval config, a broadcast message, SMTP, notices and links."""

from __future__ import annotations

import base64
import email
import email.policy
import re
import smtplib
import time
import tomllib
from email.message import EmailMessage
from typing import Any

from tests.conftest import ROOT, TRUSTED, Sink
from tests.support.servers import free_port

SHIPPED = tomllib.loads((ROOT / "config" / "aup-milter.toml").read_text())
LINK = re.compile(r"https?://\S+/approvals/token/[A-Za-z0-9_.\-]+")
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
ATTACHMENT = base64.encodebytes(bytes(range(256)) * 4).replace(b"\n", b"\r\n")


def approval_config(extra: dict[str, Any] | None = None, *, console: bool = True) -> dict[str, Any]:
    """The shipped [approvals] and [policies.broadcast] sections, the console on a free port, and `extra` on top."""
    config: dict[str, Any] = {
        "approvals": dict(SHIPPED["approvals"]),
        "policies": {"broadcast": dict(SHIPPED["policies"]["broadcast"])},
    }
    if console:
        port = free_port()
        config["console"] = {"enabled": True, "listen": f"127.0.0.1:{port}", "base_url": f"http://127.0.0.1:{port}"}
    for key, value in (extra or {}).items():
        if isinstance(value, dict) and isinstance(config.get(key), dict):
            config[key] = {**config[key], **value}
        else:
            config[key] = value
    return config


def broadcast(
    sender: str = "Sam Ortiz <sortiz@example.gov>",
    to: str = "all-staff@example.gov",
    subject: str = "Main Street closed Friday",
) -> bytes:
    """A multipart/alternative message with an attachment, as a mail client writes one (CRLF line ends)."""
    return (
        (
            f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Fri, 20 Nov 2026 17:30:00 -0500\r\n"
            f"Message-ID: <{time.time_ns()}@example.gov>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="outer"\r\n\r\n'
            "This is a multi-part message.\r\n"
            "--outer\r\n"
            'Content-Type: multipart/alternative; boundary="inner"\r\n\r\n'
            "--inner\r\n"
            "Content-Type: text/plain; charset=us-ascii\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
            "Main Street is closed on Friday for paving.\r\nPlease use Elm Street.\r\n"
            "--inner\r\n"
            "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: 7bit\r\n\r\n"
            "<html><body><p>Main Street is closed on Friday for paving.</p>"
            '<p><img src="https://tracker.example.com/pixel.gif"><script>alert(1)</script>Please use Elm Street.</p></body></html>\r\n'
            "--inner--\r\n"
            "--outer\r\n"
            "Content-Type: application/octet-stream; name=detour-map.bin\r\n"
            "Content-Disposition: attachment; filename=detour-map.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        ).encode()
        + ATTACHMENT
        + b"--outer--\r\n"
    )


def send(port: int, raw: bytes, mail_from: str, rcpts: list[str]) -> str:
    """The final reply text of one message sent by the agency mail server."""
    with smtplib.SMTP("127.0.0.1", port, source_address=(TRUSTED, 0), timeout=30) as client:
        client.ehlo("mail.example.gov")
        client.mail(mail_from)
        for rcpt in rcpts:
            client.rcpt(rcpt)
        code, reply = client.data(raw)
    assert code == 250, (code, reply)
    return reply.decode()


def parsed(data: bytes) -> EmailMessage:
    return email.message_from_bytes(data, policy=email.policy.default)  # type: ignore[return-value]


def notices(sink: Sink, kind: str | None = None, to: str | None = None) -> list[EmailMessage]:
    """The notices the sink has received, optionally of one kind (X-AUP-Notice) and to one address."""
    found = []
    for received in sink.messages:
        message = parsed(received.data)
        if message["X-AUP-Notice"] is None:
            continue
        if (kind is None or message["X-AUP-Notice"] == kind) and (to is None or to in received.rcpt_tos):
            found.append(message)
    return found


def wait_for_notice(sink: Sink, kind: str, to: str, timeout: float = 20.0) -> EmailMessage:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = notices(sink, kind, to)
        if found:
            return found[-1]
        time.sleep(0.05)
    raise AssertionError(
        f"no {kind} notice to {to}; the sink has {[(m.rcpt_tos, m.data[:300]) for m in sink.messages]}"
    )


def text_of(message: EmailMessage) -> str:
    return message.get_body(("plain",)).get_content()  # type: ignore[union-attr]


def links_in(message: EmailMessage) -> dict[str, str]:
    """The approve and reject links of an approval request, from its text."""
    text = text_of(message)
    found = LINK.findall(text)
    assert len(found) == 2, text
    approve_at, reject_at = text.index("Approve it"), text.index("Reject it")
    return (
        {"approve": found[0], "reject": found[1]}
        if approve_at < reject_at
        else {"approve": found[1], "reject": found[0]}
    )


def delivered_to(sink: Sink, rcpt: str) -> list[bytes]:
    """Messages (not notices) the downstream received for `rcpt`."""
    return [m.data for m in sink.messages if rcpt in m.rcpt_tos and parsed(m.data)["X-AUP-Notice"] is None]
