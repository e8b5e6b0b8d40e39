"""The approval queue for broadcasts: who approves, the decisions, and the clock.

A broadcast held by the `broadcast` rule waits in the `approval` hold queue
(quarantine/holds.py) with an `approval_request` row beside it: the sender,
their department, and when the fallback approvers were brought in.

Who may decide, checked again at every decision against the current
directory and config: the head of the sender's department and its delegates;
the configured fallback approvers when the department has no one who could
(from the start) or after escalation; admins, on any item. Never the sender.
A message is never delivered unapproved: with no approver on file it waits
for the fallback, and with no fallback it waits for an admin (who is told).

Approval appends the agencies' note to the text and HTML bodies
(quarantine/approval_note.py), archives that version as "delivered" and
releases it to the deliver queue; when other rules also asked for IT review,
the approved version goes on to the IT quarantine instead. Rejection and
expiry tell the sender why. The clock (`tick`) reminds, escalates and
expires in business days (quarantine/approval_clock.py).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    insert,
    select,
    update,
)

from archive import audit, records
from milter.kernel.db import as_utc, clean_text, metadata, utcnow
from milter.kernel.directory import Department, Directory, Person, normalise_address
from quarantine import approval_note, approval_notices, approval_tokens, approval_view, holds
from quarantine.approval_clock import add_business_days, local_text
from quarantine.settings import ApprovalSettings

if TYPE_CHECKING:
    from milter.runtime import Runtime

log = logging.getLogger(__name__)

QUEUE = "approval"
MAX_REASON = 2000
OUTCOMES = ("approved", "rejected", "expired")

approval_request = Table(
    "approval_request",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("hold_id", BigInteger, nullable=False, unique=True),
    Column("message_id", String(40), nullable=False, unique=True),
    Column("sender", String(320), nullable=False),
    Column("sender_name", Text, nullable=False),
    Column("department", String(200)),  # the sender's department id when the message was held
    Column("reach", Text, nullable=False),  # "All Staff (all-staff@example.gov)"
    Column("approvers", JSON, nullable=False),  # who was asked first
    Column("held_at", DateTime(timezone=True), nullable=False),
    Column("fallback_at", DateTime(timezone=True)),  # when the fallback approvers were brought in
    Column("reminded_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True), index=True),
    Column("outcome", String(16)),  # approved, rejected, expired (or the hold's state when decided elsewhere)
)


class DecisionRefused(Exception):
    """A decision that may not be made; the message says why, in words for the person who tried."""


# -- who approves ---------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    """Who may approve a sender's broadcast, by the directory and config."""

    sender: str
    department: Department | None
    head: Person | None
    approvers: tuple[str, ...]  # the department head and delegates, never the sender
    fallback: tuple[str, ...]  # the configured fallback approvers, never the sender


def canonical(directory: Directory, address: str) -> str:
    """A person's primary address for any of their addresses; other addresses lower-cased."""
    person = directory.person(address)
    return person.address if person else normalise_address(address)


def same_person(directory: Directory, one: str, other: str) -> bool:
    return canonical(directory, one) == canonical(directory, other)


def route_for(directory: Directory, settings: ApprovalSettings, sender: str, department_id: str | None) -> Route:
    department = directory.departments.get(department_id) if department_id else None
    head = directory.person(department.head) if department and department.head else None
    asked = [department.head, *department.delegates] if department else []
    approvers = tuple(
        dict.fromkeys(canonical(directory, a) for a in asked if a and not same_person(directory, a, sender))
    )
    fallback = tuple(
        dict.fromkeys(
            canonical(directory, a) for a in settings.fallback_approvers if not same_person(directory, a, sender)
        )
    )
    return Route(canonical(directory, sender), department, head, approvers, fallback)


def route_of(directory: Directory, settings: ApprovalSettings, request: dict[str, Any]) -> Route:
    return route_for(directory, settings, request["sender"], request["department"])


@dataclass(frozen=True)
class Authority:
    """In what capacity someone decides, and whose approval the note names."""

    capacity: str  # "department head", "delegate of Dana Whitfield", "fallback approver", "admin"
    for_name: str | None
    for_title: str | None


