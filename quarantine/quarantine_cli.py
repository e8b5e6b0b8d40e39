"""`aup-milter quarantine list|show|release|reject` and `aup-milter known-senders rebuild|list|trust`.

Every decision and every trust is written to the audit log as the person who
ran the command (`cli:LOGIN`). Releases reach the deliver queue; the running
gateway delivers them.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import timedelta
from typing import TYPE_CHECKING

from archive import audit
from milter.commands import actor, open_database, print_rows
from milter.kernel.units import parse_duration
from policies.rules import correspondents
from quarantine import holds, it_quarantine

if TYPE_CHECKING:
    from milter.config import Config


def _runtime(config: Config):  # type: ignore[no-untyped-def]
    from milter.runtime import Runtime

    runtime = Runtime(config)
    runtime.database.create_schema()
    return runtime


def cmd_list(args: argparse.Namespace, config: Config) -> int:
    database = open_database(config)
    older = timedelta(seconds=parse_duration(args.older_than)) if args.older_than else None
    with database.read() as connection:
        rows = it_quarantine.pending(
            connection,
            recipient=args.recipient,
            sender=args.sender,
            rule=args.rule,
            older_than=older,
            state=None if args.all else "pending",
            limit=args.limit,
        )
    for row in rows:
        row["age"] = it_quarantine.age(row["created_at"])
        row["rcpt_to"] = ",".join(row["rcpt_to"])
        row["rules"] = ",".join(dict.fromkeys(f["policy"] for f in row["findings"]))
    print_rows(rows, ("id", "age", "state", "mail_from", "rcpt_to", "rules", "subject"))
    return 0


def cmd_show(args: argparse.Namespace, config: Config) -> int:
    runtime = _runtime(config)
    try:
        with runtime.database.read() as connection:
            held = it_quarantine.get(connection, args.id)
        if held is None:
            print(f"quarantine: there is no quarantined message {args.id}", file=sys.stderr)
            return 1
        message = holds.message_of(runtime, held)
        with runtime.database.write() as connection:  # reading quarantined mail is an action worth knowing about
            audit.record(
                connection, actor(), "quarantine.view", held["message_id"], source="cli", details={"hold": args.id}
            )
        print(f"hold:       {held['id']} ({held['state']}, waiting {it_quarantine.age(held['created_at'])})")
        print(f"message:    {held['message_id']}")
        print(f"envelope:   from=<{held['mail_from']}> to={', '.join(held['rcpt_to'])}")
        print(f"From:       {message.header('From') or ''}")
        print(f"Subject:    {message.subject}")
        print("files:" if message.attachments else "files:      none")
        for name in it_quarantine.files_in(message):
            print(f"  - {name}")
        print("findings:")
        for finding in held["findings"]:
            print(f"  - {finding['policy']}: {finding['reason']}")
        if args.body:
            print("\n" + message.body_text[:20_000])
        return 0
    finally:
        runtime.close()


def cmd_release(args: argparse.Namespace, config: Config) -> int:
    runtime = _runtime(config)
    try:
        with runtime.database.write() as connection:
            done = it_quarantine.release(
                connection,
                runtime,
                args.id,
                actor(),
                recipients=args.to,
                trust=args.trust,
                note=args.note,
                source="cli",
            )
    except it_quarantine.QuarantineError as exc:
        print(f"quarantine release: {exc}", file=sys.stderr)
        return 1
    finally:
        runtime.close()
    print(
        f"released to {', '.join(done.recipients)} (delivery {done.delivery_id})"
        + (f"; still held for {', '.join(done.still_held)}" if done.still_held else "")
        + (f"; {done.trusted} is now a known sender for them" if done.trusted else "")
    )
    return 0


def cmd_reject(args: argparse.Namespace, config: Config) -> int:
    runtime = _runtime(config)
    try:
        with runtime.database.write() as connection:
            done = it_quarantine.reject(
                connection, runtime, args.id, actor(), reason=args.reason, recipients=args.to, source="cli"
            )
    except it_quarantine.QuarantineError as exc:
        print(f"quarantine reject: {exc}", file=sys.stderr)
        return 1
    finally:
        runtime.close()
    print(
        f"rejected for {', '.join(done.recipients)}; each was told why"
        + (f"; still held for {', '.join(done.still_held)}" if done.still_held else "")
    )
    return 0


def cmd_known_rebuild(args: argparse.Namespace, config: Config) -> int:
    from milter.kernel.directory import load_directory

    directory = load_directory(config.directory_path)
    database = open_database(config)

    def progress(read: int) -> None:
        print(f"\rread {read} outbound archive records", end="", file=sys.stderr, flush=True)

    with database.write() as connection:
        before = correspondents.count(connection)
        read, pairs = correspondents.rebuild(connection, directory, progress=progress)
        after = correspondents.count(connection)
        audit.record(
            connection,
            actor(),
            "known_senders.rebuild",
            None,
            source="cli",
            details={"records": read, "pairs": pairs, "new": after - before},
        )
    print(file=sys.stderr)
    print(
        f"known senders rebuilt from {read} outbound archive records: {pairs} pairs seen, {after - before} new, {after} in all"
    )
    return 0


def cmd_known_list(args: argparse.Namespace, config: Config) -> int:
    database = open_database(config)
    with database.read() as connection:
        rows = correspondents.listing(connection, recipient=args.recipient, sender=args.sender, limit=args.limit)
    if args.json:
        print(json.dumps(rows, default=str, indent=2))
        return 0
    print_rows(rows, ("recipient", "sender", "source", "messages", "first_seen", "last_seen", "added_by"))
    return 0


def cmd_known_trust(args: argparse.Namespace, config: Config) -> int:
    from milter.kernel.directory import load_directory

    directory = load_directory(config.directory_path)
    if not directory.is_local(args.recipient):
        print(
            f"known-senders trust: {args.recipient} is not in the agency's domains ({', '.join(sorted(directory.domains))})",
            file=sys.stderr,
        )
        return 2
    if "@" not in args.sender:
        print(
            f"known-senders trust: {args.sender!r} is not an address; for a whole domain use "
            "[policies.unknown_sender] partners or departments",
            file=sys.stderr,
        )
        return 2
    person = correspondents.person_key(directory, args.recipient)
    database = open_database(config)
    with database.write() as connection:
        correspondents.trust(connection, [person], args.sender, actor())
        audit.record(
            connection,
            actor(),
            "known_senders.trust",
            args.sender.lower(),
            source="cli",
            details={"recipients": [person], "note": args.note},
        )
    print(f"{args.sender.lower()} is now a known sender for {person}")
    return 0


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser(
        "quarantine", parents=[common], help="the IT quarantine: files from unknown senders, uninspectable archives"
    )
    q = parser.add_subparsers(dest="quarantine_command", required=True)
    listing = q.add_parser("list", parents=[common], help="messages waiting for IT, oldest first")
    listing.add_argument("--recipient", help="held for this recipient (part of the address)")
    listing.add_argument("--sender", help="from this envelope sender (part of the address)")
    listing.add_argument("--rule", help="held by this rule: unknown_sender, software, virus, inspection")
    listing.add_argument("--older-than", help='waiting longer than this, such as "2d"')
    listing.add_argument("--all", action="store_true", help="decided ones too")
    listing.add_argument("--limit", type=int, default=200)
    listing.set_defaults(run=cmd_list)
    show = q.add_parser("show", parents=[common], help="one quarantined message: envelope, files, findings")
    show.add_argument("id", type=int)
    show.add_argument("--body", action="store_true", help="print the message text too")
    show.set_defaults(run=cmd_show)
    release = q.add_parser("release", parents=[common], help="deliver to all held recipients, or those given with --to")
    release.add_argument("id", type=int)
    release.add_argument(
        "--to", action="append", help="release to this recipient only (repeatable); the others stay held"
    )
    release.add_argument(
        "--trust", action="store_true", help="and make the sender known to these recipients from now on"
    )
    release.add_argument("--note", help="why, for the audit log")
    release.set_defaults(run=cmd_release)
    reject = q.add_parser(
        "reject", parents=[common], help="do not deliver; the recipients get a notice with the reason"
    )
    reject.add_argument("id", type=int)
    reject.add_argument("--reason", required=True, help="told to the recipients")
    reject.add_argument(
        "--to", action="append", help="reject for this recipient only (repeatable); the others stay held"
    )
    reject.set_defaults(run=cmd_reject)

    known = sub.add_parser(
        "known-senders", parents=[common], help="who knows whom: the senders each person has written to"
    )
    k = known.add_subparsers(dest="known_command", required=True)
    k.add_parser(
        "rebuild", parents=[common], help="learn every pair again from the archive's outbound mail"
    ).set_defaults(run=cmd_known_rebuild)
    klist = k.add_parser("list", parents=[common], help="known senders, by recipient")
    klist.add_argument("--recipient", help="known to this person")
    klist.add_argument("--sender", help="addresses containing this")
    klist.add_argument("--limit", type=int, default=200)
    klist.add_argument("--json", action="store_true")
    klist.set_defaults(run=cmd_known_list)
    trust = k.add_parser("trust", parents=[common], help="make SENDER known to RECIPIENT")
    trust.add_argument("recipient")
    trust.add_argument("sender")
    trust.add_argument("--note", help="why, for the audit log")
    trust.set_defaults(run=cmd_known_trust)
