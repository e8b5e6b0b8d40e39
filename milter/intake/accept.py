"""Make a message durable: its blob, its archive record, and where it goes next.

`store` is the only way a message the relay received becomes the gateway's
responsibility. The blob is fsynced first; then one transaction records the
archive entry and the deliver-queue or hold rows. Only after that commit may
the client hear 250. `record_generated` does the same for mail the gateway
writes itself (DSNs, notices: see quarantine/notices.py), which is archived
like everything else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from archive import records
from milter.delivery import queue
from milter.intake.pipeline import Decision
from milter.kernel.directory import Directory
from milter.mail.message import Direction, Envelope, Message
from policies.rules import correspondents, fingerprints
from quarantine import approval_intake, holds

if TYPE_CHECKING:
    from milter.runtime import Runtime


def summary(message: Message) -> dict[str, Any]:
    """The header fields every archive record carries, for search and review."""
    return {
        "header_from": message.header("From"),
        "header_to": message.header("To"),
        "header_cc": message.header("Cc"),
        "subject": message.subject,
        "header_message_id": message.header("Message-ID"),
        "header_date": message.header("Date"),
    }


def _envelope_fields(message: Message) -> dict[str, Any]:
    env = message.envelope
    return {
        "client_ip": env.client_ip,
        "helo": env.helo,
        "auth_user": env.auth_user,
        "mail_from": env.mail_from,
        "rcpt_to": list(env.rcpt_to),
    }


@dataclass(frozen=True)
class Received:
    """Everything the accept transaction writes, worked out before it starts.

    One writer thread commits for every session, so it must only insert:
    headers are decoded and fingerprints computed here, in the caller's thread.
    """

    message: Message
    decision: Decision
    digest: str  # what goes on: the received bytes, or the edited version
    prepend: bytes
    record: dict[str, Any]
    fingerprint: dict[str, Any] | None
    delivered: dict[str, Any] | None = None  # the archive record of the edited version, if the rules changed it
    correspondents: tuple[tuple[str, str], ...] = ()  # (inside person, outside address) pairs this message teaches
    approval: approval_intake.Intake | None = (
        None  # a broadcast held for approval: its request, links and first notices
    )


def prepare(
    message: Message,
    decision: Decision,
    digest: str,
    prepend: bytes,
    edited: tuple[str, int] | None = None,
    directory: Directory | None = None,
    fingerprint: bool = True,
) -> Received:
    record = {
        "message_id": message.id,
        "kind": "received",
        "blob_sha256": digest,
        "size": message.size,
        "direction": message.direction,
        "action": decision.action,
        "hold_queue": decision.hold_queue,
        "findings": [f.as_dict() for f in decision.findings],
        "details": {
            "prepend": prepend.decode("utf-8", "replace"),
            "notes": message.notes,
            "problems": [str(p) for p in message.problems][:50],
            "reply": decision.reply,
        },
        **_envelope_fields(message),
        **summary(message),
    }
    delivered = None
    if edited is not None:
        delivered = {
            **record,
            "kind": "delivered",
            "blob_sha256": edited[0],
            "size": edited[1],
            "details": {
                "prepend": record["details"]["prepend"],
                "edited_by": [f.policy for f in decision.findings if f.enforced and f.edit is not None],
            },
        }
        digest = edited[0]
    # Who now knows whom (policies/rules/correspondents.py): outside recipients become known to the inside sender.
    known = correspondents.pairs_from(message, decision.action, directory) if directory is not None else ()
    # The chain-letter rule counts how widely the same text spreads (only worth the work while it runs).
    spread = fingerprints.row_for(message) if fingerprint else None
    return Received(message, decision, digest, prepend, record, spread, delivered, known)


def record_received(connection: Connection, received: Received) -> int:
    message, decision, digest, prepend = received.message, received.decision, received.digest, received.prepend
    record_id, _ = records.append(connection, **received.record)
    if received.delivered is not None:
        records.append(connection, **received.delivered)
    if received.fingerprint is not None:
        fingerprints.record(connection, received.fingerprint)
    correspondents.learn(connection, received.correspondents)
    if decision.action in ("deliver", "hold"):
        deliver_to = decision.deliver_to
        if deliver_to:
            queue.enqueue(
                connection,
                message_id=message.id,
                blob_sha256=digest,
                prepend=prepend,
                mail_from=message.envelope.mail_from,
                rcpts=deliver_to,
                origin="relay",
            )
        for queue_name in holds.QUEUES:
            held = decision.held_for(queue_name)
            if held:
                asked = [f for f in decision.findings if f.enforced and f.hold_queue == queue_name]
                hold_id = holds.hold(
                    connection,
                    message_id=message.id,
                    queue_name=queue_name,
                    blob_sha256=digest,
                    prepend=prepend,
                    mail_from=message.envelope.mail_from,
                    rcpts=held,
                    subject=message.subject,
                    reason=" ".join(f.reason for f in asked),
                    findings=[f.as_dict() for f in asked],
                )
                if queue_name == "approval" and received.approval is not None:
                    received.approval.record(connection, hold_id)
    return record_id


def _durable(runtime: Runtime, message: Message, decision: Decision, prepend: bytes) -> Received:
    digest = runtime.blobs.put(message.raw)
    edited = None
    if decision.edits and decision.action in ("deliver", "hold"):
        data = message.raw
        for change in decision.edits:
            data = change(data)
        edited = (runtime.blobs.put(data), len(data))
    approval = approval_intake.prepare(
        runtime, message, decision
    )  # who approves, the links, the notices: before the transaction
    counting = runtime.config.policies["chain_letters"].mode != "off"
    return replace(
        prepare(message, decision, digest, prepend, edited, directory=runtime.directory, fingerprint=counting),
        approval=approval,
    )


async def store(runtime: Runtime, message: Message, decision: Decision, prepend: bytes) -> int:
    loop = asyncio.get_running_loop()
    received = await loop.run_in_executor(runtime.io_pool, _durable, runtime, message, decision, prepend)
    return await runtime.committer.run(lambda connection: record_received(connection, received))


def record_generated(connection: Connection, message: Message, digest: str, origin: str) -> int:
    """Archive and queue a message the gateway wrote; its blob is already stored."""
    records.append(
        connection,
        message_id=message.id,
        kind="generated",
        blob_sha256=digest,
        size=message.size,
        direction=message.direction,
        action="deliver",
        details={"origin": origin},
        **_envelope_fields(message),
        **summary(message),
    )
    return queue.enqueue(
        connection,
        message_id=message.id,
        blob_sha256=digest,
        mail_from=message.envelope.mail_from,
        rcpts=message.envelope.rcpt_to,
        origin=origin,
    )


def generated_message(runtime: Runtime, data: bytes, mail_from: str, rcpts: Iterable[str]) -> Message:
    rcpt_to = tuple(rcpts)
    envelope = Envelope(
        mail_from=mail_from,
        rcpt_to=rcpt_to,
        client_ip="127.0.0.1",
        helo=runtime.config.settings.smtp.hostname,
        trusted=True,
    )
    direction: Direction = "internal" if all(runtime.directory.is_local(r) for r in rcpt_to) else "outbound"
    return Message(envelope, data, direction, runtime.config.settings.limits)
