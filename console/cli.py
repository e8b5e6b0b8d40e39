"""`aup-milter users`: console users are added from the command line."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from archive import audit
from console import users
from milter.commands import actor, open_database, print_rows, read_password

if TYPE_CHECKING:
    from milter.config import Config


def cmd_users(args: argparse.Namespace, config: Config) -> int:
    database = open_database(config)
    if args.users_command == "list":
        with database.read() as connection:
            print_rows(users.listing(connection), ("login", "role", "email", "disabled", "created_at"))
        return 0
    password = read_password(args)
    try:
        with database.write() as connection:
            users.add(connection, args.login, password, args.role, args.email)
            audit.record(connection, actor(), "user.add", args.login, source="cli", details={"role": args.role})
    except users.UserError as exc:
        print(f"users: {exc}", file=sys.stderr)
        return 2
    print(f"added {args.login} ({args.role})")
    return 0


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("users", parents=[common], help="console users")
    users_sub = parser.add_subparsers(dest="users_command", required=True)
    add = users_sub.add_parser("add", parents=[common], help="add a console user")
    add.add_argument("login")
    add.add_argument("--role", required=True, choices=users.ROLES)
    add.add_argument("--email", help="the person's address in the directory (for department heads)")
    add.add_argument("--password-stdin", action="store_true", help="read the password from standard input")
    users_sub.add_parser("list", parents=[common], help="list console users")
    parser.set_defaults(run=cmd_users)