def authority(
    directory: Directory,
    settings: ApprovalSettings,
    request: dict[str, Any],
    address: str | None,
    *,
    admin: bool = False,
) -> Authority:
    """Who `address` decides as; DecisionRefused when they may not (the sender never may)."""
    if address and same_person(directory, address, request["sender"]):
        raise DecisionRefused(
            "You sent this message, and nobody approves their own message: it waits for "
            f"{decides_words(directory, settings, request)}."
        )
    route = route_of(directory, settings, request)
    if address:
        key = canonical(directory, address)
        head = route.head
        if head is not None and key == head.address:
            return Authority("department head", head.name, head.title)
        if key in route.approvers:
            person = directory.person(key)
            if head is not None:
                return Authority(f"delegate of {head.name}", head.name, head.title)
            return Authority("delegate", person.name if person else key, person.title if person else None)
        if key in route.fallback and request.get("fallback_at") is not None:  # from the start, or after escalation
            person = directory.person(key)
            return Authority("fallback approver", person.name if person else key, person.title if person else None)
    if admin:
        return Authority("admin", None, None)
    who = address or "You"
    raise DecisionRefused(
        f"{who} may not decide this message: it waits for {decides_words(directory, settings, request)}."
    )


def person_words(directory: Directory, address: str) -> str:
    person = directory.person(address)
    if person is None:
        return address
    return f"{person.name} ({person.title})" if person.title else person.name


def _join(words: list[str]) -> str:
    return words[0] if len(words) == 1 else ", ".join(words[:-1]) + " or " + words[-1]


def decides_words(directory: Directory, settings: ApprovalSettings, request: dict[str, Any]) -> str:
    route = route_of(directory, settings, request)
    asked = list(route.approvers)
    if request.get("fallback_at") is not None:
        asked += [a for a in route.fallback if a not in asked]
    if not asked:
        return "the agency's mail administrators (no approver is on file)"
    return _join([person_words(directory, a) for a in asked])


# -- the request rows ----------------------------------------------------------


def open_request(connection: Connection, row: dict[str, Any]) -> None:
    connection.execute(insert(approval_request).values(**row))


def request_for(connection: Connection, hold_id: int) -> dict[str, Any] | None:
    row = connection.execute(select(approval_request).where(approval_request.c.hold_id == hold_id)).first()
    return dict(row._mapping) if row else None


def request_for_message(connection: Connection, message_id: str) -> dict[str, Any] | None:
    row = connection.execute(select(approval_request).where(approval_request.c.message_id == message_id)).first()
    return dict(row._mapping) if row else None


def hold_for_message(connection: Connection, message_id: str) -> dict[str, Any] | None:
    """The approval hold of a message (console links and the CLI name messages by id)."""
    request = request_for_message(connection, message_id)
    if request is not None:
        return holds.get(connection, request["hold_id"])
    table = holds.held_message  # an approval hold made without a request row (see _standin)
    row = connection.execute(
        select(table).where(table.c.message_id == message_id, table.c.queue == QUEUE).order_by(table.c.id)
    ).first()
    return dict(row._mapping) if row else None


def open_requests(connection: Connection) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(approval_request).where(approval_request.c.closed_at.is_(None)).order_by(approval_request.c.id)
    )
    return [dict(row._mapping) for row in rows]


def _standin(hold: dict[str, Any]) -> dict[str, Any]:
    """A request for an approval hold that came without one (made by other code): only admins decide it."""
    return {
        "id": None,
        "hold_id": hold["id"],
        "message_id": hold["message_id"],
        "sender": hold["mail_from"] or "unknown",
        "sender_name": hold["mail_from"] or "unknown sender",
        "department": None,
        "reach": ", ".join(hold["rcpt_to"]),
        "approvers": [],
        "held_at": hold["created_at"],
        "fallback_at": None,
        "reminded_at": None,
        "closed_at": None,
        "outcome": None,
    }


def request_of(connection: Connection, hold: dict[str, Any]) -> dict[str, Any]:
    return request_for(connection, hold["id"]) or _standin(hold)


def _close(connection: Connection, request: dict[str, Any], outcome: str, now: dt.datetime) -> None:
    if request["id"] is not None:
        connection.execute(
            update(approval_request)
            .where(approval_request.c.id == request["id"])
            .values(closed_at=as_utc(now), outcome=outcome)
        )


# -- what people see -----------------------------------------------------------


@dataclass(frozen=True)
class Schedule:
    remind: dt.datetime
    escalate: dt.datetime
    expire: dt.datetime


