"""Console users: login, argon2 password hash, one role, and lockout after failed logins.

Sessions end on the server. A session cookie carries a stamp of the user it
began for (`session_stamp`): an HMAC, keyed by the password hash, over the
login, role and the user's session version. Every request recomputes it, so
a new password or a new role ends every session of that user at once, by
whatever path the change is made. Logging out and disabling the account bump
the version (`end_sessions`), which ends them too: enabling it again revives
none.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    DateTime,
    Integer,
    String,
    Table,
    Text,
    insert,
    or_,
    select,
    update,
)

from milter.kernel.db import as_utc, dialect_insert, metadata, utcnow
from milter.kernel.passwords import check_password, hash_password

ROLES = ("admin", "department-head", "records-officer", "auditor", "it-staff")
MAX_FAILED_LOGINS = 5  # consecutive wrong passwords before the account locks ...
LOCKOUT = timedelta(minutes=15)  # ... for this long

console_user = Table(
    "console_user",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True),
    Column("login", String(200), nullable=False, unique=True),
    Column("password_hash", Text, nullable=False),
    Column("role", String(32), nullable=False),
    Column("email", String(320)),  # links the login to a person in the directory (department heads)
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", DateTime(timezone=True), nullable=False),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", DateTime(timezone=True)),
)

# One row per login that has ever logged out; no row is version 0. Its own table, so an
# existing database gains it from create_schema without a migration.
console_session_version = Table(
    "console_session_version",
    metadata,
    Column("login", String(200), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("changed_at", DateTime(timezone=True), nullable=False),
)


class UserError(ValueError):
    pass


def add(connection: Connection, login: str, password: str, role: str, email: str | None = None) -> int:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; choose one of: {', '.join(ROLES)}")
    if len(password) < 12:
        raise UserError("a console password needs at least 12 characters")
    if get(connection, login) is not None:
        raise UserError(f"a user named {login!r} already exists")
    key = connection.execute(
        insert(console_user).values(
            login=login,
            password_hash=hash_password(password),
            role=role,
            email=email.lower() if email else None,
            disabled=False,
            created_at=utcnow(),
            failed_logins=0,
        )
    ).inserted_primary_key
    assert key is not None
    return int(key[0])


def get(connection: Connection, login: str) -> dict[str, Any] | None:
    row = connection.execute(select(console_user).where(console_user.c.login == login)).first()
    return dict(row._mapping) if row else None


def listing(connection: Connection) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in connection.execute(select(console_user).order_by(console_user.c.login))]


def set_password(connection: Connection, login: str, password: str) -> None:
    if len(password) < 12:
        raise UserError("a console password needs at least 12 characters")
    connection.execute(
        update(console_user).where(console_user.c.login == login).values(password_hash=hash_password(password))
    )


def change(connection: Connection, login: str, **values: Any) -> None:
    """Set a user's role, email or disabled flag; unknown logins and roles are errors."""
    if "role" in values and values["role"] not in ROLES:
        raise UserError(f"unknown role {values['role']!r}; choose one of: {', '.join(ROLES)}")
    if values.get("email"):
        values["email"] = values["email"].lower()
    result = connection.execute(update(console_user).where(console_user.c.login == login).values(**values))
    if result.rowcount == 0:
        raise UserError(f"there is no user named {login!r}; `aup-milter users list` shows them")
    if "disabled" in values:  # disabling ends every session; enabling again revives none
        end_sessions(connection, login)


def reset_password(connection: Connection, login: str, password: str) -> None:
    """A new password, and the lockout cleared: what an admin does for a locked-out person."""
    if get(connection, login) is None:
        raise UserError(f"there is no user named {login!r}; `aup-milter users list` shows them")
    set_password(connection, login, password)
    change(connection, login, failed_logins=0, locked_until=None)


def session_version(connection: Connection, login: str) -> int:
    found = connection.execute(
        select(console_session_version.c.version).where(console_session_version.c.login == login)
    ).scalar()
    return int(found or 0)


def end_sessions(connection: Connection, login: str) -> None:
    """Every session this login has, on every browser, ends now."""
    now = utcnow()
    statement = dialect_insert(connection)(console_session_version).values(login=login, version=1, changed_at=now)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=["login"], set_={"version": console_session_version.c.version + 1, "changed_at": now}
        )
    )


def session_stamp(user: dict[str, Any], version: int) -> str:
    """What a session holds to prove it is still current for `user` (see the module docstring)."""
    facts = f"{user['login']}\0{user['role']}\0{version}"
    return hmac.new(user["password_hash"].encode(), facts.encode(), hashlib.sha256).hexdigest()


def verify(user: dict[str, Any], password: str) -> bool:
    return not user["disabled"] and check_password(user["password_hash"], password)


@functools.cache
def _decoy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Attempt:
    """The outcome of a password check, before it is written down."""

    user: dict[str, Any] | None
    ok: bool
    reason: str  # "ok", "unknown-user", "disabled", "locked", "bad-password"


def is_locked(user: dict[str, Any], now: datetime | None = None) -> bool:
    locked_until = user["locked_until"]
    return locked_until is not None and as_utc(locked_until) > as_utc(now or utcnow())


@dataclass(frozen=True)
class Counted:
    """A guess counted before its password is checked."""

    may_check: bool  # False: the account is locked, the password is not looked at
    locked_now: bool  # this guess was the one that locked the account


def count_attempt(connection: Connection, login: str, now: datetime | None = None) -> Counted:
    """Count one guess at `login`, atomically and before the slow check, so parallel guesses cannot
    all get past the limit: the MAX_FAILED_LOGINS-th guess locks the account, later ones are refused
    unchecked. A right password resets the count (record_success); a lock runs out after LOCKOUT."""
    now = as_utc(now or utcnow())
    counted = connection.execute(
        update(console_user)
        .where(
            console_user.c.login == login,
            or_(console_user.c.locked_until.is_(None), console_user.c.locked_until <= now),
        )
        .values(failed_logins=console_user.c.failed_logins + 1)
    ).rowcount
    if not counted:
        return Counted(may_check=False, locked_now=False)
    failed = connection.execute(select(console_user.c.failed_logins).where(console_user.c.login == login)).scalar_one()
    if failed < MAX_FAILED_LOGINS:
        return Counted(may_check=True, locked_now=False)
    connection.execute(
        update(console_user).where(console_user.c.login == login).values(failed_logins=0, locked_until=now + LOCKOUT)
    )
    return Counted(may_check=True, locked_now=True)


def check_login(connection: Connection, login: str, password: str, counted: Counted) -> Attempt:
    """Check a password without writing; every path pays one argon2 check, so timing names no login.

    Argon2 is slow on purpose: call this outside a write transaction, after count_attempt.
    """
    user = get(connection, login)
    if user is None:
        check_password(_decoy_hash(), password)
        return Attempt(None, False, "unknown-user")
    if not counted.may_check:
        check_password(_decoy_hash(), password)
        return Attempt(user, False, "locked")
    if user["disabled"]:
        check_password(_decoy_hash(), password)
        return Attempt(user, False, "disabled")
    if not check_password(user["password_hash"], password):
        return Attempt(user, False, "bad-password")
    return Attempt(user, True, "ok")


def record_success(connection: Connection, login: str) -> None:
    connection.execute(
        update(console_user).where(console_user.c.login == login).values(failed_logins=0, locked_until=None)
    )


def unlock(connection: Connection, login: str) -> None:
    change(connection, login, failed_logins=0, locked_until=None)
