"""What every `aup-milter` subcommand shares: the database, the actor, tables, passwords.

Each subsystem adds its own subcommands in its own `cli.py` with
`add_commands(sub, common)`; `milter/cli.py` lists those modules explicitly.
"""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from milter.kernel.db import Database

if TYPE_CHECKING:
    from milter.config import Config

Command = Callable[[argparse.Namespace, "Config"], int]


def actor() -> str:
    """Who runs the command, for the audit log."""
    return f"cli:{os.environ.get('SUDO_USER') or os.environ.get('USER') or getpass.getuser()}"


def open_database(config: Config, *, background_checkpoints: bool = False) -> Database:
    database = Database(config.settings.storage.database, background_checkpoints=background_checkpoints)
    database.create_schema()
    return database


def print_rows(rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    if not rows:
        print("(none)")
        return
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row.get(c, "")).ljust(widths[c]) for c in columns))


def read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    if not sys.stdin.isatty():  # getpass would echo or hit end of file: say how to pipe a password instead
        raise SystemExit("standard input is not a terminal: pipe the password with --password-stdin")
    first = getpass.getpass("password: ")
    if first != getpass.getpass("again: "):
        raise SystemExit("the passwords differ")
    return first