def schedule_of(settings: ApprovalSettings, held_at: dt.datetime) -> Schedule:
    zone, off = settings.zone, settings.holidays
    return Schedule(
        add_business_days(held_at, settings.remind_after, zone, off),
        add_business_days(held_at, settings.escalate_after, zone, off),
        add_business_days(held_at, settings.expire_after, zone, off),
    )


def about(
    runtime: Runtime,
    hold: dict[str, Any],
    request: dict[str, Any],
    now: dt.datetime,
    summary: approval_view.Summary | None = None,
) -> approval_notices.About:
    directory, settings = runtime.directory, runtime.config.settings.approvals
    person = directory.person(request["sender"])
    department = directory.departments.get(request["department"]) if request["department"] else None
    title = ", ".join(filter(None, [person.title if person else "", department.name if department else ""]))
    if summary is None:
        summary = approval_view.summarise(holds.message_of(runtime, hold))
    expires = schedule_of(settings, request["held_at"]).expire
    return approval_notices.About(
        message_id=hold["message_id"],
        sender_name=request["sender_name"],
        sender_address=request["sender"],
        sender_title=title,
        reach=request["reach"],
        summary=summary,
        reason=hold["reason"],
        decides=decides_words(directory, settings, request),
        expires_text=local_text(expires, settings.zone),
        console_url=console_url(runtime, hold["message_id"]),
        it_contact=runtime.config.settings.notices.it_contact,
    )


def console_url(runtime: Runtime, message_id: str) -> str:
    return f"{runtime.config.settings.console.base_url.rstrip('/')}/approvals/{message_id}"


def note_for(
    directory: Directory,
    settings: ApprovalSettings,
    request: dict[str, Any],
    address: str | None,
    now: dt.datetime,
    *,
    admin: bool = False,
) -> str:
    """The note as it will read when `address` approves (the first approver's, when None).

    An admin previews exactly what `approve` appends for them: their own authority, never the first approver's."""
    if admin:
        try:
            auth = authority(directory, settings, request, address, admin=True)
        except DecisionRefused:  # the admin sent it: approve refuses too; show the admin note
            auth = Authority("admin", None, None)
        return approval_note.Approval(
            request["sender_name"], auth.for_name, auth.for_title, "", auth.capacity, now
        ).text
    route = route_of(directory, settings, request)
    address = address or next(iter(route.approvers or route.fallback), None)
    try:
        auth = authority(directory, settings, {**request, "fallback_at": request.get("fallback_at") or now}, address)
    except DecisionRefused:
        auth = Authority("admin", None, None)
    return approval_note.Approval(request["sender_name"], auth.for_name, auth.for_title, "", auth.capacity, now).text


@dataclass(frozen=True)
class Item:
    """One pending broadcast as a list shows it."""

    hold: dict[str, Any]
    request: dict[str, Any]
    capacity: str  # how the viewer would decide it
    waiting_for: str
    schedule: Schedule


def pending(
    connection: Connection,
    directory: Directory,
    settings: ApprovalSettings,
    address: str | None,
    *,
    admin: bool,
    limit: int = 1000,
) -> list[Item]:
    """The pending broadcasts `address` may decide (every one for admins), oldest first."""
    items = []
    for hold in holds.listing(connection, QUEUE, state=holds.PENDING, limit=limit):
        request = request_of(connection, hold)
        try:
            capacity = authority(directory, settings, request, address, admin=admin).capacity
        except DecisionRefused:
            continue
        items.append(
            Item(
                hold,
                request,
                capacity,
                decides_words(directory, settings, request),
                schedule_of(settings, request["held_at"]),
            )
        )
    return items


# -- decisions -------------------------------------------------------------------


def _to_sender(
    runtime: Runtime, request: dict[str, Any], told: tuple[str, str, str], kind: str
) -> list[approval_notices.Prepared]:
    """The outcome notice for the sender, when there is an address to send it to."""
    if "@" not in request["sender"]:
        return []
    return [approval_notices.prepare(runtime, [request["sender"]], *told, kind=kind)]


@contextmanager
def _first_decision(runtime: Runtime) -> Iterator[Connection]:
    """A decision's transaction; when someone else decided a moment earlier, nothing is written and the words say so."""
    try:
        with runtime.database.write() as connection:
            yield connection
    except holds.HoldError as exc:
        raise DecisionRefused(f"Someone else decided this message a moment ago ({exc}); nothing was changed.") from None


