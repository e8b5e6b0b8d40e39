"""The milter front-end: Postfix (smtpd_milters) or Sendmail (INPUT_MAIL_FILTER) asks, the gateway answers.

The MTA keeps the SMTP session and the delivery; the gateway sees each message
at end-of-message, runs the same `receive` as the SMTP relay (rules, then
`accept.store`: archived and durable) and only then answers:

- deliver: the MTA delivers its own copy, with the rules' headers added and
  their edits (subject, banner) applied through SMFIR_CHGHEADER / SMFIR_REPLBODY;
- reject: SMFIR_REPLYCODE with the rule's 5xx and enhanced status code;
- tempfail (a rule failed, the store failed, anything raised): SMFIR_REPLYCODE 451;
- hold: the gateway owns the held copy (approval queue or IT quarantine, which
  release through its own deliver queue), so the MTA must not deliver it:
  held recipients are removed with SMFIR_DELRCPT, and a message held for all
  of them is discarded (SMFIR_DISCARD). Not SMFIR_QUARANTINE: Postfix's hold
  queue would be a second copy that the approval and quarantine pages cannot
  release, and that an admin could release by hand around them.

Direction and trust come from the client the MTA talked to (the {client_addr}
macro, or the CONNECT address), never from the MTA's own connection to us.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

from milter.intake import milter_codec as codec
from milter.intake.direction import is_trusted
from milter.intake.milter_codec import MilterProtocolError, Packet
from milter.intake.pipeline import Decision
from milter.intake.receive import TEMPFAIL, Received, added_headers, receive, received_header
from milter.mail.message import Envelope, normalise_line_endings

if TYPE_CHECKING:
    from milter.runtime import Runtime

log = logging.getLogger(__name__)

BODY_CHUNK = 65535  # the most one SMFIR_REPLBODY may carry
NO_REPLY = (codec.MACRO, codec.ABORT, codec.QUIT, codec.QUIT_NC)  # commands the MTA expects no answer to


@dataclass
class Transaction:
    """One message on a milter connection, from MAIL to end-of-message or abort."""

    mail_from: str = ""
    rcpt_to: list[str] = field(default_factory=list)
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytearray = field(default_factory=bytearray)
    macros: dict[str, str] = field(default_factory=dict)
    too_big: bool = False


def header_fields(block: bytes) -> list[tuple[str, bytes]]:
    """(name as written, value after the colon with its folding) for each field of a header block."""
    fields: list[tuple[str, bytes]] = []
    for line in block.split(b"\r\n"):
        if line[:1] in (b" ", b"\t") and fields:
            name, value = fields[-1]
            fields[-1] = (name, value + b"\r\n" + line)
        elif b":" in line:
            raw_name, _, value = line.partition(b":")
            fields.append((raw_name.decode("utf-8", "replace").strip(), value))
    return fields


def split_message(raw: bytes) -> tuple[bytes, bytes]:
    head, sep, body = raw.partition(b"\r\n\r\n")
    return (head, body) if sep else (raw, b"")


def header_changes(original: bytes, edited: bytes, leading_space: bool) -> list[bytes]:
    """The SMFIR_CHGHEADER / SMFIR_ADDHEADER packets that turn the MTA's headers into the edited ones."""

    def as_milter(value: bytes) -> str:
        text = value.decode("utf-8", "surrogateescape").replace("\r\n", "\n")
        return text if leading_space else text.lstrip(" \t")

    before, after = header_fields(original), header_fields(edited)
    changes: list[bytes] = []
    deletes: list[bytes] = []
    for name in dict.fromkeys(n.lower() for n, _ in before + after):
        old = [(n, v) for n, v in before if n.lower() == name]
        new = [(n, v) for n, v in after if n.lower() == name]
        for index in range(max(len(old), len(new))):
            if index < len(old) and index < len(new):
                if old[index][1] != new[index][1]:
                    changes.append(codec.change_header(index + 1, new[index][0], as_milter(new[index][1])))
            elif index < len(old):
                deletes.insert(0, codec.change_header(index + 1, old[index][0], ""))  # last first: indexes hold
            else:
                changes.append(codec.add_header(new[index][0], as_milter(new[index][1])))
    return changes + deletes


