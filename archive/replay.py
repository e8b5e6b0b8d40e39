"""`aup-milter replay`: a draft configuration's rules over archived mail, compared with what was decided then.

Read-only: each received record's original bytes and envelope are run
through a Pipeline built from the draft; nothing is stored or sent. What
the rules read besides the message is read as it is now: the directory the
draft names, and the database (known senders, chain-letter spread) as it is
today, not as it was when the message came. The authentication rule is not
run again (it would ask DNS today, whose answers have changed since): its
findings recorded then are reused as they were, so SPF, DKIM and DMARC
verdicts never show up as changes. Rules that read those verdicts on the
message (unknown_sender's trusted-From check) fall back to comparing the
envelope sender with From. Runs in one process.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select

from archive.records import archive_record
from milter.config import Config
from milter.intake.pipeline import Pipeline, decide
from milter.kernel.blobstore import BlobStore
from milter.kernel.db import Database, as_utc
from milter.kernel.directory import Directory
from milter.mail.message import message_from_record
from policies.base import Action, Finding, Services

NOTE = (
    "Rules that read the database (known senders, chain-letter spread) read it as it is now; the directory is the "
    "draft's. The authentication rule (SPF, DKIM, DMARC) was not run again: its findings recorded then are reused, and "
    "unknown_sender's trusted-From check compares the envelope sender with From instead. One process."
)
REUSED = ("authentication",)  # rules whose recorded findings stand in for a new run
BATCH = 200


@dataclass(frozen=True)
class Changed:
    record_id: int
    message_id: str
    recorded_at: datetime
    direction: str
    mail_from: str
    subject: str
    old_action: str
    new_action: str
    old_findings: list[dict[str, Any]]
    new_findings: list[dict[str, Any]]

    @property
    def rules(self) -> list[str]:
        """The rules whose enforced findings differ between then and now."""
        return sorted(_enforced(self.old_findings) ^ _enforced(self.new_findings))

    def as_dict(self) -> dict[str, Any]:
        return {
            "record": self.record_id,
            "message_id": self.message_id,
            "recorded_at": self.recorded_at.isoformat(),
            "direction": self.direction,
            "mail_from": self.mail_from,
            "subject": self.subject,
            "old_action": self.old_action,
            "new_action": self.new_action,
            "rules": self.rules,
            "old_findings": self.old_findings,
            "new_findings": self.new_findings,
        }


@dataclass
class Report:
    scanned: int = 0
    total: int = 0
    interrupted: bool = False
    changed: list[Changed] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    @property
    def by_transition(self) -> Counter[str]:
        return Counter(f"{c.old_action} -> {c.new_action}" for c in self.changed)

    @property
    def by_rule(self) -> Counter[str]:
        return Counter(rule for c in self.changed for rule in c.rules)

    def as_dict(self) -> dict[str, Any]:
        return {
            "scanned": self.scanned,
            "total": self.total,
            "interrupted": self.interrupted,
            "changed_count": len(self.changed),
            "by_transition": dict(self.by_transition),
            "by_rule": dict(self.by_rule),
            "notes": self.notes,
            "changed": [c.as_dict() for c in self.changed],
        }


def _enforced(findings: list[dict[str, Any]]) -> set[str]:
    return {
        f"{f['policy']}: {f['action']}" for f in findings if f.get("mode") == "enforce" and f["action"] != "deliver"
    }


def replay(
    database: Database,
    blobs: BlobStore,
    draft: Config,
    directory: Directory,
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    progress: Callable[[int], None] = lambda n: None,
    on_total: Callable[[int], None] = lambda n: None,
) -> Report:
    """Run DRAFT over every received record in [since, until); Ctrl-C returns what was done so far."""
    report = Report(notes=[NOTE])
    policies = dict(draft.policies)
    for name in REUSED:
        policies[name] = policies[name].model_copy(update={"mode": "off"})
    config = Config(path=draft.path, settings=draft.settings, policies=policies)
    conditions = [archive_record.c.kind == "received", archive_record.c.action.is_not(None)]
    if since is not None:
        conditions.append(archive_record.c.recorded_at >= as_utc(since))
    if until is not None:
        conditions.append(archive_record.c.recorded_at < as_utc(until))
    with database.read() as connection:
        ids = list(
            connection.execute(select(archive_record.c.id).where(*conditions).order_by(archive_record.c.id)).scalars()
        )
    report.total = len(ids)
    on_total(report.total)
    with ThreadPoolExecutor(1) as executor:
        pipeline = Pipeline(config, directory, executor=executor, services=Services(database=database))
        loop = asyncio.new_event_loop()
        try:
            for record in _records(database, ids):
                changed = _replay_one(loop, pipeline, blobs, config, record)
                if changed is not None:
                    report.changed.append(changed)
                report.scanned += 1
                progress(1)
        except KeyboardInterrupt:
            report.interrupted = True
        finally:
            loop.close()
    return report


def _records(database: Database, ids: list[int]) -> Iterator[dict[str, Any]]:
    for start in range(0, len(ids), BATCH):
        with database.read() as connection:
            rows = _rows(connection, ids[start : start + BATCH])
        yield from rows


def _rows(connection: Connection, ids: list[int]) -> list[dict[str, Any]]:
    query = select(archive_record).where(archive_record.c.id.in_(ids)).order_by(archive_record.c.id)
    return [dict(row._mapping) for row in connection.execute(query)]


def _replay_one(
    loop: asyncio.AbstractEventLoop, pipeline: Pipeline, blobs: BlobStore, config: Config, record: dict[str, Any]
) -> Changed | None:
    message = message_from_record(record, blobs.get(record["blob_sha256"]), config.settings.limits)
    old_findings = list(record["findings"] or [])
    reused = [_finding(f) for f in old_findings if f["policy"] in REUSED]
    decision = loop.run_until_complete(pipeline.run(message))
    if decision.action != "tempfail":  # a tempfail is the decision itself (a rule broke): keep it as it came
        decision = decide(message, reused + decision.findings)
    new_findings = [f.as_dict() for f in decision.findings]
    if decision.action == record["action"]:
        return None
    return Changed(
        record_id=record["id"],
        message_id=record["message_id"],
        recorded_at=as_utc(record["recorded_at"]),
        direction=record["direction"] or "",
        mail_from=record["mail_from"] or "",
        subject=record["subject"] or "",
        old_action=record["action"],
        new_action=decision.action,
        old_findings=old_findings,
        new_findings=new_findings,
    )


def _finding(recorded: dict[str, Any]) -> Finding:
    recipients = recorded.get("recipients")
    return Finding(
        policy=recorded["policy"],
        action=Action[recorded["action"].upper()],
        reason=recorded.get("reason") or "",
        evidence=tuple(recorded.get("evidence") or ()),
        mode=recorded.get("mode") or "enforce",
        hold_queue=recorded.get("hold_queue"),
        recipients=frozenset(recipients) if recipients is not None else None,
    )


def render(report: Report, draft: object) -> str:
    lines = [
        f"replay of {draft}: {report.scanned} of {report.total} received messages"
        + (" (interrupted: a partial report)" if report.interrupted else ""),
        f"{len(report.changed)} would be decided otherwise",
    ]
    if report.changed:
        lines += ["", "by decision:"] + [f"  {t}: {n}" for t, n in report.by_transition.most_common()]
        lines += ["", "by rule (its enforced findings differ):"] + [
            f"  {r}: {n}" for r, n in report.by_rule.most_common()
        ]
    for changed in report.changed:
        lines += [
            "",
            (
                f"record {changed.record_id} ({changed.message_id}) {changed.recorded_at:%Y-%m-%d %H:%M} UTC "
                f"{changed.direction} from <{changed.mail_from}>: {changed.subject!r}"
            ),
            f"  {changed.old_action} -> {changed.new_action}",
        ]
        for label, findings in (("then", changed.old_findings), ("now", changed.new_findings)):
            lines += [f"  {label}: {f['policy']} [{f['mode']}] asks {f['action']}: {f['reason']}" for f in findings]
    lines += ["", *(f"note: {note}" for note in report.notes)]
    return "\n".join(lines)