@dataclass(frozen=True)
class Decider:
    """Who decides: the audit log's actor and, when known, the directory person."""

    actor: str  # a console login, the approver's address (emailed link), "cli:root"
    address: str | None  # the person deciding; None for an admin whose login names no person
    via: str  # "link", "console", "cli"
    admin: bool = False
    source: str | None = None  # client address, or "cli"


@dataclass(frozen=True)
class Outcome:
    hold_id: int
    message_id: str
    state: str  # approved, it-review, rejected
    words: str  # one sentence for the person who decided
    details: dict[str, Any] = field(default_factory=dict)


AuditHook = Callable[[Connection, str, str, dict[str, Any]], None]  # (connection, action, target, details)


def _audit(decider: Decider) -> AuditHook:
    def record(connection: Connection, action: str, target: str, details: dict[str, Any]) -> None:
        audit.record(connection, decider.actor, action, target, source=decider.source, details=details)

    return record


def _load(connection: Connection, hold_id: int) -> tuple[dict[str, Any], dict[str, Any]]:
    hold = holds.get(connection, hold_id)
    if hold is None or hold["queue"] != QUEUE:
        raise DecisionRefused(f"There is no message {hold_id} in the approval queue.")
    if hold["state"] != holds.PENDING:
        when = f" on {as_utc(hold['decided_at']):%Y-%m-%d at %H:%M UTC}" if hold["decided_at"] else ""
        raise DecisionRefused(
            f"This message was already {hold['state']} by {hold['decided_by']}{when}; nothing was changed."
        )
    return hold, request_of(connection, hold)


def _check_claim(
    connection: Connection, claim: approval_tokens.Claim | None, hold: dict[str, Any], now: dt.datetime
) -> None:
    if claim is None:
        return
    if claim.message_id != hold["message_id"]:
        raise approval_tokens.TokenRefused("unknown", "This link belongs to another message.")
    approval_tokens.check(connection, claim, now)


def _other_holds(received: dict[str, Any] | None, hold: dict[str, Any]) -> list[dict[str, Any]]:
    """Enforced findings of other rules that asked for IT review of these recipients: approval does not skip them."""
    held_for = set(hold["rcpt_to"])
    found = []
    for finding in (received or {}).get("findings") or []:
        if (
            finding.get("mode") == "enforce"
            and finding.get("action") == "hold"
            and finding.get("hold_queue") == "quarantine"
            and (finding.get("recipients") is None or held_for & set(finding["recipients"]))
        ):
            found.append(finding)
    return found


def approver_words(directory: Directory, decider: Decider, auth: Authority) -> str:
    if decider.address:
        person = directory.person(decider.address)
        name = person.name if person else decider.address
        return name if auth.capacity == "department head" else f"{name} ({auth.capacity})"
    return f"the mail administrator {decider.actor}"


