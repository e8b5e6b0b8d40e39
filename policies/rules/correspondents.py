"""Who has written to whom: the correspondence graph behind "a sender the recipient knows".

When a person inside the agency sends to an outside address, that address
becomes known to that person. The pairs are worked out before the accept
transaction (`pairs_from`) and written inside it (`learn`), so the graph grows
with the archive, message by message. IT adds pairs too ("release and trust
this sender", `aup-milter known-senders trust`), and `rebuild` learns every
pair again from the archive, so a new installation does not quarantine every
existing correspondent.

Both sides are stored lower-case; the inside side is the person's primary
address from the directory, so mail to an alias finds what the person knows.
This table is derived data, not the archive: it may be rebuilt at any time.
"""

from __future__ import annotations

import email.utils
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Index,
    Integer,
    String,
    Table,
    func,
    select,
)

from milter.kernel.db import as_utc, clean_text, dialect_insert, metadata, utcnow
from milter.kernel.directory import Directory, normalise_address

Source = Literal["learned", "archive", "trusted"]
REBUILD_BATCH = 500  # archive records read per query during a rebuild
LEARN_FROM = ("deliver", "hold")  # a rejected message reached no one: nothing to learn from it

known_sender = Table(
    "known_sender",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("sender", String(320), nullable=False),  # the outside address
    Column("recipient", String(320), nullable=False),  # the inside person it is known to
    Column("source", String(16), nullable=False),  # learned (accept time), archive (rebuild), trusted (by a person)
    Column("added_by", String(200)),  # who trusted it, for "trusted"
    Column("first_seen", DateTime(timezone=True), nullable=False),
    Column("last_seen", DateTime(timezone=True), nullable=False),
    Column("messages", Integer, nullable=False, default=1),
    # sender first: the rule asks "which of these recipients know this sender" in one indexed query
    Index("known_sender_pair", "sender", "recipient", unique=True),
    Index("known_sender_recipient", "recipient"),
)

Pair = tuple[str, str]  # (inside person, outside sender)


def person_key(directory: Directory, address: str) -> str:
    """The inside side of a pair: the person's primary address when the directory knows them."""
    person = directory.person(address)
    return person.address if person else normalise_address(address)


def pairs_for(directory: Directory, senders: Iterable[str], recipients: Iterable[str]) -> tuple[Pair, ...]:
    """Each local sender paired with each outside recipient."""
    inside = {person_key(directory, s) for s in senders if s and "@" in s and directory.is_local(s)}
    outside = {normalise_address(r) for r in recipients if r and "@" in r and not directory.is_local(r)}
    return tuple(sorted((person, other) for person in inside for other in outside if len(other) <= 320))


def pairs_from(message: Any, action: str, directory: Directory) -> tuple[Pair, ...]:
    """What an accepted message teaches: its inside senders now know its outside recipients.

    The senders are the envelope sender and the From addresses that are
    local (a shared mailbox sending as itself is known to by the mailbox).
    Only mail from inside counts: an outsider cannot make itself known.
    """
    if action not in LEARN_FROM or message.direction != "outbound" or not message.envelope.inside:
        return ()
    senders = [message.envelope.mail_from, *(address for _, address in message.from_addresses)]
    return pairs_for(directory, senders, message.envelope.rcpt_to)


def learn(
    connection: Connection,
    pairs: Iterable[Pair],
    *,
    source: Source = "learned",
    actor: str | None = None,
    when: datetime | None = None,
) -> int:
    """Record pairs inside the caller's transaction; a pair seen before gets its last_seen moved on."""
    now = as_utc(when or utcnow())
    rows = [
        {
            "recipient": person,
            "sender": sender,
            "source": source,
            "added_by": clean_text(actor, 200),
            "first_seen": now,
            "last_seen": now,
            "messages": 1,
        }
        for person, sender in dict.fromkeys(pairs)
    ]
    if not rows:
        return 0
    statement = dialect_insert(connection)(known_sender).values(rows)
    latest = func.max if connection.dialect.name == "sqlite" else func.greatest  # SQLite's two-argument max is scalar
    changes: dict[str, Any] = {"last_seen": latest(known_sender.c.last_seen, statement.excluded.last_seen)}
    if source == "learned":  # a rebuild or a trust re-states a pair; only a new message adds to the count
        changes["messages"] = known_sender.c.messages + 1
    statement = statement.on_conflict_do_update(index_elements=["sender", "recipient"], set_=changes)
    connection.execute(statement)
    return len(rows)


def trust(connection: Connection, recipients: Iterable[str], sender: str, actor: str) -> int:
    """A person (IT) says these recipients know this sender."""
    pairs = [(normalise_address(r), normalise_address(sender)) for r in recipients]
    return learn(connection, pairs, source="trusted", actor=actor)


def known_to(connection: Connection, sender: str, recipients: Iterable[str]) -> set[str]:
    """Which of `recipients` (person keys) know `sender`: one indexed query."""
    wanted = sorted(set(recipients))
    if not wanted or not sender:
        return set()
    rows = connection.execute(
        select(known_sender.c.recipient).where(
            known_sender.c.sender == normalise_address(sender), known_sender.c.recipient.in_(wanted)
        )
    )
    return set(rows.scalars())


def listing(
    connection: Connection, *, recipient: str | None = None, sender: str | None = None, limit: int = 200
) -> list[dict[str, Any]]:
    query = select(known_sender).order_by(known_sender.c.recipient, known_sender.c.sender).limit(limit)
    if recipient:
        query = query.where(known_sender.c.recipient == normalise_address(recipient))
    if sender:
        query = query.where(known_sender.c.sender.contains(normalise_address(sender), autoescape=True))
    return [dict(row._mapping) for row in connection.execute(query)]


def count(connection: Connection) -> int:
    return int(connection.execute(select(func.count()).select_from(known_sender)).scalar_one())


def rebuild(
    connection: Connection,
    directory: Directory,
    *,
    since: datetime | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[int, int]:
    """Learn every pair from the archive's outbound records; returns (records read, pairs recorded).

    Safe to run again and on a live gateway: pairs already known keep their
    source and only their last_seen moves on. Imported mail counts as well
    as received mail, so a migration's history is learned too.
    """
    from archive.records import archive_record  # the archive's own table; this module only reads it

    columns = (
        archive_record.c.id,
        archive_record.c.recorded_at,
        archive_record.c.mail_from,
        archive_record.c.rcpt_to,
        archive_record.c.header_from,
    )
    after, read, recorded = 0, 0, 0
    while True:
        query = (
            select(*columns)
            .where(
                archive_record.c.id > after,
                archive_record.c.kind.in_(("received", "imported")),
                archive_record.c.direction == "outbound",
                archive_record.c.action.in_(LEARN_FROM),
            )
            .order_by(archive_record.c.id)
            .limit(REBUILD_BATCH)
        )
        if since is not None:
            query = query.where(archive_record.c.recorded_at >= as_utc(since))
        rows = connection.execute(query).all()
        if not rows:
            return read, recorded
        for row in rows:
            authors = [address for _, address in email.utils.getaddresses([row.header_from or ""]) if address]
            pairs = pairs_for(directory, [row.mail_from or "", *authors], row.rcpt_to or [])
            recorded += learn(connection, pairs, source="archive", when=row.recorded_at)
        read += len(rows)
        after = rows[-1].id
        if progress:
            progress(read)
