"""One person's mail over a period, from the archive index: the analysis a manager may ask for.

Counts by day and direction, sent and received, the people they wrote with
most, the gateway's decisions and the rules that found something. A message
counts for the person when their address is its sender (From or envelope) or
one of its recipients (To, Cc or envelope, which includes Bcc).
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, timedelta, tzinfo
from typing import Any

from sqlalchemy import Connection, select

from archive.index import archive_address, archive_finding, archive_index
from archive.search import start_of
from milter.kernel.db import as_utc
from milter.kernel.directory import normalise_address

SENT_ROLES = frozenset({"from", "sender"})
TOP = 20


@dataclass
class Activity:
    address: str
    since: date
    until: date
    total: int = 0
    sent: int = 0
    received: int = 0
    by_day: list[dict[str, Any]] = field(
        default_factory=list
    )  # day, inbound, outbound, internal, other, sent, received
    by_direction: dict[str, int] = field(default_factory=dict)
    decisions: dict[str, int] = field(default_factory=dict)
    correspondents: list[dict[str, Any]] = field(default_factory=list)  # address, sent_to, received_from, total
    findings: list[dict[str, Any]] = field(default_factory=list)  # rule, mode, action, messages

    def as_dict(self) -> dict[str, Any]:
        return {
            "address": self.address,
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "total": self.total,
            "sent": self.sent,
            "received": self.received,
            "by_direction": self.by_direction,
            "decisions": self.decisions,
            "by_day": [{**row, "day": row["day"].isoformat()} for row in self.by_day],
            "correspondents": self.correspondents,
            "findings": self.findings,
        }


def activity(connection: Connection, address: str, since: date, until: date, zone: tzinfo) -> Activity:
    """`address`'s messages dated from `since` through `until` (whole days in `zone`)."""
    if until < since:
        raise ValueError(f"the period ends ({until}) before it starts ({since})")
    address = normalise_address(address)
    report = Activity(address, since, until)
    a, i = archive_address.c, archive_index.c
    mine = select(a.record_id).where(
        a.address == address,
        a.message_date >= start_of(since, zone),
        a.message_date < start_of(until + timedelta(days=1), zone),
    )
    roles: dict[int, set[str]] = defaultdict(set)
    for record_id, role in connection.execute(
        select(a.record_id, a.role).where(a.address == address, a.record_id.in_(mine))
    ):
        roles[record_id].add(role)
    rows = connection.execute(
        select(i.record_id, i.message_date, i.direction, i.action).where(i.record_id.in_(mine))
    ).all()
    days: dict[date, Counter[str]] = defaultdict(Counter)
    direction_counts: Counter[str] = Counter()
    decisions: Counter[str] = Counter()
    sent_ids = set()
    for row in rows:
        day = as_utc(row.message_date).astimezone(zone).date()
        direction = row.direction or "other"
        sent = bool(roles[row.record_id] & SENT_ROLES)
        days[day][direction if direction in ("inbound", "outbound", "internal") else "other"] += 1
        days[day]["sent" if sent else "received"] += 1
        direction_counts[direction] += 1
        decisions[row.action or "imported"] += 1
        if sent:
            sent_ids.add(row.record_id)
    report.total, report.sent = len(rows), len(sent_ids)
    report.received = report.total - report.sent
    report.by_day = [
        {"day": day, **{k: days[day][k] for k in ("inbound", "outbound", "internal", "other", "sent", "received")}}
        for day in sorted(days)
    ]
    report.by_direction, report.decisions = dict(direction_counts), dict(decisions)
    report.correspondents = _correspondents(connection, mine, address, sent_ids)
    report.findings = _findings(connection, mine)
    return report


def _correspondents(connection: Connection, mine: Any, address: str, sent_ids: set[int]) -> list[dict[str, Any]]:
    a = archive_address.c
    wrote_to: Counter[str] = Counter()
    heard_from: Counter[str] = Counter()
    seen: set[tuple[int, str, bool]] = set()
    for record_id, other, role in connection.execute(
        select(a.record_id, a.address, a.role).where(a.record_id.in_(mine), a.address != address)
    ):
        outgoing = record_id in sent_ids
        if outgoing == (role in SENT_ROLES) or (record_id, other, outgoing) in seen:
            continue  # on their own messages, the recipients; on messages to them, the senders; each once
        seen.add((record_id, other, outgoing))
        (wrote_to if outgoing else heard_from)[other] += 1
    everyone = wrote_to + heard_from
    return [
        {"address": other, "sent_to": wrote_to[other], "received_from": heard_from[other], "total": total}
        for other, total in sorted(everyone.items(), key=lambda item: (-item[1], item[0]))[:TOP]
    ]


def _findings(connection: Connection, mine: Any) -> list[dict[str, Any]]:
    f = archive_finding.c
    counts: Counter[tuple[str, str, str]] = Counter()
    seen: set[tuple[int, str, str, str]] = set()
    for record_id, rule, mode, action in connection.execute(
        select(f.record_id, f.rule, f.mode, f.action).where(f.record_id.in_(mine))
    ):
        key = (rule, mode or "", action or "")
        if (record_id, *key) not in seen:
            seen.add((record_id, *key))
            counts[key] += 1
    return [
        {"rule": rule, "mode": mode, "action": action, "messages": number}
        for (rule, mode, action), number in sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    ]
