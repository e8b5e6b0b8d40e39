"""Notices the gateway writes to people: what happened, which rule, what to do next.

A notice is an ordinary message the gateway composes (plain text, and HTML
when given), archived and delivered through the deliver queue like any other
(`accept.record_generated`). It is marked `Auto-Submitted: auto-generated`
(RFC 3834) so that auto-responders do not answer it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, make_msgid
from typing import TYPE_CHECKING

from sqlalchemy import Connection

from milter.intake import accept
from milter.kernel.db import utcnow
from quarantine.settings import NoticeSettings

if TYPE_CHECKING:
    from milter.runtime import Runtime


def compose(
    settings: NoticeSettings,
    to: Iterable[str],
    subject: str,
    text: str,
    *,
    html: str | None = None,
    kind: str = "notice",
    reply_to: str | None = None,
    hostname: str = "aup-milter.localdomain",
) -> bytes:
    message = EmailMessage(policy=SMTP)
    message["From"] = settings.sender
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = make_msgid(domain=hostname)
    message["Auto-Submitted"] = "auto-generated"
    message["X-AUP-Notice"] = kind
    if reply_to:
        message["Reply-To"] = reply_to
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message.as_bytes()


def send(connection: Connection, runtime: Runtime, data: bytes, to: Iterable[str], origin: str = "notice") -> str:
    """Archive and queue a notice inside the caller's transaction; returns its message id.

    The blob is written (and fsynced) first, so a rolled-back transaction
    leaves at most an unreferenced blob, never a queued notice without bytes.
    """
    message = accept.generated_message(runtime, data, runtime.config.settings.notices.bounce_address, to)
    digest = runtime.blobs.put(message.raw)
    accept.record_generated(connection, message, digest, origin)
    return message.id


async def send_now(runtime: Runtime, data: bytes, to: Iterable[str], origin: str = "notice") -> str:
    """The same from async code: through the group committer."""
    message = accept.generated_message(runtime, data, runtime.config.settings.notices.bounce_address, to)
    digest = await asyncio.get_running_loop().run_in_executor(runtime.io_pool, runtime.blobs.put, message.raw)
    await runtime.committer.run(lambda connection: accept.record_generated(connection, message, digest, origin))
    return message.id
