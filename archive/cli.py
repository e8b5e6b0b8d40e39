"""`aup-milter archive`: the permanent archive from the command line.

verify, checkpoint, index, reindex, search, show, import, report, and foia.
Every search, view, report, import and export by a person is written to the
audit log with the person (`cli:USER`) who ran it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import signal
import sys
import threading
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm import tqdm

from archive import (
    audit,
    checkpoint,
    foia,
    importer,
    index,
    query,
    records,
    rendering,
    report,
    search,
)
from milter.commands import actor, open_database, print_rows
from milter.kernel.blobstore import BlobStore
from milter.kernel.db import Database, as_utc
from milter.mail.message import message_from_record

if TYPE_CHECKING:
    from milter.config import Config

log = logging.getLogger(__name__)

SOURCE = "cli"


def _blobs(config: Config) -> BlobStore:
    return BlobStore(Path(config.settings.storage.blobs))


def _audit(database: Database, action: str, target: str | None, **details: Any) -> None:
    with database.write() as connection:
        audit.record(connection, actor(), action, target, source=SOURCE, details=details)


def _json_default(value: Any) -> Any:
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


# -- verify and checkpoints -------------------------------------------------------


def cmd_verify(args: argparse.Namespace, config: Config) -> int:
    database = open_database(config)
    blobs = _blobs(config)
    expected = None
    if args.checkpoint:
        try:
            expected = checkpoint.parse(Path(args.checkpoint).read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, checkpoint.CheckpointError) as exc:
            print(f"archive verify: cannot use {args.checkpoint}: {exc}", file=sys.stderr)
            return 2
    with database.read() as connection:
        total, _ = records.head(connection)
        with tqdm(total=total, unit="rec", desc="verifying", file=sys.stderr, disable=args.quiet) as bar:
            broken = records.verify(connection, blobs, lambda done, _total: bar.update(done - bar.n))
        total, head = records.head(connection)
        audit_broken = audit.verify(connection)
        checkpoint_problems = checkpoint.check(connection, expected) if expected else []
    failed = False
    if broken:
        print(f"archive verify: FAILED at {broken}")
        failed = True
    if audit_broken:
        print(f"archive verify: the audit log is broken at entry {audit_broken[0]}: {audit_broken[1]}")
        failed = True
    for problem in checkpoint_problems:
        print(f"archive verify: checkpoint {args.checkpoint} does not hold: {problem}")
        failed = True
    if failed:
        return 1
    print(f"archive verify: ok, {total} records, chain head {head}")
    if expected:
        print(
            f"checkpoint of {expected.taken_at:%Y-%m-%d %H:%M:%S} UTC holds: record {expected.records} still has hash {expected.archive_head}"
        )
    return 0


def cmd_checkpoint(args: argparse.Namespace, config: Config) -> int:
    database = open_database(config)
    with database.write() as connection:
        if args.checkpoint_command == "show":
            taken = checkpoint.latest(connection)
            if taken is None:
                print(
                    "no checkpoint has been taken yet; `aup-milter archive checkpoint export` takes one",
                    file=sys.stderr,
                )
                return 1
        else:
            taken = checkpoint.take(connection, actor(), config.settings.smtp.hostname, source=SOURCE, reason="export")
    content = taken.to_text()
    if getattr(args, "output", None):
        Path(args.output).write_text(content, encoding="utf-8")
        print(f"checkpoint written to {args.output}: record {taken.records}, head {taken.archive_head}")
    else:
        sys.stdout.write(content)
    return 0


# -- the index ------------------------------------------------------------------


def _run_indexer(config: Config, database: Database, quiet: bool) -> int:
    indexer = index.Indexer(
        database,
        _blobs(config),
        config.settings.limits,
        config.settings.archive.index_max_chars,
        config.settings.archive.index_batch,
    )
    with database.read() as connection:
        pending = index.behind(connection)
    with tqdm(total=pending, unit="rec", desc="indexing", file=sys.stderr, disable=quiet) as bar:
        return indexer.run(progress=bar.update)


FOLLOW_BATCH = (
    5  # documents per write transaction while mail flows: SMTP commits wait for the write lock meanwhile (about 3 ms)
)


def follow(config: Config, database: Database, every: float = 1.0) -> int:
    """Keep the index up to the archive's head until SIGTERM: the gateway runs this as its own,
    lower-priority process, so indexing never takes the SMTP process's time."""
    stop = threading.Event()
    for stopping in (
        signal.SIGTERM,
        signal.SIGINT,
        signal.SIGHUP,
    ):  # SIGHUP: exit 0, the gateway restarts it on the new config
        signal.signal(stopping, lambda *_: stop.set())
    with contextlib.suppress(OSError):
        os.nice(10)
    indexer = index.Indexer(
        database,
        _blobs(config),
        config.settings.limits,
        config.settings.archive.index_max_chars,
        min(config.settings.archive.index_batch, FOLLOW_BATCH),
    )
    while not stop.is_set():
        try:
            looked_at = indexer.run(seconds=60)
            if looked_at:
                log.info("search index: %d archive records indexed", looked_at)
            database.checkpoint()  # between batches, so no batch holds the write lock through one
        except Exception:  # a database hiccup: try again next round
            log.exception("search indexing failed; trying again in %gs", every)
        stop.wait(every)
    return 0


