"""Fuzzy fingerprints of message bodies, to count how widely the same text spreads.

A 64-bit simhash (Charikar, 2002) of each message's body is recorded at
accept time with who sent it and to whom. Copies that differ by a few words
(a greeting added, forward headers, quoting marks) get fingerprints a few
bits apart. The 64 bits are also stored as BANDS indexed bands: two
fingerprints within BANDS - 1 bits of each other share at least one band
exactly, so an indexed equality search finds every near copy (Manku, Jain
and Das Sarma, "Detecting near-duplicates for web crawling", 2007).

These rows are derived data for the chain-letter rule, not the archive: the
rule reads them (read-only) and rows older than KEEP are pruned now and then.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np
import regex
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
    and_,
    delete,
    or_,
    select,
)

from milter.kernel.db import as_utc, clean_text, metadata, utcnow
from milter.kernel.directory import normalise_address
from milter.mail.message import Message
from policies.text.phrases import ascii_words

BITS = 64
BANDS = 8  # finds every copy within 7 bits
BAND_BITS = BITS // BANDS
MIN_WORDS = 30  # shorter bodies ("Thanks!", "See attached") say nothing about spreading
MAX_WORDS = 800  # chain letters are short, and copies share their opening: this bounds the work per message
MAX_CHARS = MAX_WORDS * 24  # enough text for MAX_WORDS words even with quoted headers and links removed
SHINGLE = 2  # words per feature: pairs keep a copy with a line added within a few bits
KEEP = timedelta(days=90)  # the longest window a rule may count over
PRUNE_EVERY = 1000  # every this many rows, older rows are removed
MAX_ROWS = 5000  # the most near copies one lookup reads
TIMEOUT = 2.0

message_fingerprint = Table(
    "message_fingerprint",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("message_id", String(40), nullable=False),
    Column("recorded_at", DateTime(timezone=True), nullable=False, index=True),
    Column("sender", Text, nullable=False),
    Column("recipients", JSON, nullable=False),
    Column("simhash", String(16), nullable=False),
    *(Column(f"band{i}", Integer, nullable=False, index=True) for i in range(BANDS)),
)
_INSERT = message_fingerprint.insert()

# Lines of forwarded and quoted headers, and addresses and links: they differ between copies of one text.
_HEADER_LINE = regex.compile(
    r"^[>\s]*(?:from|sent|to|cc|bcc|date|subject|reply-to)\s*:.*$", regex.IGNORECASE | regex.MULTILINE
)
_NOISE = regex.compile(r"\S+@\S+|\b(?:https?|ftp)://\S+|\bwww\.\S+", regex.IGNORECASE)
_NOISE_MARKS = ("@", "://", "www.")  # one of these is in every _NOISE match, which never crosses a line
_WORD = regex.compile(r"[^\W_]+")


@dataclass(frozen=True)
class Copy:
    """A recorded message whose text is near the one looked up."""

    message_id: str
    sender: str
    recipients: tuple[str, ...]
    recorded_at: datetime
    distance: int


def fingerprint_text(text: str) -> int | None:
    """The simhash of a text's overlapping word pairs, or None for a text too short to tell."""
    text = text[:MAX_CHARS]  # only the opening words count: do not read the rest
    text = _HEADER_LINE.sub(" ", text, timeout=TIMEOUT)
    if _has_noise(text):  # links and addresses go, line by line: most lines have none, and the search is slow
        text = "\n".join(
            _NOISE.sub(" ", line, timeout=TIMEOUT) if _has_noise(line) else line for line in text.split("\n")
        )
    words = ascii_words(text)
    if words is None:
        words = _WORD.findall(text.lower(), timeout=TIMEOUT)
    words = words[:MAX_WORDS]
    if len(words) < MIN_WORDS:
        return None
    shingles = Counter(
        map(" ".join, zip(*(words[i:] for i in range(SHINGLE)), strict=False))
    )  # each run of SHINGLE words
    return simhash(shingles)


def _has_noise(text: str) -> bool:
    folded = text.casefold()
    return any(mark in folded for mark in _NOISE_MARKS)