class MilterSession:
    """One MTA connection; it may carry several messages, one after another."""

    def __init__(
        self,
        runtime: Runtime,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        on_accepted: Callable[[], object] | None,
    ) -> None:
        self.runtime = runtime
        self.reader = reader
        self.writer = writer
        self.on_accepted = on_accepted
        self.steps = 0
        self.connection_macros: dict[str, str] = {}
        self.client_ip = ""
        self.helo = ""
        self.transaction = Transaction()

    async def run(self) -> None:
        settings = self.runtime.config.settings.milter
        while True:
            packet = await asyncio.wait_for(codec.read_packet(self.reader), settings.timeout)
            if packet is None or packet.command in (codec.QUIT, codec.QUIT_NC):
                if packet is not None and packet.command == codec.QUIT_NC:
                    self._reset(keep_connection=False)  # a new SMTP client on the same milter connection
                    continue
                return
            reply = await self._handle(packet)
            if reply:
                self.writer.write(reply)
                await self.writer.drain()

    async def _handle(self, packet: Packet) -> bytes:
        command, data = packet.command, packet.data
        tx = self.transaction
        if command == codec.OPTNEG:
            offered = codec.parse_optneg(data)
            if offered.version < codec.VERSION or offered.actions & codec.NEEDED_ACTIONS != codec.NEEDED_ACTIONS:
                raise MilterProtocolError(
                    f"the MTA offers protocol {offered.version} with actions {offered.actions:#x}; "
                    f"version {codec.VERSION} with {codec.NEEDED_ACTIONS:#x} is needed (Postfix: milter_protocol = 6)"
                )
            self.steps = offered.steps & codec.WANTED_STEPS
            return codec.optneg_reply(offered)
        if command == codec.MACRO:
            stage, macros = codec.parse_macros(data)
            (self.connection_macros if stage in (codec.CONNECT, codec.HELO) else tx.macros).update(macros)
            return b""
        if command == codec.CONNECT:
            connect = codec.parse_connect(data)
            self.client_ip = connect.address if connect.family in ("4", "6") else "127.0.0.1"
        elif command == codec.HELO:
            self.helo = codec.text(codec.strings(data)[0])
        elif command == codec.MAIL:
            self._reset(keep_connection=True)
            self.transaction.mail_from = codec.parse_address(data)[0]
        elif command == codec.RCPT:
            tx.rcpt_to.append(codec.parse_address(data)[0])
        elif command == codec.HEADER:
            tx.headers.append(codec.parse_header(data))
        elif command == codec.BODY:
            tx.body += data
            if len(tx.body) > self.runtime.config.settings.smtp.max_message_size:
                tx.too_big = True
                self._reset(keep_connection=True)
                return codec.reply_code("552 5.3.4 Message too big for this gateway")
        elif command == codec.BODYEOB:
            tx.body += data
            return await self._end_of_message()
        elif command == codec.ABORT:
            self._reset(keep_connection=True)
            return b""
        elif command not in (codec.EOH, codec.DATA, codec.UNKNOWN):
            raise MilterProtocolError(f"unknown command {command!r}")
        return codec.packet(codec.CONTINUE)

    def _reset(self, *, keep_connection: bool) -> None:
        self.transaction = Transaction()
        if not keep_connection:
            self.connection_macros = {}
            self.client_ip = self.helo = ""

    def _macro(self, tx: Transaction, name: str) -> str:
        return tx.macros.get(name) or self.connection_macros.get(name, "")

    # -- end of message -----------------------------------------------------

    def _raw(self, tx: Transaction) -> bytes:
        space = "" if self.steps & codec.HEADER_LEADING_SPACE else " "
        head = b"".join(
            f"{name}:{space}{value}".replace("\r\n", "\n").replace("\n", "\r\n").encode("utf-8", "surrogateescape")
            + b"\r\n"
            for name, value in tx.headers
        )
        return head + b"\r\n" + bytes(tx.body)

    async def _end_of_message(self) -> bytes:
        tx = self.transaction
        self._reset(keep_connection=True)
        client_ip = self._macro(tx, "client_addr") or self.client_ip
        envelope = Envelope(
            mail_from=tx.mail_from,
            rcpt_to=tuple(dict.fromkeys(tx.rcpt_to)),
            client_ip=client_ip,
            helo=self._macro(tx, "client_name") if not self.helo else self.helo,
            auth_user=self._macro(tx, "auth_authen") or None,
            tls=bool(self._macro(tx, "tls_version")),
            trusted=is_trusted(client_ip, self.runtime.config.settings.smtp.trusted_networks),
        )
        raw, notes = normalise_line_endings(self._raw(tx))
        work = asyncio.ensure_future(self._receive(envelope, raw, notes))
        interval = self.runtime.config.settings.milter.progress_interval
        while True:
            done, _ = await asyncio.wait({work}, timeout=interval)
            if done:
                break
            # Postfix's milter_content_timeout restarts with every answer; the rules may take a while.
            self.writer.write(codec.packet(codec.PROGRESS))
            await self.writer.drain()
        received = work.result()
        if received is None:
            return codec.reply_code(TEMPFAIL)
        queue_id = self._macro(tx, "i")
        if queue_id:
            log.info("MTA queue id %s is message %s: %s", queue_id, received.message.id, received.decision.action)
        return self._verdict(received, raw)

    async def _receive(self, envelope: Envelope, raw: bytes, notes: list[str]) -> Received | None:
        try:
            return await receive(self.runtime, envelope, raw, notes, owned=held_only, on_accepted=self.on_accepted)
        except Exception:
            log.exception("message from %s (via the MTA) not accepted", envelope.client_ip)
            return None

    def _verdict(self, received: Received, raw: bytes) -> bytes:
        decision = received.decision
        if decision.action not in ("deliver", "hold"):
            return codec.reply_code(received.reply)
        delivered = decision.deliver_to
        if not delivered:
            return codec.packet(codec.DISCARD)  # held for everyone; the gateway has it
        edited = raw
        for change in decision.edits:
            edited = change(edited)
        packets = [
            codec.delete_recipient(rcpt) for rcpt, outcome in decision.recipients.items() if outcome.action == "hold"
        ]
        head, body = split_message(raw)
        new_head, new_body = split_message(edited)
        packets += header_changes(head, new_head, bool(self.steps & codec.HEADER_LEADING_SPACE))
        if new_body != body:
            packets += [codec.replace_body(new_body[i : i + BODY_CHUNK]) for i in range(0, len(new_body), BODY_CHUNK)]
        # The gateway's trace line (its message id, for finding the archived copy) and the rules' headers on top.
        trace = header_fields(received_header(received.message, self.runtime.config.settings.smtp.hostname).rstrip())
        top = [(name, value.decode("ascii").replace("\r\n", "\n").lstrip(" ")) for name, value in trace]
        top += added_headers(decision)
        space = " " if self.steps & codec.HEADER_LEADING_SPACE else ""
        packets += [codec.insert_header(index, name, space + value) for index, (name, value) in enumerate(top)]
        return b"".join(packets) + codec.packet(codec.ACCEPT)