def approve(
    runtime: Runtime,
    hold_id: int,
    decider: Decider,
    *,
    note: str | None = None,
    claim: approval_tokens.Claim | None = None,
    now: dt.datetime | None = None,
    audit_hook: AuditHook | None = None,
) -> Outcome:
    """Approve a held broadcast: note it, archive that version, deliver it (or hand it to IT review)."""
    now = as_utc(now or utcnow())
    directory, settings = runtime.directory, runtime.config.settings.approvals
    note = clean_text((note or "").strip(), MAX_REASON) or None
    with runtime.database.read() as connection:
        hold, request = _load(connection, hold_id)
        _check_claim(connection, claim, hold, now)
        received = next(
            (r for r in records.records_for(connection, hold["message_id"]) if r["kind"] == "received"), None
        )
    it_findings = _other_holds(received, hold)
    auth = authority(directory, settings, request, decider.address, admin=decider.admin)
    person = directory.person(decider.address) if decider.address else None
    header_name = f"{person.name} <{person.address}>" if person else (decider.address or decider.actor)
    approval = approval_note.Approval(
        request["sender_name"], auth.for_name, auth.for_title, header_name, auth.capacity, now
    )
    approved_raw = approval_note.apply(runtime.blobs.get(hold["blob_sha256"]), approval)
    digest = runtime.blobs.put(approved_raw)
    who = approver_words(directory, decider, auth)
    held_message = holds.message_of(runtime, hold)
    told = approval_notices.approved(
        about(runtime, hold, request, now, approval_view.summarise(held_message)), who, approval.text, bool(it_findings)
    )
    to_sender = _to_sender(runtime, request, told, "approval-approved")
    details = {
        "decision": "approve",
        "hold": hold_id,
        "approver": decider.address,
        "capacity": auth.capacity,
        "via": decider.via,
        "note": note,
        "approved_version": digest,
        "it_review": bool(it_findings),
    }
    with _first_decision(runtime) as connection:
        if claim is not None:
            approval_tokens.use(connection, claim, now)
        records.append(
            connection, **_delivered_record(received, hold, digest, len(approved_raw), details, bool(it_findings))
        )
        if it_findings:
            handed = _hand_to_it(connection, hold, decider, digest, who, it_findings, note)
            details["it_hold"] = handed
        else:
            holds.release(
                connection,
                hold_id,
                decider.actor,
                note=note or f"approved by {who}",
                source=decider.source,
                blob_sha256=digest,
            )
        approval_tokens.revoke_all(connection, hold["message_id"], now)
        _close(connection, request, "approved", now)
        for notice in to_sender:
            notice.queue(connection)
        (audit_hook or _audit(decider))(connection, "approval.decision", hold["message_id"], details)
    if it_findings:
        return Outcome(
            hold_id,
            hold["message_id"],
            "it-review",
            "Approved. Other rules asked for IT review, so the message "
            "now waits for IT before it is delivered; the sender has been told.",
            details,
        )
    return Outcome(
        hold_id,
        hold["message_id"],
        "approved",
        "Approved: the message is being delivered with the approval note, and the sender has been told.",
        details,
    )


def _delivered_record(
    received: dict[str, Any] | None,
    hold: dict[str, Any],
    digest: str,
    size: int,
    details: dict[str, Any],
    it_review: bool,
) -> dict[str, Any]:
    """The archive record of the approved version (the received one is already archived)."""
    copied = (
        {
            key: received[key]
            for key in (
                "direction",
                "client_ip",
                "helo",
                "auth_user",
                "header_from",
                "header_to",
                "header_cc",
                "subject",
                "header_message_id",
                "header_date",
            )
        }
        if received
        else {}
    )
    return {
        **copied,
        "message_id": hold["message_id"],
        "kind": "delivered",
        "blob_sha256": digest,
        "size": size,
        "mail_from": hold["mail_from"],
        "rcpt_to": hold["rcpt_to"],
        "action": "hold" if it_review else "deliver",
        "hold_queue": "quarantine" if it_review else None,
        "details": {"edited_by": ["approval"], **details},
    }


def _hand_to_it(
    connection: Connection,
    hold: dict[str, Any],
    decider: Decider,
    digest: str,
    who: str,
    findings: list[dict[str, Any]],
    note: str | None,
) -> int:
    """Approved, but other rules asked for IT review: the approved version waits in the IT quarantine."""
    handed = holds.hand_over(
        connection,
        hold["id"],
        decider.actor,
        "quarantine",
        blob_sha256=digest,
        findings=findings,
        reason=f"Approved for broadcast by {who}; also held for IT review: " + " ".join(f["reason"] for f in findings),
        note=f"approved by {who}" + (f"; {note}" if note else ""),
    )
    audit.record(
        connection,
        decider.actor,
        "approval.release",
        hold["message_id"],
        source=decider.source,
        details={"hold": hold["id"], "note": note, "recipients": hold["rcpt_to"], "handed_to_quarantine": handed},
    )
    return handed