def simhash(features: Counter[str]) -> int:
    """Charikar's simhash of weighted features, as the `simhash` package computes it (the last BITS bits of each
    feature's MD5, weighted, a bit set where more than half the weight has it), in one pass with numpy."""
    digests = b"".join(hashlib.md5(feature.encode("utf-8")).digest()[-(BITS // 8) :] for feature in features)
    weights = np.fromiter(features.values(), dtype=np.int64, count=len(features))
    bits = np.unpackbits(np.frombuffer(digests, dtype=np.uint8)).reshape(-1, BITS)
    return int.from_bytes(np.packbits(weights @ bits > weights.sum() / 2).tobytes(), "big")


def fingerprint(message: Message) -> int | None:
    """Computed once per message: the chain-letter rule and the accept path share it."""
    return message.derived("fingerprint", lambda m: fingerprint_text(m.body_text))


def bands(value: int) -> list[int]:
    mask = (1 << BAND_BITS) - 1
    return [(value >> (i * BAND_BITS)) & mask for i in range(BANDS)]


def row_for(message: Message, now: datetime | None = None) -> dict[str, Any] | None:
    """The row to record for a received message, or None when its body is too short to tell.

    Built before the accept transaction, so the single writer only inserts.
    """
    value = fingerprint(message)
    if value is None:
        return None
    return {
        "message_id": message.id,
        "recorded_at": as_utc(now or utcnow()),
        "sender": clean_text(message.sender, 500) or "",
        "recipients": [normalise_address(r) for r in message.envelope.rcpt_to][:1000],
        "simhash": f"{value:016x}",
        **{f"band{i}": band for i, band in enumerate(bands(value))},
    }


def record(connection: Connection, row: dict[str, Any]) -> None:
    """Note a received message's fingerprint, in the caller's (accept) transaction."""
    result = connection.execute(_INSERT, row)
    row_id = result.inserted_primary_key[0] if result.inserted_primary_key else None
    if row_id and row_id % PRUNE_EVERY == 0:
        prune(connection, row["recorded_at"] - KEEP)


def prune(connection: Connection, before: datetime) -> int:
    return connection.execute(
        delete(message_fingerprint).where(message_fingerprint.c.recorded_at < as_utc(before))
    ).rowcount


def _sharing_a_band(value: int, since: datetime, until: datetime) -> Any:
    t = message_fingerprint.c
    return and_(
        t.recorded_at >= as_utc(since),
        t.recorded_at <= as_utc(until),
        or_(*(t[f"band{i}"] == band for i, band in enumerate(bands(value)))),
    )


def senders_sharing_a_band(
    connection: Connection, value: int, *, since: datetime, until: datetime, enough: int
) -> set[str]:
    """Up to `enough` distinct senders of recorded messages that share a band with `value`.

    A cheap first look for the chain-letter rule: every near copy shares a
    band, so fewer senders here means fewer near copies' senders too, and the
    rows themselves need not be read.
    """
    t = message_fingerprint.c
    query = select(t.sender).where(_sharing_a_band(value, since, until)).distinct().limit(enough)
    return set(connection.execute(query).scalars())


def near(
    connection: Connection,
    value: int,
    *,
    since: datetime,
    until: datetime,
    max_distance: int,
    exclude: str | None = None,
) -> list[Copy]:
    """Recorded messages between `since` and `until` whose text is within `max_distance` bits of `value`."""
    if max_distance >= BANDS:
        raise ValueError(f"near copies can be found up to {BANDS - 1} bits apart")
    t = message_fingerprint.c
    query = (
        select(t.message_id, t.sender, t.recipients, t.recorded_at, t.simhash)
        .where(_sharing_a_band(value, since, until))
        .order_by(t.recorded_at.desc())
        .limit(MAX_ROWS)
    )
    copies = []
    for row in connection.execute(query):
        distance = (int(row.simhash, 16) ^ value).bit_count()
        if distance <= max_distance and row.message_id != exclude:
            copies.append(
                Copy(row.message_id, row.sender, tuple(row.recipients or ()), as_utc(row.recorded_at), distance)
            )
    return copies
