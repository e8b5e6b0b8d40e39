"""The `aup-milter` command."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import archive.cli
import console.cli
import quarantine.approvals_cli
import quarantine.quarantine_cli
from milter.commands import Command, actor, open_database, print_rows, read_password
from milter.config import Config, load_config
from milter.kernel.settings import ConfigError

# Subsystems that add their own subcommands, in the order `--help` lists them.
COMMAND_MODULES = (console.cli, archive.cli, quarantine.quarantine_cli, quarantine.approvals_cli)

OUTSIDE_CLIENT = "203.0.113.1"  # TEST-NET-3: an address outside every trusted network


# -- serve ---------------------------------------------------------------


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    from milter.server import serve

    _log_to_stderr(args)
    serve(config, main=True)
    return 0


def cmd_smtp_worker(args: argparse.Namespace, config: Config) -> int:
    from milter.server import serve

    _log_to_stderr(args)
    serve(config, main=False)
    return 0


def _log_to_stderr(args: argparse.Namespace) -> None:
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("mail.log").setLevel(logging.WARNING)  # aiosmtpd's per-command log


# -- check ---------------------------------------------------------------

# `check`'s exit status, so scripts can test a message: 2 is a usage or config error.
CHECK_EXIT = {"deliver": 0, "reject": 1, "hold": 3, "tempfail": 4}


def cmd_check(args: argparse.Namespace, config: Config) -> int:
    from milter.intake.direction import direction_of, is_trusted
    from milter.intake.pipeline import Pipeline
    from milter.kernel import ldapsync
    from milter.kernel.dns import resolver_for
    from milter.mail.message import Envelope, Message, normalise_line_endings
    from policies.base import Services
    from policies.rules import authentication

    directory = ldapsync.load(config.settings.directory, sync_if_missing=False)
    try:
        raw, notes = normalise_line_endings(Path(args.file).read_bytes())
    except OSError as exc:
        print(f"check: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
        return 2
    probe = Message(Envelope("", ()), raw, "inbound", config.settings.limits)
    mail_from = args.mail_from if args.mail_from is not None else next((a for _, a in probe.from_addresses if a), "")
    rcpts = tuple(args.rcpt or [a for name in ("To", "Cc", "Bcc") for _, a in probe.addresses(name) if a])
    if not rcpts:
        print("check: the message names no recipient; give one with --rcpt", file=sys.stderr)
        return 2
    assumed = []
    client_ip = args.client_ip
    if client_ip is None:
        inside = args.auth_user is not None or (mail_from and directory.is_local(mail_from))
        networks = config.settings.smtp.trusted_networks
        client_ip = (
            str(next(iter(networks[0].hosts()), networks[0].network_address)) if inside and networks else OUTSIDE_CLIENT
        )
        assumed.append(
            f"client {client_ip} ({'inside: the sender is local' if inside else 'outside'}); set --client-ip to change"
        )
    envelope = Envelope(
        mail_from=mail_from,
        rcpt_to=rcpts,
        client_ip=client_ip,
        helo="check",
        auth_user=args.auth_user,
        trusted=is_trusted(client_ip, config.settings.smtp.trusted_networks),
    )
    message = Message(envelope, raw, direction_of(envelope, directory), config.settings.limits, notes=notes)
    with ThreadPoolExecutor(config.settings.pipeline.scan_threads) as executor:
        services = Services(resolver=resolver_for(config.settings.dns))  # SPF, DKIM and DMARC ask real DNS
        decision = asyncio.run(Pipeline(config, directory, executor=executor, services=services).run(message))
    checked = authentication.results(message)
    if args.json:
        result = decision.as_dict(message)
        result["problems"] = [str(p) for p in message.problems]
        result["rules"] = {name: settings.status for name, settings in config.policies.items()}
        if checked is not None:
            result["authentication"] = {"header": checked.header_value(), "results": checked.explain()}
        print(json.dumps(result, indent=2))
        return CHECK_EXIT[decision.action]
    print(f"message:   {args.file} ({message.size} bytes)")
    for note in assumed:
        print(f"assumed:   {note}")
    print(
        f"envelope:  from=<{mail_from}> to={', '.join(f'<{r}>' for r in rcpts)} client={client_ip}"
        f"{' (trusted)' if envelope.trusted else ''}{f' auth={args.auth_user}' if args.auth_user else ''}"
    )
    print(f"direction: {message.direction}")
    print(f"decision:  {decision.action}{f' ({decision.hold_queue})' if decision.hold_queue else ''}")
    print(f"reply:     {decision.reply}")
    if decision.error:
        print(f"error:     {decision.error}")
    if checked is not None:
        print(f"authentication ({checked.authserv_id}), with the DNS data each result used:")
        for line in checked.explain():
            print(f"  {line}")
    print("findings:" if decision.findings else "findings:  none")
    for finding in decision.findings:
        target = "" if finding.recipients is None else f" for {', '.join(sorted(finding.recipients))}"
        print(f"  - {finding.policy} [{finding.mode}] asks {finding.action}{target}: {finding.reason}")
        for item in finding.evidence:
            print(f"      {item}")
    if message.problems:
        print("not fully inspected:")
        for problem in message.problems:
            print(f"  - {problem.kind}: {problem}")
    return CHECK_EXIT[decision.action]


# -- config ---------------------------------------------------------------


def cmd_config_check(args: argparse.Namespace, config: Config) -> int:
    from milter.kernel.directory import load_directory

    directory = load_directory(config.directory_path)
    from policies.rules.virus import no_scanner_warning

    modes = "; ".join(f"{name}={settings.status}" for name, settings in config.policies.items())
    print(f"{config.path}: ok")
    print(
        f"{config.directory_path}: ok ({len(set(map(id, directory.people.values())))} people, "
        f"{len(directory.departments)} departments, {len(directory.groups)} groups; domains {', '.join(sorted(directory.domains))})"
    )
    print(f"rules: {modes}")
    warning = no_scanner_warning(config.policies["virus"])
    if warning:
        print(f"WARNING: {warning}", file=sys.stderr)
    return 0


def cmd_config_diff(args: argparse.Namespace, config: Config) -> int:
    from milter import configdiff

    changes = configdiff.diff(load_config(args.old), load_config(args.new))
    show = configdiff.as_json if args.json else configdiff.render
    print(show(changes, args.old, args.new))
    return 1 if changes else 0  # as diff(1) does: 0 the same, 1 different, 2 an error


# -- queue ----------------------------------------------------------------


def cmd_queue(args: argparse.Namespace, config: Config) -> int:
    from archive import audit
    from milter.delivery import queue

    database = open_database(config)
    if args.queue_command == "list":
        with database.read() as connection:
            rows = queue.listing(connection, state=None if args.all else queue.QUEUED, limit=args.limit)
        print_rows(
            rows,
            ("id", "message_id", "origin", "mail_from", "rcpt", "state", "attempts", "next_attempt_at", "last_reply"),
        )
        return 0
    if args.queue_command == "show":
        with database.read() as connection:
            rows = queue.show(connection, args.id)
        if not rows:
            print(f"queue: nothing with id {args.id}", file=sys.stderr)
            return 1
        for row in rows:
            print(json.dumps(row, default=str))
        return 0
    with database.write() as connection:
        ids = [int(i) for i in args.ids if i.isdigit()]
        names = [i for i in args.ids if not i.isdigit()]
        count = queue.retry_now(connection, ids) if (ids or not names) else 0
        for name in names:
            count += queue.retry_now(connection, message_id=name)
        audit.record(
            connection, actor(), "queue.retry", ",".join(args.ids) or "all", source="cli", details={"recipients": count}
        )
    print(f"{count} recipients will be tried again now")
    return 0


# -- smtp-passwd -----------------------------------------------------------


def cmd_smtp_passwd(args: argparse.Namespace, config: Config) -> int:
    from milter.kernel.passwords import hash_password

    print(f"{args.login}:{hash_password(read_password(args))}")
    return 0


# -- parser ---------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--config",
        default=argparse.SUPPRESS,
        help="config file (default: $AUP_MILTER_CONFIG, then config/aup-milter.toml)",
    )
    common.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS)
    parser = argparse.ArgumentParser(
        prog="aup-milter", parents=[common], description="Acceptable-use mail gateway for public agencies."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    sub.add_parser("serve", parents=[common], help="run the gateway").set_defaults(run=cmd_serve)
    sub.add_parser("smtp-worker", parents=[common], help=argparse.SUPPRESS).set_defaults(run=cmd_smtp_worker)

    check = sub.add_parser("check", parents=[common], help="run every rule on one message, without storing or sending")
    check.add_argument("file")
    check.add_argument("--mail-from", help="envelope sender (default: the From address)")
    check.add_argument("--rcpt", action="append", help="envelope recipient, repeatable (default: To, Cc and Bcc)")
    check.add_argument("--client-ip", help="the SMTP client's address (default: inside when the sender is local)")
    check.add_argument("--auth-user", help="the SMTP AUTH login, as if the client had authenticated")
    check.add_argument("--json", action="store_true", help="print one JSON object")
    check.set_defaults(run=cmd_check)

    config = sub.add_parser("config", parents=[common], help="configuration")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    config_sub.add_parser("check", parents=[common], help="validate the config and directory").set_defaults(
        run=cmd_config_check
    )
    config_diff = config_sub.add_parser(
        "diff", parents=[common], help="what a reload from OLD to NEW would change, rule modes first"
    )
    config_diff.add_argument("old", type=Path)
    config_diff.add_argument("new", type=Path)
    config_diff.add_argument("--json", action="store_true", help="print one JSON object")
    config_diff.set_defaults(run=cmd_config_diff)

    queue = sub.add_parser("queue", parents=[common], help="the deliver queue")
    queue_sub = queue.add_subparsers(dest="queue_command", required=True)
    listing = queue_sub.add_parser("list", parents=[common], help="recipients waiting (or all with --all)")
    listing.add_argument("--all", action="store_true")
    listing.add_argument("--limit", type=int, default=200)
    queue_sub.add_parser("show", parents=[common], help="one delivery, by number or message id").add_argument("id")
    queue_sub.add_parser(
        "retry", parents=[common], help="try now (all, or the given deliveries or message ids)"
    ).add_argument("ids", nargs="*")
    queue.set_defaults(run=cmd_queue)

    passwd = sub.add_parser("smtp-passwd", parents=[common], help="print a LOGIN:HASH line for [smtp] auth_passwords")
    passwd.add_argument("login")
    passwd.add_argument("--password-stdin", action="store_true")
    passwd.set_defaults(run=cmd_smtp_passwd)

    for module in COMMAND_MODULES:
        module.add_commands(sub, common)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    args.verbose = getattr(args, "verbose", False)
    try:
        config = load_config(getattr(args, "config", None))
        run: Command = args.run
        return run(args, config)
    except ConfigError as exc:
        for error in exc.every:
            print(f"config error: {error}", file=sys.stderr)
        if exc.also:
            print(f"{len(exc.every)} problems in the config", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