def cmd_index(args: argparse.Namespace, config: Config) -> int:
    following = getattr(args, "follow", False)
    database = open_database(config, background_checkpoints=following)
    if following:
        return follow(config, database)
    if args.archive_command == "reindex":
        with database.write() as connection:
            index.reset(connection)
            audit.record(connection, actor(), "archive.reindex", None, source=SOURCE)
    done = _run_indexer(config, database, args.quiet)
    with database.read() as connection:
        print(
            f"search index: {done} archive records looked at; {index.count_indexed(connection)} messages indexed, "
            f"{index.behind(connection)} records behind"
        )
    return 0


# -- search and show ---------------------------------------------------------------


def cmd_search(args: argparse.Namespace, config: Config) -> int:
    database = open_database(config)
    zone = config.settings.archive.zone
    try:
        with database.read() as connection:
            if args.incomplete:
                after, before = query.period(query.parse(args.query))
                total, rows = search.incomplete(connection, after, before, zone, page=args.page, per_page=args.per_page)
                result = None
            else:
                result = search.search(
                    connection, args.query, page=args.page, per_page=args.per_page, sort=args.sort, zone=zone
                )
    except query.QueryError as exc:
        print(f"archive search: {exc}", file=sys.stderr)
        return 2
    if result is None:
        _audit(database, "archive.search", args.query, incomplete=True, total=total, page=args.page)
        if args.json:
            print(json.dumps({"query": args.query, "incomplete": total, "hits": rows}, default=_json_default, indent=2))
            return 0
        print(f"{total} message(s) in the period have content the index does not hold:")
        for row in rows:
            print(
                f"  record {row['record_id']} ({as_utc(row['message_date']):%Y-%m-%d}) {row['subject'] or '(no subject)'}"
            )
            for problem in row["problems"]:
                print(f"      {problem['kind']}: {problem['where']}: {problem['detail']}")
        return 0
    _audit(database, "archive.search", args.query, total=result.total, page=result.page, sort=result.sort)
    if args.json:
        print(json.dumps(result.as_dict(), default=_json_default, indent=2))
        return 0
    print(f"{result.total} message(s) match; page {result.page} of {result.pages} ({search.SORTS[result.sort]})")
    rows = [
        {
            "record": hit["record_id"],
            "date": f"{as_utc(hit['message_date']):%Y-%m-%d %H:%M}",
            "direction": hit["direction"] or "-",
            "decision": hit["action"] or hit["kind"],
            "from": (hit["header_from"] or "")[:40],
            "subject": (hit["subject"] or "")[:60],
            "att": "yes" if hit["has_attachment"] else "",
        }
        for hit in result.hits
    ]
    if rows:
        print_rows(rows, ("record", "date", "direction", "decision", "from", "subject", "att"))
    for line in completeness_lines(result):
        print(line)
    return 0


def completeness_lines(result: search.Results) -> list[str]:
    lines = [f"note: {note}" for note in result.notes]
    if result.behind:
        lines.append(
            f"note: the index is {result.behind} archive record(s) behind; `aup-milter archive index` catches up"
        )
    period = "in the searched period" if result.after or result.before else "in the archive"
    if result.incomplete:
        lines.append(
            f"completeness: {result.incomplete} message(s) {period} have content that could not be indexed "
            "(encrypted, corrupt, over a cap, or not text); list them with --incomplete"
        )
    else:
        lines.append(f"completeness: every message {period} was fully indexed")
    return lines


