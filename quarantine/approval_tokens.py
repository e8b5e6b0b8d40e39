"""The signed links in approval requests: bound to one message and one approver, single use, expiring.

A link carries a token signed with the console's secret key (itsdangerous):
the message id, the approver's address, the decision the link offers and a
random nonce. Only the nonce's SHA-256 is stored, in `approval_token`, with
its expiry; using a link sets `used_at`, and any decision on the message
revokes every other link for it. So a token cannot be forged (signature),
moved to another message or person (both are signed), replayed (used_at),
or used after the message was decided or the link expired.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from itsdangerous import BadSignature, URLSafeSerializer
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    DateTime,
    Integer,
    String,
    Table,
    insert,
    select,
    update,
)

from console import secret
from milter.kernel.db import as_utc, metadata

SALT = "aup-milter approval link"
Choice = Literal["approve", "reject"]
CHOICES: tuple[Choice, ...] = ("approve", "reject")

approval_token = Table(
    "approval_token",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("message_id", String(40), nullable=False, index=True),
    Column("approver", String(320), nullable=False),
    Column("nonce_hash", String(64), nullable=False, unique=True),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("expires_at", DateTime(timezone=True), nullable=False),
    Column("used_at", DateTime(timezone=True)),
    Column("revoked_at", DateTime(timezone=True)),
)


class TokenRefused(Exception):
    """A link that cannot be used; the message says why in words for the person who followed it."""

    def __init__(self, kind: str, text: str) -> None:
        self.kind = kind  # forged, unknown, used, revoked, expired
        super().__init__(text)


@dataclass(frozen=True)
class Issued:
    """One approver's pair of links for one message (one nonce: using either uses both)."""

    message_id: str
    approver: str
    nonce_hash: str
    created_at: dt.datetime
    expires_at: dt.datetime
    tokens: dict[Choice, str]

    def row(self) -> dict[str, Any]:
        return {
            "message_id": self.message_id,
            "approver": self.approver,
            "nonce_hash": self.nonce_hash,
            "created_at": self.created_at,
            "expires_at": self.expires_at,
        }

    def url(self, base_url: str, choice: Choice) -> str:
        return f"{base_url.rstrip('/')}/approvals/token/{self.tokens[choice]}"


@dataclass(frozen=True)
class Claim:
    """What a token says, once its signature checks out."""

    message_id: str
    approver: str
    choice: Choice
    nonce_hash: str


@functools.lru_cache(maxsize=8)
def _serializer(key_file: Path) -> URLSafeSerializer:
    return URLSafeSerializer(secret.load_or_create(key_file), salt=SALT)


def serializer_for(key_file: Path) -> URLSafeSerializer:
    """Signs with the console's secret key, so only this gateway makes links its console accepts."""
    return _serializer(Path(key_file))


def _hash(nonce: str) -> str:
    return hashlib.sha256(nonce.encode("ascii")).hexdigest()


def issue(signer: URLSafeSerializer, message_id: str, approver: str, now: dt.datetime, lifetime: float) -> Issued:
    nonce = secrets.token_urlsafe(24)
    tokens: dict[Choice, str] = {
        choice: str(signer.dumps({"m": message_id, "a": approver, "d": choice, "n": nonce})) for choice in CHOICES
    }
    return Issued(message_id, approver, _hash(nonce), as_utc(now), as_utc(now) + dt.timedelta(seconds=lifetime), tokens)


def read(signer: URLSafeSerializer, token: str) -> Claim:
    """The claim in a token; TokenRefused("forged") when it was not signed by this gateway."""
    try:
        data = signer.loads(token)
    except BadSignature:
        raise TokenRefused(
            "forged",
            "This link is not a valid approval link: it may have been cut short or changed. "
            "Open the link from the e-mail again, or decide in the console.",
        ) from None
    if not (
        isinstance(data, dict)
        and isinstance(data.get("m"), str)
        and isinstance(data.get("a"), str)
        and data.get("d") in CHOICES
        and isinstance(data.get("n"), str)
    ):
        raise TokenRefused("forged", "This link is not a valid approval link.")
    return Claim(data["m"], data["a"], data["d"], _hash(data["n"]))


def check(connection: Connection, claim: Claim, now: dt.datetime) -> dict[str, Any]:
    """The stored token row if the link may still be used; TokenRefused otherwise."""
    row = connection.execute(select(approval_token).where(approval_token.c.nonce_hash == claim.nonce_hash)).first()
    if row is None or row.message_id != claim.message_id or row.approver != claim.approver:
        raise TokenRefused("unknown", "This approval link is not known to the gateway.")
    if row.used_at is not None:
        raise TokenRefused(
            "used",
            f"This link was already used (on {as_utc(row.used_at):%Y-%m-%d at %H:%M UTC}); each link works once.",
        )
    if row.revoked_at is not None:
        raise TokenRefused("revoked", "This link no longer works: the message has already been decided.")
    if as_utc(row.expires_at) <= as_utc(now):
        raise TokenRefused(
            "expired",
            f"This link expired on {as_utc(row.expires_at):%Y-%m-%d at %H:%M UTC}. "
            "If the message still waits, decide in the console or use the link in a newer reminder.",
        )
    return dict(row._mapping)


def use(connection: Connection, claim: Claim, now: dt.datetime) -> None:
    """Spend the link inside the decision's transaction; the condition makes a replay lose even in a race."""
    check(connection, claim, now)
    result = connection.execute(
        update(approval_token)
        .where(
            approval_token.c.nonce_hash == claim.nonce_hash,
            approval_token.c.used_at.is_(None),
            approval_token.c.revoked_at.is_(None),
        )
        .values(used_at=as_utc(now))
    )
    if result.rowcount != 1:
        raise TokenRefused("used", "This link was already used; each link works once.")


def record(connection: Connection, issued: list[Issued] | tuple[Issued, ...]) -> None:
    if issued:
        connection.execute(insert(approval_token), [item.row() for item in issued])


def revoke_all(connection: Connection, message_id: str, now: dt.datetime) -> None:
    """Once a message is decided no link for it works any more."""
    connection.execute(
        update(approval_token)
        .where(
            approval_token.c.message_id == message_id,
            approval_token.c.used_at.is_(None),
            approval_token.c.revoked_at.is_(None),
        )
        .values(revoked_at=as_utc(now))
    )


def for_message(connection: Connection, message_id: str) -> list[dict[str, Any]]:
    rows = connection.execute(
        select(approval_token).where(approval_token.c.message_id == message_id).order_by(approval_token.c.id)
    )
    return [dict(row._mapping) for row in rows]
