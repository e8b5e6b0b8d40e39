"""How a message leaves: SMTP to the downstream server, or files in a Maildir.

`send` returns one SMTP-style reply per recipient ("250 ...", "451 ...",
"550 ..."), so the queue can decide per recipient. A connection that fails
answers 4xx for everyone it did not reach: the queue will try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import aiosmtplib

from milter.settings import DeliverSettings


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Transport:
    async def send(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, str]:
        raise NotImplementedError


class SmtpTransport(Transport):
    def __init__(self, host: str, port: int, settings: DeliverSettings, helo: str) -> None:
        self.host, self.port, self.settings, self.helo = host, port, settings, helo

    def __repr__(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    async def send(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, str]:
        replies: dict[str, str] = {}
        client = aiosmtplib.SMTP(hostname=self.host, port=self.port, timeout=self.settings.timeout,
                                 local_hostname=self.helo, start_tls=False, validate_certs=self.settings.tls_verify)
        try:
            await client.connect()
            await client.ehlo()
            if self.settings.tls != "none" and client.supports_extension("starttls"):
                await client.starttls()
                await client.ehlo()
            elif self.settings.tls == "encrypt":
                return {r: f"454 4.7.5 {self} does not offer STARTTLS and [deliver] tls = \"encrypt\"" for r in rcpts}
            options = []
            if not data.isascii() and client.supports_extension("8bitmime"):
                options.append("BODY=8BITMIME")
            if client.supports_extension("size"):
                options.append(f"SIZE={len(data)}")
            encoding = "ascii"
            if not all(address.isascii() for address in (mail_from, *rcpts)):
                if not client.supports_extension("smtputf8"):  # RFC 6531 section 3.2: the sender must bounce
                    return {r: f"553 5.6.7 {self} does not support SMTPUTF8, needed for these addresses" for r in rcpts}
                options.append("SMTPUTF8")
                encoding = "utf-8"
            try:
                await client.mail(mail_from, options=options, encoding=encoding)
            except aiosmtplib.SMTPResponseException as exc:
                return {r: _reply(exc.code, exc.message) for r in rcpts}
            accepted = []
            for rcpt in rcpts:
                try:
                    await client.rcpt(rcpt, encoding=encoding)
                    accepted.append(rcpt)
                except aiosmtplib.SMTPResponseException as exc:
                    replies[rcpt] = _reply(exc.code, exc.message)
            if accepted:
                try:
                    response = await client.data(data)
                    replies.update({r: _reply(response.code, response.message) for r in accepted})
                except aiosmtplib.SMTPResponseException as exc:
                    replies.update({r: _reply(exc.code, exc.message) for r in accepted})
            with contextlib.suppress(aiosmtplib.SMTPException, OSError):
                await client.quit()
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            # Anything not answered yet is retried: a lost connection never loses a recipient.
            reason = f"451 4.4.1 {self}: {type(exc).__name__}: {exc}".replace("\n", " ")
            for rcpt in rcpts:
                replies.setdefault(rcpt, reason)
        finally:
            client.close()
        return replies


def _reply(code: int, message: str) -> str:
    """One line: a multi-line SMTP reply joined with spaces."""
    return f"{code} {' '.join(message.split())}"


class MaildirTransport(Transport):
    """Delivery into one Maildir, so the gateway runs with no mail server at all."""

    def __init__(self, path: Path) -> None:
        self.path = path
        for sub in ("tmp", "new", "cur"):
            (path / sub).mkdir(parents=True, exist_ok=True)

    def __repr__(self) -> str:
        return f"maildir:{self.path}"

    async def send(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, str]:
        return await asyncio.to_thread(self._write_all, mail_from, rcpts, data)

    def _write_all(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, str]:
        replies = {}
        for rcpt in rcpts:
            try:
                name = self._write(f"Return-Path: <{mail_from}>\r\nDelivered-To: {rcpt}\r\n".encode() + data)
                replies[rcpt] = f"250 2.0.0 delivered to {self.path}/new/{name}"
            except OSError as exc:
                replies[rcpt] = f"451 4.3.0 cannot write to {self.path}: {exc.strerror}"
        _fsync_dir(self.path / "new")
        return replies

    def _write(self, data: bytes) -> str:
        name = f"{time.time():.6f}.{secrets.token_hex(6)}.{socket.gethostname()}"
        temporary = self.path / "tmp" / name
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.rename(temporary, self.path / "new" / name)
        return name


def transport_for(url: str, settings: DeliverSettings, helo: str) -> Transport:
    if url.startswith("maildir:"):
        return MaildirTransport(Path(url.removeprefix("maildir:")))
    host, _, port = url.removeprefix("smtp://").rstrip("/").rpartition(":")
    return SmtpTransport(host.strip("[]"), int(port), settings, helo)
