"""How a message leaves: SMTP to the downstream server, or files in a Maildir.

`send` returns one SMTP-style reply per recipient ("250 ...", "451 ...",
"550 ..."), so the queue can decide per recipient. A connection that fails
answers 4xx for everyone it did not reach: the queue will try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import time
from collections.abc import Sequence
from pathlib import Path

import aiosmtplib

from milter.delivery.settings import DeliverSettings
from milter.kernel.durable import fsync_dir, write_file


class Transport:
    async def send(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, str]:
        raise NotImplementedError

    async def close(self) -> None:
        """Let go of anything kept open between messages."""


class Unreachable(Exception):
    """The downstream could not be reached, or refused the session itself; the reply says why."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


class SmtpTransport(Transport):
    """SMTP to one downstream server, keeping a few idle sessions for the next message.

    Reusing a session saves a TCP handshake, EHLO and STARTTLS per message
    (Postfix's connection cache does the same). A reused session that turns
    out to be closed is replaced before anything of the message was sent.
    """

    idle_seconds = 20.0  # below Postfix's default smtpd_timeout of 300s and most servers' idle limits

    def __init__(self, host: str, port: int, settings: DeliverSettings, helo: str) -> None:
        self.host, self.port, self.settings, self.helo = host, port, settings, helo
        self._idle: list[tuple[float, aiosmtplib.SMTP]] = []

    def __repr__(self) -> str:
        return f"smtp://{self.host}:{self.port}"

    async def send(self, mail_from: str, rcpts: Sequence[str], data: bytes) -> dict[str, str]:
        while True:
            try:
                client, reused = await self._session()
            except Unreachable as exc:
                return dict.fromkeys(rcpts, exc.reply)
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                return dict.fromkeys(rcpts, self._lost(exc))
            try:
                replies, clean = await self._transaction(client, mail_from, rcpts, data)
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
                client.close()
                if reused and not getattr(exc, "after_mail", False):
                    continue  # an idle session the server had closed: nothing was sent, try a new one
                return dict.fromkeys(rcpts, self._lost(exc))
            except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
                # Anything not answered yet is retried: a lost connection never loses a recipient.
                client.close()
                return dict.fromkeys(rcpts, self._lost(exc))
            self._release(client, clean)
            return replies

    async def _session(self) -> tuple[aiosmtplib.SMTP, bool]:
        while self._idle:
            since, client = self._idle.pop()
            if time.monotonic() - since < self.idle_seconds and client.is_connected:
                return client, True
            await _quit(client)
        client = aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            timeout=self.settings.timeout,
            local_hostname=self.helo,
            start_tls=False,
            validate_certs=self.settings.tls_verify,
        )
        try:
            await client.connect()
            await client.ehlo()
            if self.settings.tls != "none" and client.supports_extension("starttls"):
                await client.starttls()
                await client.ehlo()
            elif self.settings.tls == "encrypt":
                raise Unreachable(f'454 4.7.5 {self} does not offer STARTTLS and [deliver] tls = "encrypt"')
        except BaseException:
            client.close()
            raise
        return client, False

    async def _transaction(
        self, client: aiosmtplib.SMTP, mail_from: str, rcpts: Sequence[str], data: bytes
    ) -> tuple[dict[str, str], bool]:
        """One MAIL..DATA; the replies, and whether the session is clean for another message."""
        options = []
        if not data.isascii() and client.supports_extension("8bitmime"):
            options.append("BODY=8BITMIME")
        if client.supports_extension("size"):
            options.append(f"SIZE={len(data)}")
        encoding = "ascii"
        if not all(address.isascii() for address in (mail_from, *rcpts)):
            if not client.supports_extension("smtputf8"):  # RFC 6531 section 3.2: the sender must bounce
                return dict.fromkeys(
                    rcpts, f"553 5.6.7 {self} does not support SMTPUTF8, needed for these addresses"
                ), True
            options.append("SMTPUTF8")
            encoding = "utf-8"
        try:
            await client.mail(mail_from, options=options, encoding=encoding)
        except aiosmtplib.SMTPResponseException as exc:
            return {r: _reply(exc.code, exc.message) for r in rcpts}, await _reset(client)
        replies: dict[str, str] = {}
        accepted = []
        try:
            for rcpt in rcpts:
                try:
                    await client.rcpt(rcpt, encoding=encoding)
                    accepted.append(rcpt)
                except aiosmtplib.SMTPResponseException as exc:
                    replies[rcpt] = _reply(exc.code, exc.message)
            if not accepted:
                return replies, await _reset(client)
            try:
                response = await client.data(data)
                replies.update({r: _reply(response.code, response.message) for r in accepted})
            except aiosmtplib.SMTPResponseException as exc:
                replies.update({r: _reply(exc.code, exc.message) for r in accepted})
                return replies, await _reset(client)
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
            exc.after_mail = True  # type: ignore[attr-defined]  # the server saw MAIL: do not resend blindly
            raise
        return replies, True

    def _release(self, client: aiosmtplib.SMTP, clean: bool) -> None:
        if clean and client.is_connected and len(self._idle) < self.settings.concurrency:
            self._idle.append((time.monotonic(), client))
        else:
            client.close()

    def _lost(self, exc: BaseException) -> str:
        return f"451 4.4.1 {self}: {type(exc).__name__}: {exc}".replace("\n", " ")

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for _since, client in idle:
            await _quit(client)


async def _reset(client: aiosmtplib.SMTP) -> bool:
    """RSET after an unfinished transaction; False when the session is not reusable."""
    try:
        await client.rset()
    except (TimeoutError, aiosmtplib.SMTPException, OSError):
        return False
    return True


async def _quit(client: aiosmtplib.SMTP) -> None:
    with contextlib.suppress(TimeoutError, aiosmtplib.SMTPException, OSError):
        await client.quit()
    client.close()


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
        fsync_dir(self.path / "new")
        return replies

    def _write(self, data: bytes) -> str:
        name = f"{time.time():.6f}.{secrets.token_hex(6)}.{socket.gethostname()}"
        write_file(self.path / "tmp" / name, self.path / "new" / name, data, mode=0o640)
        return name


def transport_for(url: str, settings: DeliverSettings, helo: str) -> Transport:
    if url.startswith("maildir:"):
        return MaildirTransport(Path(url.removeprefix("maildir:")))
    host, _, port = url.removeprefix("smtp://").rstrip("/").rpartition(":")
    return SmtpTransport(host.strip("[]"), int(port), settings, helo)