def reject(
    runtime: Runtime,
    hold_id: int,
    decider: Decider,
    *,
    reason: str,
    claim: approval_tokens.Claim | None = None,
    now: dt.datetime | None = None,
    audit_hook: AuditHook | None = None,
) -> Outcome:
    """Reject a held broadcast; the sender is told the reason. A reason is required."""
    now = as_utc(now or utcnow())
    reason = clean_text((reason or "").strip(), MAX_REASON) or ""
    if not reason:
        raise DecisionRefused("Give a reason for the rejection: it is sent to the sender so they know what to change.")
    directory, settings = runtime.directory, runtime.config.settings.approvals
    with runtime.database.read() as connection:
        hold, request = _load(connection, hold_id)
        _check_claim(connection, claim, hold, now)
    auth = authority(directory, settings, request, decider.address, admin=decider.admin)
    who = approver_words(directory, decider, auth)
    told = approval_notices.rejected(about(runtime, hold, request, now), who, reason)
    to_sender = _to_sender(runtime, request, told, "approval-rejected")
    details = {
        "decision": "reject",
        "hold": hold_id,
        "approver": decider.address,
        "capacity": auth.capacity,
        "via": decider.via,
        "reason": reason,
    }
    with _first_decision(runtime) as connection:
        if claim is not None:
            approval_tokens.use(connection, claim, now)
        holds.reject(connection, hold_id, decider.actor, note=reason, source=decider.source)
        approval_tokens.revoke_all(connection, hold["message_id"], now)
        _close(connection, request, "rejected", now)
        for notice in to_sender:
            notice.queue(connection)
        (audit_hook or _audit(decider))(connection, "approval.decision", hold["message_id"], details)
    return Outcome(
        hold_id,
        hold["message_id"],
        "rejected",
        "Rejected: the message will not be sent, and the sender has been told your reason.",
        details,
    )


# -- asking approvers ------------------------------------------------------------


def ask(
    runtime: Runtime,
    hold: dict[str, Any],
    request: dict[str, Any],
    addresses: tuple[str, ...] | list[str],
    kind: str,
    now: dt.datetime,
    summary: approval_view.Summary | None = None,
    waited: str | None = None,
) -> tuple[list[approval_tokens.Issued], list[approval_notices.Prepared]]:
    """Fresh links and an e-mail for each approver (made ready outside any transaction)."""
    settings = runtime.config.settings
    signer = approval_tokens.serializer_for(settings.console.secret_key_file)
    info = about(runtime, hold, request, now, summary)
    plan = schedule_of(settings.approvals, request["held_at"])
    schedule = _schedule_words(runtime, request, plan, kind)
    issued, prepared = [], []
    for address in addresses:
        person = runtime.directory.person(address)
        note = note_for(runtime.directory, settings.approvals, request, address, now)
        token = approval_tokens.issue(signer, hold["message_id"], address, now, settings.approvals.token_lifetime)
        text = approval_notices.request(
            info,
            kind=kind,
            approver_name=person.name if person else address,
            approve_url=token.url(settings.console.base_url, "approve"),
            reject_url=token.url(settings.console.base_url, "reject"),
            link_expires=local_text(token.expires_at, settings.approvals.zone),
            note=note,
            schedule=schedule,
            waited=waited,
        )
        issued.append(token)
        prepared.append(approval_notices.prepare(runtime, [address], *text, kind=f"approval-{kind}"))
    return issued, prepared


def _schedule_words(runtime: Runtime, request: dict[str, Any], plan: Schedule, kind: str) -> str:
    settings = runtime.config.settings.approvals
    zone = settings.zone
    route = route_of(runtime.directory, settings, request)
    fallback = (
        _join([person_words(runtime.directory, a) for a in route.fallback])
        if route.fallback
        else "the mail administrators"
    )
    steps = []
    if kind in ("request", "fallback"):
        steps.append(f"you get a reminder on {local_text(plan.remind, zone)}")
        if request.get("fallback_at") is None:
            steps.append(f"from {local_text(plan.escalate, zone)} {fallback} may decide it too")
    steps.append(f"on {local_text(plan.expire, zone)} it is rejected and the sender is told")
    return "If nobody decides, " + "; ".join(steps) + "."


def nobody_notice(
    runtime: Runtime,
    hold: dict[str, Any],
    request: dict[str, Any],
    now: dt.datetime,
    summary: approval_view.Summary | None = None,
) -> approval_notices.Prepared:
    text = approval_notices.nobody(about(runtime, hold, request, now, summary))
    return approval_notices.prepare(
        runtime, [runtime.config.settings.notices.bounce_address], *text, kind="approval-nobody"
    )


# -- the clock -------------------------------------------------------------------


@dataclass
class Tick:
    reminded: list[int] = field(default_factory=list)
    escalated: list[int] = field(default_factory=list)
    expired: list[int] = field(default_factory=list)
    closed: list[int] = field(default_factory=list)  # decided some other way; the request row is closed to match


