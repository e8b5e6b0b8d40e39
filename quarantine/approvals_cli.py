"""`aup-milter approvals list|show|approve|reject`: the approval queue from the command line.

Whoever runs these on the gateway is a mail administrator: they may decide
any broadcast (audited as cli:USER), or decide for an approver who asked
them to (`--as ADDRESS`: that person's right to decide is checked, and the
approval note names them). Messages are named by their id or hold number.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from archive import audit
from milter.commands import actor, print_rows
from milter.kernel.db import as_utc
from quarantine import approval_tokens, approval_view, approvals, holds

if TYPE_CHECKING:
    from milter.config import Config


def _runtime(config: Config):  # type: ignore[no-untyped-def]
    from milter.runtime import Runtime

    runtime = Runtime(config)
    runtime.database.create_schema()
    return runtime


def _hold(runtime, key: str) -> dict | None:  # type: ignore[no-untyped-def]
    with runtime.database.read() as connection:
        if key.isdigit():
            hold = holds.get(connection, int(key))
            return hold if hold and hold["queue"] == approvals.QUEUE else None
        return approvals.hold_for_message(connection, key.upper())


def cmd_approvals(args: argparse.Namespace, config: Config) -> int:
    runtime = _runtime(config)
    try:
        return COMMANDS[args.approvals_command](args, runtime)
    finally:
        runtime.close()


def _list(args: argparse.Namespace, runtime) -> int:  # type: ignore[no-untyped-def]
    settings = runtime.config.settings.approvals
    with runtime.database.read() as connection:
        if args.all:
            rows = [
                {
                    **hold,
                    "hold": hold["id"],
                    "held_at": f"{as_utc(hold['created_at']):%Y-%m-%d %H:%M}",
                    "decided": f"{hold['decided_by'] or ''} {hold['decision_note'] or ''}".strip(),
                }
                for hold in holds.listing(connection, approvals.QUEUE, state=None, limit=args.limit)
            ]
            print_rows(rows, ("hold", "message_id", "held_at", "mail_from", "subject", "state", "decided"))
            return 0
        items = approvals.pending(connection, runtime.directory, settings, None, admin=True, limit=args.limit)
    print_rows(
        [
            {
                "hold": item.hold["id"],
                "message_id": item.hold["message_id"],
                "held_at": f"{as_utc(item.hold['created_at']):%Y-%m-%d %H:%M}",
                "sender": item.request["sender"],
                "to": item.request["reach"],
                "subject": item.hold["subject"],
                "waiting_for": item.waiting_for,
                "expires": f"{item.schedule.expire:%Y-%m-%d %H:%M}",
            }
            for item in items
        ],
        ("hold", "message_id", "held_at", "sender", "to", "subject", "waiting_for", "expires"),
    )
    return 0


def _show(args: argparse.Namespace, runtime) -> int:  # type: ignore[no-untyped-def]
    hold = _hold(runtime, args.id)
    if hold is None:
        print(f"approvals: no message {args.id} in the approval queue", file=sys.stderr)
        return 1
    settings = runtime.config.settings.approvals
    with runtime.database.read() as connection:
        request = approvals.request_of(connection, hold)
        tokens = approval_tokens.for_message(connection, hold["message_id"])
    message = holds.message_of(runtime, hold)
    summary = approval_view.summarise(message)
    plan = approvals.schedule_of(settings, request["held_at"])
    with runtime.database.write() as connection:  # reading a held message is audited, as in the console
        audit.record(
            connection, actor(), "approval.view", hold["message_id"], source="cli", details={"hold": hold["id"]}
        )
    lines = [
        ("hold", f"{hold['id']} ({hold['state']}{', by ' + hold['decided_by'] if hold['decided_by'] else ''})"),
        ("message", hold["message_id"]),
        ("from", summary.header_from),
        ("sender", f"{request['sender_name']} <{request['sender']}>"),
        ("to", request["reach"]),
        ("subject", summary.subject),
        ("held", f"{as_utc(hold['created_at']):%Y-%m-%d %H:%M} UTC"),
        ("waiting for", approvals.decides_words(runtime.directory, settings, request)),
        ("reminder", f"{plan.remind:%Y-%m-%d %H:%M} UTC" + (" (sent)" if request["reminded_at"] else "")),
        ("escalation", f"{plan.escalate:%Y-%m-%d %H:%M} UTC" + (" (done)" if request["fallback_at"] else "")),
        ("expires", f"{plan.expire:%Y-%m-%d %H:%M} UTC"),
        ("attachments", summary.attachment_words()),
        ("reason", hold["reason"]),
    ]
    if hold["decision_note"]:
        lines.append(("decision note", hold["decision_note"]))
    for label, value in lines:
        print(f"{label + ':':<14} {value}")
    print("links:")
    for token in tokens:
        state = (
            "used"
            if token["used_at"]
            else "revoked"
            if token["revoked_at"]
            else f"valid until {as_utc(token['expires_at']):%Y-%m-%d %H:%M}"
        )
        print(f"  {token['approver']}: issued {as_utc(token['created_at']):%Y-%m-%d %H:%M}, {state}")
    print("text:")
    for line in summary.excerpt.splitlines()[:40]:
        print(f"  | {line}")
    return 0


def _decide(args: argparse.Namespace, runtime) -> int:  # type: ignore[no-untyped-def]
    hold = _hold(runtime, args.id)
    if hold is None:
        print(f"approvals: no message {args.id} in the approval queue", file=sys.stderr)
        return 1
    on_behalf = getattr(args, "as_address", None)
    decider = approvals.Decider(
        actor=actor(),
        address=on_behalf.lower() if on_behalf else None,
        via="cli",
        admin=on_behalf is None,
        source="cli",
    )
    try:
        if args.approvals_command == "approve":
            outcome = approvals.approve(runtime, hold["id"], decider, note=args.note)
        else:
            outcome = approvals.reject(runtime, hold["id"], decider, reason=args.reason)
    except approvals.DecisionRefused as exc:
        print(f"approvals: {exc}", file=sys.stderr)
        return 2
    print(f"hold {outcome.hold_id} (message {outcome.message_id}): {outcome.words}")
    return 0


COMMANDS = {"list": _list, "show": _show, "approve": _decide, "reject": _decide}


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    parser = sub.add_parser("approvals", parents=[common], help="broadcasts waiting for a department head's approval")
    approvals_sub = parser.add_subparsers(dest="approvals_command", required=True)
    listing = approvals_sub.add_parser(
        "list", parents=[common], help="broadcasts waiting for a decision (all with --all)"
    )
    listing.add_argument("--all", action="store_true", help="decided ones too")
    listing.add_argument("--limit", type=int, default=200)
    approvals_sub.add_parser(
        "show", parents=[common], help="one held broadcast: summary, who decides, the clock, its links"
    ).add_argument("id", help="the message id or hold number")
    approve = approvals_sub.add_parser("approve", parents=[common], help="approve: add the note and deliver")
    approve.add_argument("id", help="the message id or hold number")
    approve.add_argument(
        "--as", dest="as_address", metavar="ADDRESS", help="decide for this approver (their right to decide is checked)"
    )
    approve.add_argument("--note", help="a note for the record")
    reject = approvals_sub.add_parser("reject", parents=[common], help="reject: the sender is told the reason")
    reject.add_argument("id", help="the message id or hold number")
    reject.add_argument(
        "--as", dest="as_address", metavar="ADDRESS", help="decide for this approver (their right to decide is checked)"
    )
    reject.add_argument("--reason", required=True, help="why; sent to the sender")
    parser.set_defaults(run=cmd_approvals)
