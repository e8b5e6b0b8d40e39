"""The SMTP layer: turn an SMTP session into a Message, and a Decision into a reply.

Kept thin on purpose (aiosmtpd's handler hooks). What it enforces itself:
no open relay (nor %, ! or quoted-@ routing through a local domain), unknown
local recipients refused at RCPT (no backscatter), CR/LF/NUL refused in
envelope addresses, SIZE, free disk space, mail loops, a HELO name that
cannot break the Received header, and line endings normalised so the
downstream never sees a bare CR or LF.
It answers 250 only after `accept.store` has made the message durable; every
internal failure answers 4xx.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import re
import ssl
import textwrap
import time
from dataclasses import dataclass
from email.utils import format_datetime
from typing import TYPE_CHECKING, Any, AnyStr

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from milter.intake import accept
from milter.intake.direction import direction_of, is_trusted
from milter.intake.pipeline import Decision, tempfail
from milter.kernel.db import utcnow
from milter.kernel.passwords import PasswordFile
from milter.kernel.settings import ConfigError
from milter.mail.message import Envelope, Message, normalise_line_endings
from policies.base import Action, Finding

if TYPE_CHECKING:
    from milter.runtime import Runtime

log = logging.getLogger(__name__)

FORBIDDEN_IN_ADDRESS = ("\r", "\n", "\x00")
ROUTING_IN_LOCAL_PART = ("@", "%", "!")  # user%other@us, host!user@us, "user@other"@us
HELO_UNSAFE = re.compile(r"[^\x21-\x7e]")  # anything but printable ASCII without spaces
TEMPFAIL = "451 4.3.0 Internal error; the message was not accepted, please try again later"
LINE_TOO_LONG = "500 Line too long"  # how aiosmtpd ends a DATA that had a line over line_length_limit
NO_SPACE = "452 4.3.1 Insufficient system storage; please try again later"


def peer_address(session: Session | None) -> str:
    """The client's IP address (aiosmtpd types `peer` loosely: a (host, port) tuple in practice)."""
    peer: Any = session.peer if session is not None else None
    return str(peer[0]) if peer else ""


def format_reply(reply: str) -> str:
    """An SMTP reply: ASCII, lines of at most ~400 characters, multi-line when long."""
    reply = reply.encode("ascii", "replace").decode("ascii")
    code, _, rest = reply.partition(" ")
    status = ""
    if rest[:1] in "245" and rest.split(" ", 1)[0].count(".") == 2:
        status, _, rest = rest.partition(" ")
    prefix = f"{code} {status} " if status else f"{code} "
    lines = textwrap.wrap(" ".join(rest.split()), 400) or [""]
    return "\r\n".join(
        (prefix if i == len(lines) - 1 else prefix.replace(" ", "-", 1)) + line for i, line in enumerate(lines)
    )


def routes_elsewhere(address: str) -> bool:
    """A local part that names another host: a downstream that honours it would relay outside."""
    return any(c in address.rpartition("@")[0] for c in ROUTING_IN_LOCAL_PART)


def safe_helo(helo: str) -> str:
    """The client's HELO name as one token: it goes into a header, so no CR, LF or spaces."""
    return HELO_UNSAFE.sub("?", helo)[:255] or "unknown"


def received_header(message: Message, hostname: str) -> bytes:
    env = message.envelope
    protocol = "ESMTP" + ("S" if env.tls else "") + ("A" if env.auth_user else "")
    recipient = f"\r\n\tfor <{env.rcpt_to[0]}>" if len(env.rcpt_to) == 1 else ""
    value = (
        f"from {safe_helo(env.helo)} ([{env.client_ip}])\r\n\tby {hostname} (aup-milter) with {protocol} "
        f"id {message.id}{recipient}; {format_datetime(utcnow())}"
    )
    return f"Received: {value}\r\n".encode("ascii", "replace")


