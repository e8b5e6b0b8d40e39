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
import logging
import ssl
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, AnyStr

from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope

from milter.intake.direction import is_trusted
from milter.intake.receive import NO_SPACE, TEMPFAIL, receive
from milter.kernel.passwords import PasswordFile
from milter.kernel.settings import ConfigError
from milter.mail.message import Envelope, normalise_line_endings

if TYPE_CHECKING:
    from milter.runtime import Runtime

log = logging.getLogger(__name__)

FORBIDDEN_IN_ADDRESS = ("\r", "\n", "\x00")
ROUTING_IN_LOCAL_PART = ("@", "%", "!")  # user%other@us, host!user@us, "user@other"@us
LINE_TOO_LONG = "500 Line too long"  # how aiosmtpd ends a DATA that had a line over line_length_limit


def peer_address(session: Session | None) -> str:
    """The client's IP address (aiosmtpd types `peer` loosely: a (host, port) tuple in practice)."""
    peer: Any = session.peer if session is not None else None
    return str(peer[0]) if peer else ""


def routes_elsewhere(address: str) -> bool:
    """A local part that names another host: a downstream that honours it would relay outside."""
    return any(c in address.rpartition("@")[0] for c in ROUTING_IN_LOCAL_PART)


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
        received = await receive(runtime, env, raw, notes, on_accepted=self.on_accepted)
        return received.reply

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
