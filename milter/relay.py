"""The SMTP layer: turn an SMTP session into a Message, and a Decision into a reply.

Kept thin on purpose (aiosmtpd's handler hooks). What it enforces itself:
no open relay, unknown local recipients refused at RCPT (no backscatter),
CR/LF/NUL refused in envelope addresses, SIZE, free disk space, mail loops,
and line endings normalised so the downstream never sees a bare CR or LF.
It answers 250 only after `accept.store` has made the message durable; every
internal failure answers 4xx.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import ssl
import textwrap
import time
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any

from aiosmtpd.smtp import SMTP, AuthResult, Envelope as SmtpEnvelope, LoginPassword, Session

from milter import accept
from milter.db import utcnow
from milter.direction import direction_of, is_trusted
from milter.directory import normalise_address
from milter.message import Envelope, Message, normalise_line_endings
from milter.passwords import PasswordFile
from milter.pipeline import Decision, tempfail

if TYPE_CHECKING:
    from milter.runtime import Runtime

log = logging.getLogger(__name__)

FORBIDDEN_IN_ADDRESS = ("\r", "\n", "\x00")
TEMPFAIL = "451 4.3.0 Internal error; the message was not accepted, please try again later"
NO_SPACE = "452 4.3.1 Insufficient system storage; please try again later"


def format_reply(reply: str) -> str:
    """An SMTP reply: ASCII, lines of at most ~400 characters, multi-line when long."""
    reply = reply.encode("ascii", "replace").decode("ascii")
    code, _, rest = reply.partition(" ")
    status = ""
    if rest[:1] in "245" and rest.split(" ", 1)[0].count(".") == 2:
        status, _, rest = rest.partition(" ")
    prefix = f"{code} {status} " if status else f"{code} "
    lines = textwrap.wrap(" ".join(rest.split()), 400) or [""]
    return "\r\n".join((prefix if i == len(lines) - 1 else prefix.replace(" ", "-", 1)) + line for i, line in enumerate(lines))


def received_header(message: Message, hostname: str) -> bytes:
    env = message.envelope
    protocol = "ESMTP" + ("S" if env.tls else "") + ("A" if env.auth_user else "")
    recipient = f"\r\n\tfor <{env.rcpt_to[0]}>" if len(env.rcpt_to) == 1 else ""
    value = (f"from {env.helo or 'unknown'} ([{env.client_ip}])\r\n\tby {hostname} (aup-milter) with {protocol} "
             f"id {message.id}{recipient}; {format_datetime(utcnow())}")
    return f"Received: {value}\r\n".encode("ascii", "replace")


class RelayHandler:
    def __init__(self, runtime: Runtime, on_accepted: Any = None) -> None:
        self.runtime = runtime
        self.on_accepted = on_accepted  # wakes the delivery runner in this process
        self.passwords: PasswordFile | None = None
        self._load_passwords()

    def _load_passwords(self) -> None:
        path = self.runtime.config.settings.smtp.auth_passwords
        self.passwords = PasswordFile(path) if path else None

    def reconfigure(self) -> None:
        self._load_passwords()

    # -- who the client is ------------------------------------------------

    def trusted(self, session: Session) -> bool:
        return is_trusted(session.peer[0], self.runtime.config.settings.smtp.trusted_networks)

    def authenticate(self, server: SMTP, session: Session, envelope: SmtpEnvelope, mechanism: str, auth_data: Any) -> AuthResult:
        if self.passwords is None or not isinstance(auth_data, LoginPassword):
            return AuthResult(success=False, handled=False)
        login = auth_data.login.decode("utf-8", "replace")
        if self.passwords.verify(login, auth_data.password.decode("utf-8", "replace")):
            return AuthResult(success=True, auth_data=login)
        log.warning("AUTH %s failed for %r from %s", mechanism, login, session.peer[0])
        return AuthResult(success=False, handled=False)

    # -- envelope ---------------------------------------------------------

    async def handle_MAIL(self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, mail_options: list[str]) -> str:
        if any(c in address for c in FORBIDDEN_IN_ADDRESS):
            return self._refuse("MAIL", "501 5.5.2 Syntax error: the sender address contains CR, LF or NUL")
        try:
            free = self.runtime.blobs.free_bytes()
        except OSError:
            return self._refuse("MAIL", NO_SPACE)
        if free < self.runtime.config.settings.smtp.min_free_space:
            log.error("only %d bytes free in the message store; refusing new mail", free)
            return self._refuse("MAIL", NO_SPACE)
        envelope.mail_from = "" if address == "<>" else address
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, rcpt_options: list[str]) -> str:
        settings = self.runtime.config.settings.smtp
        directory = self.runtime.directory
        if any(c in address for c in FORBIDDEN_IN_ADDRESS):
            return self._refuse("RCPT", "501 5.5.2 Syntax error: the recipient address contains CR, LF or NUL")
        if len(envelope.rcpt_tos) >= settings.max_recipients:
            return self._refuse("RCPT", "452 4.5.3 Too many recipients; send the rest in another message")
        if "@" not in address:
            if address.lower() != "postmaster":
                return self._refuse("RCPT", f"550 5.1.3 <{address}>: a recipient address needs a domain")
            address = f"postmaster@{sorted(directory.domains)[0]}"  # RFC 5321 section 4.5.1
        inside = self.trusted(session) or session.authenticated
        if not directory.is_local(address):
            if not inside:
                return self._refuse("RCPT", f"550 5.7.1 <{address}>: Relay access denied; this gateway only accepts mail for its own domains")
        elif directory.lists_people and not directory.knows_recipient(address) and not address.lower().startswith("postmaster@"):
            return self._refuse("RCPT", f"550 5.1.1 <{address}>: Recipient address rejected: no such user here")
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    def _refuse(self, stage: str, reply: str) -> str:
        self.runtime.metrics.refusals.labels(stage=stage, code=reply[:3]).inc()
        return reply

    # -- the message ------------------------------------------------------

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        started = time.monotonic()
        runtime = self.runtime  # one snapshot: a reload during this message does not mix configs
        raw, notes = normalise_line_endings(envelope.original_content or b"")
        auth_user = session.auth_data if session.authenticated and isinstance(session.auth_data, str) else None
        env = Envelope(
            mail_from=envelope.mail_from or "", rcpt_to=tuple(dict.fromkeys(envelope.rcpt_tos)),
            client_ip=str(session.peer[0]), helo=session.host_name or "", auth_user=auth_user,
            tls=session.ssl is not None, trusted=self.trusted(session),
        )
        message = Message(env, raw, direction_of(env, runtime.directory), runtime.config.settings.limits, notes=notes)
        if message.header_count("Received") > runtime.config.settings.smtp.max_hops:
            return self._answer(message, Decision("reject", reply="554 5.4.6 Too many hops; the message is looping"), started)
        decision = await runtime.pipeline.run(message)
        prepend = self._prepend(message, decision)
        # Storing is shielded: a client that disconnects now cannot cancel a
        # commit half way; the message is then either fully stored or not at all.
        store = asyncio.ensure_future(accept.store(runtime, message, decision, prepend))
        try:
            await asyncio.shield(store)
        except OSError as exc:
            log.error("message %s not stored: %s", message.id, exc)
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                return self._answer(message, tempfail(str(exc)), started, reply=NO_SPACE)
            return self._answer(message, tempfail(str(exc)), started, reply=TEMPFAIL)
        except Exception as exc:
            log.exception("message %s not stored", message.id)
            return self._answer(message, tempfail(str(exc)), started, reply=TEMPFAIL)
        runtime.metrics.stored_bytes.inc(message.size)
        if self.on_accepted is not None:
            self.on_accepted()
        return self._answer(message, decision, started)

    def _prepend(self, message: Message, decision: Decision) -> bytes:
        lines = received_header(message, self.runtime.config.settings.smtp.hostname)
        for name, value in decision.add_headers:
            lines += f"{name}: {' '.join(value.split())}\r\n".encode("utf-8", "replace")
        return lines

    def _answer(self, message: Message, decision: Decision, started: float, reply: str | None = None) -> str:
        metrics = self.runtime.metrics
        reply = reply or decision.reply
        if decision.action in ("deliver", "hold"):
            reply = f"{reply} as {message.id}"
        metrics.messages.labels(direction=message.direction, action=decision.action).inc()
        for finding in decision.findings:
            metrics.findings.labels(policy=finding.policy, mode=finding.mode, action=str(finding.action)).inc()
        metrics.reply_seconds.observe(time.monotonic() - started)
        log.info("%s %s from=<%s> to=%s client=%s: %s%s", message.id, message.direction, message.envelope.mail_from,
                 ",".join(message.envelope.rcpt_to), message.envelope.client_ip, reply,
                 f" ({decision.error})" if decision.error else "")
        return format_reply(reply)

    async def handle_exception(self, error: Exception) -> str:
        log.exception("SMTP session failed", exc_info=error)
        return TEMPFAIL


class RelaySMTP(SMTP):
    """aiosmtpd's SMTP with AUTH allowed without TLS from trusted networks only."""

    def __init__(self, handler: RelayHandler, **kwargs: Any) -> None:
        super().__init__(handler, authenticator=handler.authenticate, **kwargs)
        self._handler = handler

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        if peer and is_trusted(peer[0], self._handler.runtime.config.settings.smtp.trusted_networks):
            self._auth_require_tls = False


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def protocol_factory(handler: RelayHandler) -> Any:
    settings = handler.runtime.config.settings.smtp
    context = tls_context(str(settings.tls_cert), str(settings.tls_key)) if settings.tls_cert and settings.tls_key else None

    def build() -> RelaySMTP:
        return RelaySMTP(handler, hostname=settings.hostname, ident="aup-milter", data_size_limit=settings.max_message_size,
                         timeout=settings.timeout, tls_context=context, require_starttls=settings.require_tls,
                         auth_require_tls=True, enable_SMTPUTF8=True)

    return build