def held_only(decision: Decision) -> Decision:
    """The gateway keeps only the held recipients: the MTA delivers the rest itself."""
    held = {rcpt: outcome for rcpt, outcome in decision.recipients.items() if outcome.action == "hold"}
    return replace(decision, recipients=held)


async def serve_connection(
    runtime: Runtime,
    on_accepted: Callable[[], object] | None,
    reader: asyncio.StreamReader,
    writer: asyncio.StreamWriter,
) -> None:
    peer = writer.get_extra_info("peername") or "a unix socket"
    session = MilterSession(runtime, reader, writer, on_accepted)
    try:
        await session.run()
    except MilterProtocolError as exc:
        log.warning("milter connection from %s closed: %s", peer, exc)
    except TimeoutError:
        log.warning("milter connection from %s closed: the MTA was silent too long", peer)
    except (ConnectionError, asyncio.IncompleteReadError):
        log.info("milter connection from %s lost", peer)
    except Exception:
        log.exception("milter connection from %s failed", peer)
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def start(runtime: Runtime, on_accepted: Callable[[], object] | None) -> tuple[asyncio.AbstractServer, str]:
    """Listen where [milter] listen says; returns the server and where it listens, as the MTA would write it."""
    address = runtime.config.settings.milter.address

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await serve_connection(runtime, on_accepted, reader, writer)

    if isinstance(address, Path):
        address.unlink(missing_ok=True)  # left by a gateway that did not stop cleanly
        server = await asyncio.start_unix_server(handle, path=str(address), limit=codec.MAX_PACKET)
        return server, f"unix:{address}"
    host, port = address
    server = await asyncio.start_server(handle, host, port, limit=codec.MAX_PACKET)
    bound = server.sockets[0].getsockname()
    return server, f"inet:{bound[0]}:{bound[1]}"
