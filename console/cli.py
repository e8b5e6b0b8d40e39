"""`aup-milter users`: console users are added and managed from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from archive import audit
from console import users
from milter.commands import actor, open_database, print_rows, read_password

if TYPE_CHECKING:
    from milter.config import Config
    from milter.kernel.db import Database


def cmd_users(args: argparse.Namespace, config: Config) -> int:
    database = open_database(config)
    try:
        return _users(args, config, database)
    finally:
        database.dispose()


def _users(args: argparse.Namespace, config: Config, database: Database) -> int:
    if args.users_command == "list":
        with database.read() as connection:
            print_rows(users.listing(connection), ("login", "role", "email", "disabled", "created_at"))
        return 0
    try:
        if getattr(args, "email", None):
            _check_email(config, args.email)
        if args.users_command == "add":
            password = read_password(args)
            with database.write() as connection:
                users.add(connection, args.login, password, args.role, args.email)
                audit.record(connection, actor(), "user.add", args.login, source="cli", details={"role": args.role})
            print(f"added {args.login} ({args.role})")
        elif args.users_command == "unlock":
            with database.write() as connection:
                users.unlock(connection, args.login)
                audit.record(connection, actor(), "user.unlock", args.login, source="cli")
            print(f"{args.login} unlocked: the failed-login count starts again")
        elif args.users_command == "reset-password":
            password = read_password(args)
            with database.write() as connection:
                users.reset_password(connection, args.login, password)
                audit.record(connection, actor(), "user.reset_password", args.login, source="cli")
            print(f"new password set for {args.login}; its lockout is cleared")
        else:
            changes = _changes(args)
            with database.write() as connection:
                users.change(connection, args.login, **changes)
                audit.record(
                    connection, actor(), f"user.{args.users_command}", args.login, source="cli", details=changes
                )
            print(f"{args.login}: {', '.join(f'{key}={value}' for key, value in changes.items())}")
    except users.UserError as exc:
        print(f"users: {exc}", file=sys.stderr)
        return 2
    return 0


def _changes(args: argparse.Namespace) -> dict[str, Any]:
    if args.users_command in ("disable", "enable"):
        return {"disabled": args.users_command == "disable"}
    changes = {key: getattr(args, key) for key in ("role", "email") if getattr(args, key) is not None}
    if args.no_email:
        changes["email"] = None
    if not changes:
        raise users.UserError("nothing to change: give --role, --email or --no-email")
    return changes


def _check_email(config: Config, email: str) -> None:
    """A console login is linked to a real person: department heads see their own department's approvals."""
    from milter.kernel.directory import load_directory

    if load_directory(config.directory_path).person(email) is None:
        raise users.UserError(f"{email} is not a person in the directory ({config.directory_path}); check the spelling")


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("users", parents=[common], help="console users")
    users_sub = parser.add_subparsers(dest="users_command", required=True)
    stdin_help = "read the password from standard input (for scripts: echo PASSWORD | aup-milter users ...)"
    add = users_sub.add_parser("add", parents=[common], help="add a console user")
    add.add_argument("login")
    add.add_argument("--role", required=True, choices=users.ROLES)
    add.add_argument("--email", help="the person's address in the directory (for department heads)")
    add.add_argument("--password-stdin", action="store_true", help=stdin_help)
    change = users_sub.add_parser("set", parents=[common], help="change a user's role or directory address")
    change.add_argument("login")
    change.add_argument("--role", choices=users.ROLES)
    email = change.add_mutually_exclusive_group()
    email.add_argument("--email", help="the person's address in the directory")
    email.add_argument("--no-email", action="store_true", help="unlink the login from the directory")
    for name, text in (
        ("disable", "stop a user signing in (at once, even mid-session)"),
        ("enable", "let a disabled user sign in again"),
        ("unlock", "lift a lockout after failed logins (the password stays)"),
    ):
        users_sub.add_parser(name, parents=[common], help=text).add_argument("login")
    reset = users_sub.add_parser("reset-password", parents=[common], help="set a new password and clear a lockout")
    reset.add_argument("login")
    reset.add_argument("--password-stdin", action="store_true", help=stdin_help)
    users_sub.add_parser("list", parents=[common], help="list console users")
    parser.set_defaults(run=cmd_users)
