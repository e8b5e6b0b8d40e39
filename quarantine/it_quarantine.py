"""The IT quarantine: what IT staff do with held files, and the notices the recipients get.

Messages land here through `holds.hold` (queue "quarantine") at accept time:
files from unknown senders, archives that could not be opened, files too big
to scan. Here IT staff:
- release a message to all or some of its held recipients, optionally
  trusting the sender for them from now on (the correspondence graph);
- reject it for all or some recipients, with a reason the recipients are
  told (never the outside sender: no backscatter).
A decision for some recipients splits the hold (`holds.split`) so that each
decision keeps its own row, and every decision is audited in the same
transaction. Nothing is purged by age: the queue shows how long each item waits.

Each quarantined recipient gets a notice (who sent what, that IT will review
it, how to ask). Rules cannot write, so the notices are sent by a periodic job
in the main process (`notify_new`): a pending quarantine hold with no row in
`quarantine_notice` gets its notices and that row in one transaction, so a
notice is never lost (a crash before the commit means the job sends it next
time) and never sent twice, and the SMTP reply never waits for it.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, Column, Connection, DateTime, String, Table, Text, cast, insert, select

from archive import audit
from milter.kernel.db import as_utc, metadata, utcnow
from milter.kernel.directory import normalise_address
from milter.mail.message import Message
from policies.rules import correspondents
from policies.rules.software import format_size
from quarantine import holds, notices

if TYPE_CHECKING:
    from milter.runtime import Runtime

log = logging.getLogger(__name__)

QUEUE = "quarantine"
NOTIFY_BATCH = 100  # holds notified per run of the job
MAX_FILES_IN_NOTICE = 20

quarantine_notice = Table(
    "quarantine_notice",
    metadata,
    Column("message_id", String(40), primary_key=True),  # every hold of one message (splits included) shares it
    Column("notified_at", DateTime(timezone=True), nullable=False),
    Column("recipients", JSON, nullable=False),
    Column("notices", JSON, nullable=False),  # the notices' own message ids, to find them in the archive
)

# Why a recipient's copy waits, by rule, in words safe to send to that recipient
# (a finding's own reason may name other recipients, who may have been Bcc).
WHY = {
    "unknown_sender": "you have not exchanged mail with this sender through the agency's mail system before (or the "
    "sender's identity could not be confirmed), and the agency's policy asks that files from "
    "unfamiliar senders are checked by IT before anyone opens them",
    "software": "an attached file could not be fully inspected for software or viruses (for example an encrypted, "
    "damaged or very large archive)",
    "virus": "an attached file is too large for the virus scanner",
    "inspection": "the gateway could not fully inspect the message",
}


class QuarantineError(Exception):
    """A decision that cannot be made as asked; the message says why."""


# -- reading ---------------------------------------------------------------------


def get(connection: Connection, hold_id: int) -> dict[str, Any] | None:
    held = holds.get(connection, hold_id)
    return held if held is not None and held["queue"] == QUEUE else None


def pending(
    connection: Connection,
    *,
    recipient: str | None = None,
    sender: str | None = None,
    rule: str | None = None,
    older_than: timedelta | None = None,
    state: str | None = holds.PENDING,
    limit: int = 200,
) -> list[dict[str, Any]]:
    """Quarantined messages, oldest first, filtered by recipient, sender, the rule that held them and age."""
    table = holds.held_message
    query = select(table).where(table.c.queue == QUEUE).order_by(table.c.created_at, table.c.id).limit(limit)
    if state:
        query = query.where(table.c.state == state)
    if recipient:
        query = query.where(cast(table.c.rcpt_to, Text).contains(normalise_address(recipient), autoescape=True))
    if sender:
        query = query.where(table.c.mail_from.contains(sender.strip().lower(), autoescape=True))
    if rule:
        query = query.where(cast(table.c.findings, Text).contains(f'"policy": "{rule}"', autoescape=True))
    if older_than:
        query = query.where(table.c.created_at <= utcnow() - older_than)
    return [dict(row._mapping) for row in connection.execute(query)]


def age(created_at: datetime, now: datetime | None = None) -> str:
    """How long an item has waited, as a person says it: "12 min", "5 h", "3 d"."""
    seconds = max(0, int(((now or utcnow()) - as_utc(created_at)).total_seconds()))
    if seconds < 3600:
        return f"{seconds // 60} min"
    if seconds < 2 * 86400:
        return f"{seconds // 3600} h"
    return f"{seconds // 86400} d"


def files_in(message: Message) -> list[str]:
    return [
        f"{part.filename or part.label} ({part.true_type.description.split(',')[0]}, {format_size(part.size)})"
        for part in message.attachments
    ]


# -- decisions ---------------------------------------------------------------------


@dataclass(frozen=True)
class Decided:
    hold_id: int  # the hold that was decided (a new one when only some recipients were chosen)
    recipients: list[str]
    still_held: list[str]  # recipients left waiting in the original hold
    delivery_id: int | None = None
    trusted: str | None = None  # the sender now known to the recipients
    notices: tuple[str, ...] = ()


def _choose(connection: Connection, hold_id: int, recipients: list[str] | None) -> tuple[int, list[str], list[str]]:
    held = get(connection, hold_id)
    if held is None:
        raise QuarantineError(f"there is no quarantined message {hold_id}")
    if held["state"] != holds.PENDING:
        raise QuarantineError(f"quarantined message {hold_id} was already {held['state']} by {held['decided_by']}")
    everyone = list(held["rcpt_to"])
    wanted = {normalise_address(r) for r in recipients or []}
    if not wanted or wanted == {r.lower() for r in everyone}:
        return hold_id, everyone, []
    try:
        part = holds.split(connection, hold_id, wanted)
    except holds.HoldError as exc:
        raise QuarantineError(str(exc)) from None
    chosen = [r for r in everyone if r.lower() in wanted]
    return part, chosen, [r for r in everyone if r.lower() not in wanted]


def release(
    connection: Connection,
    runtime: Runtime,
    hold_id: int,
    actor: str,
    *,
    recipients: list[str] | None = None,
    trust: bool = False,
    note: str | None = None,
    source: str | None = None,
) -> Decided:
    """Deliver a quarantined message to all (or the chosen) recipients; with `trust`, they know the sender from now on."""
    target, chosen, rest = _choose(connection, hold_id, recipients)
    try:
        delivery_id = holds.release(connection, target, actor, note=note, source=source)
    except holds.HoldError as exc:
        raise QuarantineError(str(exc)) from None
    trusted = None
    if trust:
        held = get(connection, target)
        assert held is not None
        trusted = holds.message_of(runtime, held).sender
        if not trusted:
            raise QuarantineError("the message names no sender to trust; release it without trusting")
        people = sorted({correspondents.person_key(runtime.directory, r) for r in chosen})
        correspondents.trust(connection, people, trusted, actor)
        audit.record(
            connection,
            actor,
            "known_senders.trust",
            trusted,
            source=source,
            details={"recipients": people, "hold": target, "message_id": held["message_id"]},
        )
    return Decided(target, chosen, rest, delivery_id, trusted)


def reject(
    connection: Connection,
    runtime: Runtime,
    hold_id: int,
    actor: str,
    *,
    reason: str,
    recipients: list[str] | None = None,
    source: str | None = None,
) -> Decided:
    """Do not deliver a quarantined message to all (or the chosen) recipients; each is told why."""
    reason = " ".join((reason or "").split())
    if not reason:
        raise QuarantineError("give a reason: the recipients are told why the message was not delivered")
    target, chosen, rest = _choose(connection, hold_id, recipients)
    try:
        held = holds.reject(connection, target, actor, note=reason, source=source)
    except holds.HoldError as exc:
        raise QuarantineError(str(exc)) from None
    message = holds.message_of(runtime, held)
    sent = tuple(
        notices.send(connection, runtime, rejected_notice(runtime, message, r, reason), [r], origin="quarantine")
        for r in chosen
    )
    return Decided(target, chosen, rest, notices=sent)


# -- notices ---------------------------------------------------------------------------


def _summary(message: Message) -> list[str]:
    files = files_in(message)
    shown = [f"  - {name}" for name in files[:MAX_FILES_IN_NOTICE]]
    if len(files) > MAX_FILES_IN_NOTICE:
        shown.append(f"  - and {len(files) - MAX_FILES_IN_NOTICE} more")
    return [
        f"From:     {message.header('From') or message.envelope.mail_from or '(no sender)'}",
        f"Subject:  {message.subject or '(no subject)'}",
        "Files:" if shown else "Files:    none",
        *shown,
    ]


def held_notice(runtime: Runtime, message: Message, recipient: str, findings: list[dict[str, Any]]) -> bytes:
    settings = runtime.config.settings.notices
    mine = [
        f
        for f in findings
        if f.get("mode", "enforce") == "enforce"
        and (f.get("recipients") is None or recipient.lower() in f["recipients"])
    ]
    reasons = list(
        dict.fromkeys(WHY.get(f["policy"], f"the rule {f['policy']} asked IT to look at it first") for f in mine)
    )
    text = "\n".join(
        [
            "A message sent to you is waiting for IT to check it before it is delivered.",
            "",
            *_summary(message),
            "",
            "Why: " + "; and ".join(reasons or ["IT asked to review it"]) + ".",
            "",
            (
                "What happens next: IT reviews quarantined messages and either delivers the message to you or tells you why "
                "not. You do not need to do anything, and please do not ask the sender to send the files again another way "
                "before IT has looked at them."
            ),
            "",
            (
                f"If you know the sender and need the message soon, contact {settings.it_contact} and quote reference "
                f"{message.id}."
            ),
        ]
    )
    return notices.compose(
        settings,
        [recipient],
        f"Held for IT review: {message.subject or '(no subject)'}"[:200],
        text,
        kind="quarantine-held",
        hostname=runtime.config.settings.smtp.hostname,
    )


def rejected_notice(runtime: Runtime, message: Message, recipient: str, reason: str) -> bytes:
    settings = runtime.config.settings.notices
    text = "\n".join(
        [
            "IT checked a message sent to you and decided not to deliver it.",
            "",
            *_summary(message),
            "",
            f"IT's reason: {reason}",
            "",
            (
                "The sender was not told. If you believe this is a mistake, or you need the information in it, contact "
                f"{settings.it_contact} and quote reference {message.id}."
            ),
        ]
    )
    return notices.compose(
        settings,
        [recipient],
        f"Not delivered: {message.subject or '(no subject)'}"[:200],
        text,
        kind="quarantine-rejected",
        hostname=runtime.config.settings.smtp.hostname,
    )


def unnotified(connection: Connection, limit: int = NOTIFY_BATCH) -> list[dict[str, Any]]:
    table = holds.held_message
    told = select(quarantine_notice.c.message_id)
    query = (
        select(table)
        .where(table.c.queue == QUEUE, table.c.state == holds.PENDING, table.c.message_id.not_in(told))
        .order_by(table.c.id)
        .limit(limit)
    )
    return [dict(row._mapping) for row in connection.execute(query)]


def notify_new(runtime: Runtime) -> int:
    """Send the notices of quarantine holds that have none yet; returns how many holds were notified.

    One transaction per hold: its notices (archived and queued) and its
    marker commit together, so a failure leaves it for the next run.
    """
    with runtime.database.read() as connection:
        waiting = unnotified(connection)
    done = 0
    for held in waiting:
        try:
            message = holds.message_of(runtime, held)
            data = [(r, held_notice(runtime, message, r, held["findings"])) for r in held["rcpt_to"]]
            with runtime.database.write() as connection:
                if connection.execute(
                    select(quarantine_notice.c.message_id).where(quarantine_notice.c.message_id == held["message_id"])
                ).first():
                    continue  # another run got there first
                sent = [notices.send(connection, runtime, notice, [r], origin="quarantine") for r, notice in data]
                connection.execute(
                    insert(quarantine_notice).values(
                        message_id=held["message_id"],
                        notified_at=utcnow(),
                        recipients=list(held["rcpt_to"]),
                        notices=sent,
                    )
                )
            done += 1
        except Exception:
            log.exception("quarantine notice for hold %s not sent; trying again on the next run", held["id"])
    return done