def _find_record(connection: Any, ident: str) -> dict[str, Any] | None:
    if ident.isdigit():
        return records.get(connection, int(ident))
    found = [r for r in records.records_for(connection, ident) if r["kind"] in index.INDEXED_KINDS]
    return found[0] if found else None


def cmd_show(args: argparse.Namespace, config: Config) -> int:
    database = open_database(config)
    blobs = _blobs(config)
    with database.read() as connection:
        record = _find_record(connection, args.id)
        versions = records.records_for(connection, record["message_id"]) if record else []
    if record is None:
        print(f"archive show: no archive record or message {args.id!r}", file=sys.stderr)
        return 1
    _audit(database, "archive.view", record["message_id"], record=record["id"], raw=args.raw)
    raw = blobs.get(record["blob_sha256"], verify=True)
    if args.raw:
        sys.stdout.buffer.write(raw)
        return 0
    if args.json:
        print(json.dumps({"record": record, "versions": versions}, default=_json_default, indent=2))
        return 0
    print(
        f"record {record['id']} ({record['kind']}) of message {record['message_id']}, {as_utc(record['recorded_at']):%Y-%m-%d %H:%M:%S} UTC"
    )
    print(
        f"direction {record['direction'] or '-'}, decision {record['action'] or '-'}"
        f"{' (' + record['hold_queue'] + ')' if record['hold_queue'] else ''}, {record['size']} bytes, SHA-256 {record['blob_sha256']}"
    )
    print(
        f"envelope: from <{record['mail_from'] or ''}> to {', '.join(record['rcpt_to'] or [])}; client {record['client_ip'] or '-'}"
    )
    for finding in record["findings"] or []:
        print(
            f"finding: {finding.get('policy')} [{finding.get('mode')}] {finding.get('action')}: {finding.get('reason')}"
        )
    for version in versions:
        print(
            f"version: record {version['id']} {version['kind']} {version['blob_sha256']} (chain hash {version['record_hash'][:16]}…)"
        )
    print()
    print(rendering.rendered_text(message_from_record(record, raw, config.settings.limits)))
    return 0


# -- import and report ---------------------------------------------------------------


def cmd_import(args: argparse.Namespace, config: Config) -> int:
    from milter.kernel.directory import load_directory

    database = open_database(config)
    path = Path(args.path)
    try:
        kind, count, items = importer.entries(path)
    except (importer.ImportError_, OSError) as exc:
        print(f"archive import: {exc}", file=sys.stderr)
        return 2
    try:
        directory = load_directory(config.directory_path)
    except Exception:  # the import does not need the directory; direction is then left unknown
        directory = None
    run = importer.Importer(database, _blobs(config), directory, config.settings.limits, actor())
    print(f"importing {count} entries from {path} ({kind})", file=sys.stderr)
    with tqdm(total=count, unit="msg", desc="importing", file=sys.stderr, disable=args.quiet) as bar:
        result = run.run(items, str(path), progress=bar.update)
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        print(
            f"imported {result.imported}, duplicates {result.duplicates}, failed {result.failed} (of {result.seen} entries)"
        )
        for failure in result.failures:
            print(f"  failed: {failure.source}: {failure.reason}")
        if result.failed > len(result.failures):
            print(f"  ... and {result.failed - len(result.failures)} more failures")
    if not args.no_index:
        _run_indexer(config, database, args.quiet)
    return 1 if result.failed else 0  # scripts notice entries that need a person's look