def tick(runtime: Runtime, now: dt.datetime | None = None) -> Tick:
    """Remind, escalate and expire what is due at `now`; one failing item does not stop the others."""
    now = as_utc(now or utcnow())
    done = Tick()
    with runtime.database.read() as connection:
        waiting = open_requests(connection)
    for request in waiting:
        try:
            _tick_one(runtime, request, now, done)
        except Exception:
            log.exception("approval clock: hold %s failed; it is tried again on the next run", request["hold_id"])
    return done


def run_clock(runtime: Runtime) -> None:
    """The `approvals` job in milter/server.py."""
    done = tick(runtime)
    if done.reminded or done.escalated or done.expired:
        log.info("approval clock: reminded %s, escalated %s, expired %s", done.reminded, done.escalated, done.expired)


def _tick_one(runtime: Runtime, request: dict[str, Any], now: dt.datetime, done: Tick) -> None:
    settings = runtime.config.settings.approvals
    with runtime.database.read() as connection:
        hold = holds.get(connection, request["hold_id"])
    if hold is None or hold["state"] != holds.PENDING:
        with runtime.database.write() as connection:
            _close(connection, request, hold["state"] if hold else "missing", now)
        done.closed.append(request["hold_id"])
        return
    plan = schedule_of(settings, request["held_at"])
    if now >= plan.expire:
        try:
            _expire(runtime, hold, request, now)
        except DecisionRefused:
            return  # decided a moment ago: the next run closes the request
        done.expired.append(hold["id"])
        return
    summary = approval_view.summarise(holds.message_of(runtime, hold))
    route = route_of(runtime.directory, settings, request)
    if request["fallback_at"] is None and (now >= plan.escalate or not route.approvers):
        _escalate(runtime, hold, request, route, now, summary)
        request = {**request, "fallback_at": now}
        done.escalated.append(hold["id"])
    if request["reminded_at"] is None and now >= plan.remind:
        asked = route.approvers or (route.fallback if request["fallback_at"] is not None else ())
        issued, prepared = ask(runtime, hold, request, asked, "reminder", now, summary)
        with runtime.database.write() as connection:
            if _mark(connection, request, "reminded_at", now):
                approval_tokens.record(connection, issued)
                for notice in prepared:
                    notice.queue(connection)
        done.reminded.append(hold["id"])


def _mark(connection: Connection, request: dict[str, Any], column: str, now: dt.datetime) -> bool:
    """Set a step's time once; False when another run already did (then nothing else is written)."""
    result = connection.execute(
        update(approval_request)
        .where(approval_request.c.id == request["id"], approval_request.c[column].is_(None))
        .values({column: as_utc(now)})
    )
    return result.rowcount == 1


def _escalate(
    runtime: Runtime,
    hold: dict[str, Any],
    request: dict[str, Any],
    route: Route,
    now: dt.datetime,
    summary: approval_view.Summary,
) -> None:
    settings = runtime.config.settings.approvals
    waited = f"{settings.escalate_after} business day{'s' if settings.escalate_after != 1 else ''}"
    escalated = {**request, "fallback_at": now}
    if route.fallback:
        issued, prepared = ask(runtime, hold, escalated, route.fallback, "escalation", now, summary, waited=waited)
    else:
        issued, prepared = [], [nobody_notice(runtime, hold, escalated, now, summary)]
    with runtime.database.write() as connection:
        if not _mark(connection, request, "fallback_at", now):
            return
        approval_tokens.record(connection, issued)
        for notice in prepared:
            notice.queue(connection)
        audit.record(
            connection,
            "system",
            "approval.escalate",
            hold["message_id"],
            source="clock",
            details={
                "hold": hold["id"],
                "to": list(route.fallback) or [runtime.config.settings.notices.bounce_address],
                "department_approvers": list(route.approvers),
            },
        )


def _expire(runtime: Runtime, hold: dict[str, Any], request: dict[str, Any], now: dt.datetime) -> None:
    """Nobody decided in time: reject with a notice to the sender. The message stays in the archive."""
    days = runtime.config.settings.approvals.expire_after
    told = approval_notices.expired(about(runtime, hold, request, now), days)
    to_sender = _to_sender(runtime, request, told, "approval-expired")
    with _first_decision(runtime) as connection:
        holds.reject(
            connection,
            hold["id"],
            "system",
            note=f"expired: nobody decided within {days} business days",
            source="clock",
        )
        approval_tokens.revoke_all(connection, hold["message_id"], now)
        _close(connection, request, "expired", now)
        for notice in to_sender:
            notice.queue(connection)
