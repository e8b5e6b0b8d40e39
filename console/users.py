"""Console users: login, argon2 password hash, one role."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Connection, DateTime, Integer, String, Table, Text, insert, select, update

from milter.db import metadata, utcnow
from milter.passwords import check_password, hash_password

ROLES = ("admin", "department-head", "records-officer", "auditor", "it-staff")

console_user = Table(
    "console_user", metadata,
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


class UserError(ValueError):
    pass


def add(connection: Connection, login: str, password: str, role: str, email: str | None = None) -> int:
    if role not in ROLES:
        raise UserError(f"unknown role {role!r}; choose one of: {', '.join(ROLES)}")
    if len(password) < 12:
        raise UserError("a console password needs at least 12 characters")
    if get(connection, login) is not None:
        raise UserError(f"a user named {login!r} already exists")
    return int(connection.execute(insert(console_user).values(
        login=login, password_hash=hash_password(password), role=role, email=email.lower() if email else None,
        disabled=False, created_at=utcnow(), failed_logins=0,
    )).inserted_primary_key[0])


def get(connection: Connection, login: str) -> dict[str, Any] | None:
    row = connection.execute(select(console_user).where(console_user.c.login == login)).first()
    return dict(row._mapping) if row else None


def listing(connection: Connection) -> list[dict[str, Any]]:
    return [dict(row._mapping) for row in connection.execute(select(console_user).order_by(console_user.c.login))]


def set_password(connection: Connection, login: str, password: str) -> None:
    if len(password) < 12:
        raise UserError("a console password needs at least 12 characters")
    connection.execute(update(console_user).where(console_user.c.login == login).values(password_hash=hash_password(password)))


def verify(user: dict[str, Any], password: str) -> bool:
    return not user["disabled"] and check_password(user["password_hash"], password)