def _day(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; write it as 2026-01-31") from None


def cmd_report(args: argparse.Namespace, config: Config) -> int:
    database = open_database(config)
    until = args.until or date.today()
    since = args.since or date(until.year, 1, 1)
    try:
        with database.read() as connection:
            result = report.activity(connection, args.user, since, until, config.settings.archive.zone)
    except ValueError as exc:
        print(f"archive report: {exc}", file=sys.stderr)
        return 2
    _audit(
        database, "archive.report", result.address, since=since.isoformat(), until=until.isoformat(), total=result.total
    )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    print(
        f"mail of {result.address} from {since} through {until}: {result.total} messages, {result.sent} sent, {result.received} received"
    )
    print("by direction: " + (", ".join(f"{k} {v}" for k, v in sorted(result.by_direction.items())) or "none"))
    print("decisions: " + (", ".join(f"{k} {v}" for k, v in sorted(result.decisions.items())) or "none"))
    print("\nby day:")
    print_rows(
        [{**row, "day": row["day"].isoformat()} for row in result.by_day],
        ("day", "sent", "received", "inbound", "outbound", "internal", "other"),
    )
    print("\ntop correspondents:")
    print_rows(result.correspondents, ("address", "sent_to", "received_from", "total"))
    print("\nrule findings:")
    print_rows(result.findings, ("rule", "mode", "action", "messages"))
    return 0


# -- FOIA ----------------------------------------------------------------------------


def cmd_foia(args: argparse.Namespace, config: Config) -> int:
    from archive import export

    database = open_database(config)
    settings = config.settings.archive.foia
    who = actor()
    try:
        if args.foia_command == "list":
            with database.read() as connection:
                rows = foia.listing(connection)
            print_rows(rows, ("id", "number", "kind", "status", "received_on", "due_on", "requester", "title"))
            return 0
        if args.foia_command == "create":
            with database.write() as connection:
                request_id = foia.create(
                    connection,
                    who,
                    settings,
                    kind=args.kind,
                    title=args.title,
                    requester=args.requester,
                    received_on=args.received or date.today(),
                    contact=args.contact,
                    number=args.number,
                )
                created = foia.require(connection, request_id)
                audit.record(
                    connection, who, "foia.create", created["number"], source=SOURCE, details={"request": request_id}
                )
            print(f"request {request_id}: {created['number']}, due {created['due_on'] or '-'}")
            return 0
        if args.foia_command == "export":
            package = export.export(
                database,
                _blobs(config),
                config.settings.limits,
                args.request,
                who,
                Path(config.settings.archive.exports),
                config.settings.smtp.hostname,
                audit=lambda connection, package: audit.record(
                    connection,
                    who,
                    "foia.export",
                    str(args.request),
                    source=SOURCE,
                    details={"package": package.zip_path.name, "sha256": package.zip_sha256},
                ),
            )
            print(f"package written: {package.folder} and {package.zip_path}")
            print(
                f"{package.released} released, {package.redacted} redacted, {package.withheld} withheld; zip SHA-256 {package.zip_sha256}"
            )
            return 0
    except (foia.FoiaError, export.ExportError) as exc:
        print(f"archive foia: {exc}", file=sys.stderr)
        return 2
    return 2


def cmd_replay(args: argparse.Namespace, config: Config) -> int:
    """The draft is --config: its [storage] names the archive, as the running file it was copied from does."""
    from archive import replay
    from milter.kernel.directory import load_directory

    database = open_database(config)
    bar = tqdm(unit="msg", disable=args.quiet or not sys.stderr.isatty(), file=sys.stderr)
    since = datetime.combine(args.since, time(), UTC) if args.since else None
    until = datetime.combine(args.until, time(), UTC) + timedelta(days=1) if args.until else None
    with bar:
        result = replay.replay(
            database,
            _blobs(config),
            config,
            load_directory(config.directory_path),
            since=since,
            until=until,
            progress=bar.update,
            on_total=bar.reset,
        )
    _audit(database, "archive.replay", str(config.path), scanned=result.scanned, changed=len(result.changed))
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 130 if result.interrupted else 0
    print(replay.render(result, config.path))
    return 130 if result.interrupted else 0


def add_commands(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:
    replaying = sub.add_parser(
        "replay",
        parents=[common],
        help="run the rules of --config DRAFT.toml over archived mail and list what would be decided otherwise",
    )
    replaying.add_argument("--since", type=date.fromisoformat, help="first day (UTC), YYYY-MM-DD")
    replaying.add_argument("--until", type=date.fromisoformat, help="last day (UTC), YYYY-MM-DD, included")
    replaying.add_argument("--json", action="store_true", help="print one JSON object")
    replaying.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    replaying.set_defaults(run=cmd_replay)
    parser = sub.add_parser("archive", parents=[common], help="the permanent archive: verify, search, import, FOIA")
    archive_sub = parser.add_subparsers(dest="archive_command", required=True)
    quiet = argparse.ArgumentParser(add_help=False)
    quiet.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    verify = archive_sub.add_parser(
        "verify", parents=[common, quiet], help="re-read every record and blob and check the hash chains"
    )
    verify.add_argument(
        "--checkpoint", metavar="FILE", help="also check that the archive still passes through this exported checkpoint"
    )
    verify.set_defaults(run=cmd_verify)

    point = archive_sub.add_parser("checkpoint", parents=[common], help="the archive's chain head, for outside parties")
    point_sub = point.add_subparsers(dest="checkpoint_command", required=True)
    exported = point_sub.add_parser("export", parents=[common], help="take a checkpoint now and write it out")
    exported.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of standard output")
    point_sub.add_parser("show", parents=[common], help="print the latest checkpoint")
    point.set_defaults(run=cmd_checkpoint)

    indexing = archive_sub.add_parser("index", parents=[common, quiet], help="bring the search index up to date now")
    indexing.add_argument(
        "--follow", action="store_true", help="keep it up to date until stopped (the gateway runs this)"
    )
    indexing.set_defaults(run=cmd_index)
    archive_sub.add_parser(
        "reindex", parents=[common, quiet], help="empty the search index and build it again"
    ).set_defaults(run=cmd_index)

    searching = archive_sub.add_parser(
        "search",
        parents=[common],
        help="search the archive (see `archive search --help`)",
        description=query.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    searching.add_argument("query", help='for example: budget from:sortiz after:2026-01-01 "capital plan"')
    searching.add_argument("--page", type=int, default=1)
    searching.add_argument("--per-page", type=int, default=50)
    searching.add_argument("--sort", choices=list(search.SORTS), default="newest")
    searching.add_argument(
        "--incomplete", action="store_true", help="list the messages of the period that could not be fully indexed"
    )
    searching.add_argument("--json", action="store_true")
    searching.set_defaults(run=cmd_search)

    show = archive_sub.add_parser("show", parents=[common], help="one archived message, by record number or message id")
    show.add_argument("id")
    show.add_argument("--json", action="store_true", help="the archive records as JSON")
    show.add_argument("--raw", action="store_true", help="the original bytes, as archived")
    show.set_defaults(run=cmd_show)

    importing = archive_sub.add_parser(
        "import", parents=[common, quiet], help="import an mbox, a Maildir or a folder of .eml files"
    )
    importing.add_argument("path")
    importing.add_argument("--json", action="store_true", help="print the closing report as JSON")
    importing.add_argument("--no-index", action="store_true", help="leave indexing to the gateway's background job")
    importing.set_defaults(run=cmd_import)

    reporting = archive_sub.add_parser("report", parents=[common], help="one person's mail traffic over a period")
    reporting.add_argument("--user", required=True, metavar="ADDRESS")
    reporting.add_argument("--since", type=_day, help="first day (default: 1 January of --until's year)")
    reporting.add_argument("--until", type=_day, help="last day, included (default: today)")
    reporting.add_argument("--json", action="store_true")
    reporting.set_defaults(run=cmd_report)

    requests = archive_sub.add_parser("foia", parents=[common], help="FOIA requests and litigation matters")
    foia_sub = requests.add_subparsers(dest="foia_command", required=True)
    foia_sub.add_parser("list", parents=[common], help="every request, open ones first")
    create = foia_sub.add_parser(
        "create", parents=[common], help="open a request (its due date follows [archive.foia])"
    )
    create.add_argument("--title", required=True)
    create.add_argument("--requester", required=True)
    create.add_argument("--contact")
    create.add_argument("--kind", choices=list(foia.KINDS), default="foia")
    create.add_argument("--number", help="the agency's own number (default: FOIA-YEAR-NNNN)")
    create.add_argument("--received", type=_day, help="the day it was received (default: today)")
    exporting = foia_sub.add_parser("export", parents=[common], help="write the request's package (folder and zip)")
    exporting.add_argument("request", type=int, help="the request's id")
    requests.set_defaults(run=cmd_foia)
