"""A broadcast entering the approval queue: its request row, its links and the first notices.

`prepare` runs in milter/intake/accept.py before the accept transaction (in the
I/O thread): it works out who approves, signs the links and stores the
notices' bytes. `Intake.record` runs inside that transaction, right after the
hold row is written: it only inserts. So the hold, its approval request, its
links and the notices to the sender and the approvers commit together, before
the client hears 250: a held broadcast is never left waiting unannounced.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection

from milter.kernel.db import utcnow
from milter.kernel.directory import normalise_address
from quarantine import approval_notices, approval_tokens, approval_view, approvals

if TYPE_CHECKING:
    from milter.intake.pipeline import Decision
    from milter.mail.message import Message
    from milter.runtime import Runtime


@dataclass(frozen=True)
class Intake:
    request: dict[str, Any]  # the approval_request row, but for its hold id
    tokens: tuple[approval_tokens.Issued, ...]
    notices: tuple[approval_notices.Prepared, ...]

    def record(self, connection: Connection, hold_id: int) -> None:
        approvals.open_request(connection, {**self.request, "hold_id": hold_id})
        approval_tokens.record(connection, self.tokens)
        for notice in self.notices:
            notice.queue(connection)


def prepare(runtime: Runtime, message: Message, decision: Decision) -> Intake | None:
    """What to write when a message is held for approval; None when it is not."""
    held = decision.held_for(approvals.QUEUE)
    if not held:
        return None
    from policies.rules.broadcast import (  # the rule's own view of sender and reach
        internal_sender,
        reach_of,
    )

    now = utcnow()
    directory, settings = runtime.directory, runtime.config.settings.approvals
    sender = internal_sender(message, directory) or normalise_address(message.envelope.mail_from)
    person = directory.person(sender) if sender else None
    display = next((name for name, address in message.from_addresses if address == sender and name), "")
    asked = [f for f in decision.findings if f.enforced and f.hold_queue == approvals.QUEUE]
    route = approvals.route_for(directory, settings, sender, person.department if person else None)
    request = {
        "message_id": message.id,
        "sender": approvals.canonical(directory, sender) if sender else "",
        "sender_name": person.name if person else display or sender or "unknown sender",
        "department": person.department if person else None,
        "reach": reach_of(held, directory).describe(),
        "approvers": list(route.approvers),
        "held_at": now,
        "fallback_at": None if route.approvers else now,
        "reminded_at": None,
        "closed_at": None,
        "outcome": None,
    }
    hold = {
        "id": None,
        "message_id": message.id,
        "reason": " ".join(f.reason for f in asked),
        "mail_from": message.envelope.mail_from,
        "rcpt_to": held,
    }
    summary = approval_view.summarise(message)
    asking = route.approvers or route.fallback
    issued, notices = approvals.ask(
        runtime, hold, request, asking, "request" if route.approvers else "fallback", now, summary
    )
    if not asking:
        notices.append(approvals.nobody_notice(runtime, hold, request, now, summary))
    if sender:
        note = approvals.note_for(directory, settings, request, None, now)
        told = approval_notices.held(approvals.about(runtime, hold, request, now, summary), note)
        notices.insert(0, approval_notices.prepare(runtime, [sender], *told, kind="approval-held"))
    return Intake(request, tuple(issued), tuple(notices))