class RelayHandler:
    def __init__(self, runtime: Runtime, on_accepted: Any = None) -> None:
        self.runtime = runtime
        self.on_accepted = on_accepted  # wakes the delivery runner in this process
        self.passwords: PasswordFile | None = None
        self._load_passwords()

    def _load_passwords(self) -> None:
        path = self.runtime.config.settings.smtp.auth_passwords
        try:
            self.passwords = PasswordFile(path) if path else None
        except (OSError, ValueError) as exc:
            raise ConfigError(
                self.runtime.config.path,
                "smtp.auth_passwords",
                str(exc),
                "point it at a file of LOGIN:HASH lines made with `aup-milter smtp-passwd LOGIN`",
            ) from None

    def reconfigure(self) -> None:
        try:
            self._load_passwords()
        except ConfigError as exc:
            log.error("AUTH logins not reloaded; the previous ones stay in use: %s", exc)

    # -- who the client is ------------------------------------------------

    def trusted(self, session: Session) -> bool:
        return is_trusted(peer_address(session), self.runtime.config.settings.smtp.trusted_networks)

    def check_login(self, mechanism: str, credentials: LoginPassword, client_ip: str) -> AuthResult:
        """Slow on purpose (Argon2): call it in a thread."""
        passwords = self.passwords
        if passwords is None:
            return AuthResult(success=False, handled=False)
        login = credentials.login.decode("utf-8", "replace")
        if passwords.verify(login, credentials.password.decode("utf-8", "replace")):
            return AuthResult(success=True, auth_data=login)
        log.warning("AUTH %s failed for %r from %s", mechanism, login, client_ip)
        return AuthResult(success=False, handled=False)

    # -- envelope ---------------------------------------------------------

    async def handle_MAIL(
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, mail_options: list[str]
    ) -> str:
        try:
            free = self.runtime.blobs.free_bytes()
        except OSError:
            return self._refuse("MAIL", NO_SPACE)
        if free < self.runtime.config.settings.smtp.min_free_space:
            log.error("only %d bytes free in the message store; refusing new mail", free)
            return self._refuse("MAIL", NO_SPACE)
        envelope.mail_from = address  # "<>" for the null sender: aiosmtpd needs it non-empty (RCPT checks it)
        envelope.mail_options.extend(mail_options)
        return "250 2.1.0 Ok"

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: SmtpEnvelope, address: str, rcpt_options: list[str]
    ) -> str:
        settings = self.runtime.config.settings.smtp
        directory = self.runtime.directory
        if len(envelope.rcpt_tos) >= settings.max_recipients:
            return self._refuse("RCPT", "452 4.5.3 Too many recipients; send the rest in another message")
        if "@" not in address:
            if address.lower() != "postmaster":
                return self._refuse("RCPT", f"550 5.1.3 <{address}>: a recipient address needs a domain")
            address = f"postmaster@{min(directory.domains)}"  # RFC 5321 section 4.5.1
        if routes_elsewhere(address):
            # Refused from everyone: even from inside it would pass as internal mail and skip outbound rules.
            return self._refuse(
                "RCPT", f"550 5.7.1 <{address}>: Relay access denied; %, ! or @ in the local part is not accepted"
            )
        inside = self.trusted(session) or session.authenticated
        if not directory.is_local(address):
            if not inside:
                return self._refuse(
                    "RCPT",
                    f"550 5.7.1 <{address}>: Relay access denied; this gateway only accepts mail for its own domains",
                )
        elif (
            directory.lists_people
            and not directory.knows_recipient(address)
            and not address.lower().startswith("postmaster@")
        ):
            return self._refuse("RCPT", f"550 5.1.1 <{address}>: Recipient address rejected: no such user here")
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return "250 2.1.5 Ok"

    def _refuse(self, stage: str, reply: str) -> str:
        self.runtime.metrics.refusals.labels(stage=stage, code=reply[:3]).inc()
        return reply

    # -- the message ------------------------------------------------------

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        try:
            return await self._receive(session, envelope)
        except Exception:
            # Fail closed. Returning (not raising) also makes aiosmtpd reset the
            # transaction; after an exception it would keep the old envelope.
            log.exception("message from %s not accepted", peer_address(session))
            return TEMPFAIL

    async def _receive(self, session: Session, envelope: SmtpEnvelope) -> str:
        started = time.monotonic()
        runtime = self.runtime  # one snapshot: a reload during this message does not mix configs
        raw, notes = normalise_line_endings(envelope.original_content or b"")
        auth_user = session.auth_data if session.authenticated and isinstance(session.auth_data, str) else None
        env = Envelope(
            mail_from="" if envelope.mail_from == "<>" else envelope.mail_from or "",
            rcpt_to=tuple(dict.fromkeys(envelope.rcpt_tos)),
            client_ip=peer_address(session),
            helo=session.host_name or "",
            auth_user=auth_user,
            tls=session.ssl is not None,
            trusted=self.trusted(session),
        )
        message = Message(env, raw, direction_of(env, runtime.directory), runtime.config.settings.limits, notes=notes)
        hops = message.header_count("Received")
        if hops > runtime.config.settings.smtp.max_hops:
            # A loop is refused without running the rules, but archived like every other message.
            reason = f"The message has passed through {hops} mail servers; it is looping between them. Ask IT to check the forwarding."
            decision = Decision(
                "reject",
                [Finding("relay", Action.REJECT, reason, (f"Received headers: {hops}",))],
                reply="554 5.4.6 Too many hops; the message is looping",
            )
        else:
            decision = await runtime.pipeline.run(message)
        prepend = self._prepend(message, decision)
        # Storing is shielded: a client that disconnects now cannot cancel a
        # commit half way; the message is then either fully stored or not at all.
        store = asyncio.ensure_future(accept.store(runtime, message, decision, prepend))
        try:
            await asyncio.shield(store)
        except asyncio.CancelledError:
            store.add_done_callback(functools.partial(self._stored_after_hang_up, message))
            raise
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

    def _stored_after_hang_up(self, message: Message, store: asyncio.Future[int]) -> None:
        """The client left before the reply; the store went on. Say how it ended."""
        if store.cancelled() or store.exception() is not None:
            log.error(
                "message %s not stored after its client hung up: %r",
                message.id,
                None if store.cancelled() else store.exception(),
            )
            return
        log.info(
            "message %s stored after its client hung up; it will be delivered (the client may send it again)",
            message.id,
        )
        if self.on_accepted is not None:
            self.on_accepted()

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
        log.info(
            "%s %s from=<%s> to=%s client=%s: %s%s",
            message.id,
            message.direction,
            message.envelope.mail_from,
            ",".join(message.envelope.rcpt_to),
            message.envelope.client_ip,
            reply,
            f" ({decision.error})" if decision.error else "",
        )
        return format_reply(reply)

    async def handle_exception(self, error: Exception) -> str:
        log.error("SMTP session failed", exc_info=error)
        return TEMPFAIL


@dataclass(frozen=True)
class PendingLogin:
    """Credentials aiosmtpd has parsed, to be checked off the event loop."""

    mechanism: str
    credentials: LoginPassword


def defer_login(server: SMTP, session: Session, envelope: SmtpEnvelope, mechanism: str, auth_data: Any) -> AuthResult:
    """aiosmtpd calls its authenticator synchronously; Argon2 takes a few hundred
    milliseconds, which would stall every session. Hand the credentials back instead."""
    if not isinstance(auth_data, LoginPassword):
        return AuthResult(success=False, handled=False)
    return AuthResult(success=False, handled=False, auth_data=PendingLogin(mechanism, auth_data))


class RelaySMTP(SMTP):
    """aiosmtpd's SMTP with stricter envelope parsing, AUTH checked in a thread,
    and AUTH allowed without TLS from trusted networks only."""

    def __init__(self, handler: RelayHandler, **kwargs: Any) -> None:
        # Before super().__init__: aiosmtpd sizes its StreamReader from it. Its 1001 (RFC 5321's
        # 998 + CRLF) refuses real mail that Postfix accepts; the CRLF is not counted in the setting.
        self.line_length_limit = handler.runtime.config.settings.smtp.line_length_limit + 2
        super().__init__(handler, authenticator=defer_login, **kwargs)
        self._handler = handler

    async def push(self, status: AnyStr) -> None:
        if isinstance(status, str) and status.startswith(LINE_TOO_LONG):
            await super().push(self._line_too_long())
        else:
            await super().push(status)

    def _line_too_long(self) -> str:
        # aiosmtpd's own answer is "500 Line too long", a syntax error. Resending the same
        # message can never succeed, so it stays permanent, with Postfix's code for a message
        # over a fixed limit (552 5.3.4) and a reason a sender can act on.
        limit = self.line_length_limit - 2
        log.warning("message from %s refused: a line is longer than %d bytes", peer_address(self.session), limit)
        return self._handler._refuse(
            "DATA",
            f"552 5.3.4 Message refused: a line is longer than {limit} bytes; "
            "send the text wrapped into shorter lines, or the content as an attachment",
        )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        peer = transport.get_extra_info("peername")
        if peer and is_trusted(peer[0], self._handler.runtime.config.settings.smtp.trusted_networks):
            self._auth_require_tls = False

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        # aiosmtpd's parser reads a CR as folding white space, and accepts "<a",
        # which is what is left of "<a\nb@x>" once a bare LF has ended the line.
        # Neither is an address: aiosmtpd answers 553 5.1.3 to (None, None).
        if any(c in arg for c in FORBIDDEN_IN_ADDRESS) or (arg.lstrip().startswith("<") and ">" not in arg):
            return None, None
        return super()._getaddr(arg)

    async def auth_PLAIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._check_login(await super().auth_PLAIN(_, args))

    async def auth_LOGIN(self, _: Any, args: list[str]) -> AuthResult:
        return await self._check_login(await super().auth_LOGIN(_, args))

    async def _check_login(self, parsed: AuthResult) -> AuthResult:
        pending = parsed.auth_data
        if not isinstance(pending, PendingLogin):
            return parsed  # aiosmtpd has already answered (bad base64, an abort)
        assert self.session is not None
        return await asyncio.to_thread(
            self._handler.check_login, pending.mechanism, pending.credentials, peer_address(self.session)
        )


def tls_context(cert: str, key: str) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def protocol_factory(handler: RelayHandler) -> Any:
    settings = handler.runtime.config.settings.smtp
    context = (
        tls_context(str(settings.tls_cert), str(settings.tls_key)) if settings.tls_cert and settings.tls_key else None
    )

    def build() -> RelaySMTP:
        return RelaySMTP(
            handler,
            hostname=settings.hostname,
            ident="aup-milter",
            data_size_limit=settings.max_message_size,
            timeout=settings.timeout,
            tls_context=context,
            require_starttls=settings.require_tls,
            auth_require_tls=True,
            enable_SMTPUTF8=True,
        )

    return build
