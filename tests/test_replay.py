"""`aup-milter replay` over an archive of real mail (SpamAssassin ham and spam) written by the gateway's own code.

The archive is built with the running config through the path the relay
takes (Pipeline, then intake/accept.py prepare and record_received); the
expected changes for each draft are worked out here from the records and
the message sizes, not taken from replay's output.
"""

from __future__ import annotations

import asyncio
import json
import tomllib
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from sqlalchemy import select

from archive import records
from milter import cli
from milter.config import load_config
from milter.intake import accept
from milter.intake.pipeline import Pipeline
from milter.kernel.blobstore import BlobStore
from milter.kernel.db import Database
from milter.kernel.directory import load_directory
from milter.mail.message import Envelope, Message, normalise_line_endings
from policies.base import Services
from tests.conftest import write_config
from tests.test_check_corpus import cpython_email_corpus
from tests.test_conduct_spamassassin import corpus

PER_SET = {"spam-1": 80, "spam-2": 80, "easy-ham-1": 60}
RECIPIENT = "lpark@example.gov"
SEVERITY = {"deliver": 0, "hold": 1, "reject": 2}


@pytest.fixture(scope="module")
def archive(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("replay")
    path = write_config(folder, f"sqlite:///{folder / 'aup.db'}", "maildir:/tmp/unused")
    config = load_config(path)
    directory = load_directory(config.directory_path)
    database = Database(config.settings.storage.database)
    database.create_schema()
    blobs = BlobStore(Path(config.settings.storage.blobs))
    with ThreadPoolExecutor(2) as executor:
        pipeline = Pipeline(config, directory, executor=executor, services=Services(database=database))
        for file in corpus_files():
            raw = file.read_bytes()
            if raw.startswith(b"From "):  # the corpus keeps the mbox separator line
                raw = raw.split(b"\n", 1)[1]
            raw, notes = normalise_line_endings(raw)
            probe = Message(Envelope("", ()), raw, "inbound", config.settings.limits)
            sender = next((a for _, a in probe.from_addresses if a), "")
            envelope = Envelope(sender, (RECIPIENT,), client_ip="203.0.113.9", helo="mx.example.net")
            message = Message(envelope, raw, "inbound", config.settings.limits, notes=notes)
            decision = asyncio.run(pipeline.run(message))
            digest = blobs.put(raw)
            received = accept.prepare(message, decision, digest, b"", directory=directory)
            with database.write() as connection:
                accept.record_received(connection, received)
    database.dispose()
    return path


def corpus_files() -> list[Path]:
    data = corpus()
    spamassassin = [file for name, count in PER_SET.items() for file in sorted((data / name).glob("*.txt"))[:count]]
    return spamassassin + cpython_email_corpus()


def received(path: Path) -> list[dict[str, Any]]:
    config = load_config(path)
    database = Database(config.settings.storage.database)
    try:
        with database.read() as connection:
            query = select(records.archive_record).where(records.archive_record.c.kind == "received")
            return [dict(row._mapping) for row in connection.execute(query.order_by(records.archive_record.c.id))]
    finally:
        database.dispose()


def draft(archive: Path, name: str, policies: dict[str, Any]) -> Path:
    settings = tomllib.loads(archive.read_text())
    settings.setdefault("policies", {}).update(policies)
    path = archive.parent / name
    path.write_text(tomli_w.dumps(settings))
    return path


def replay(capsys, path: Path, *flags: str) -> dict[str, Any]:
    code = cli.main(["replay", "--config", str(path), "--json", "--quiet", *flags])
    out, _ = capsys.readouterr()
    assert code == 0
    return json.loads(out)


def test_a_lower_size_limit_lists_every_message_over_it(archive, capsys):
    rows = received(archive)
    assert len(rows) == len(corpus_files())
    limit = sorted(r["size"] for r in rows)[len(rows) // 2]  # about half the corpus is larger
    expected = {r["id"] for r in rows if r["size"] > limit and r["action"] != "reject"}
    assert len(expected) > 20

    result = replay(capsys, draft(archive, "smaller.toml", {"size": {"max_bytes": {"inbound": limit}}}))
    assert (result["scanned"], result["total"], result["interrupted"]) == (len(rows), len(rows), False)
    assert {c["record"] for c in result["changed"]} == expected
    assert result["changed_count"] == len(expected)
    assert sum(result["by_transition"].values()) == len(expected)
    assert all(c["new_action"] == "reject" for c in result["changed"])
    assert result["by_rule"] == {"size: reject": len(expected)}
    assert all(any(f["policy"] == "size" for f in c["new_findings"]) for c in result["changed"])


def test_the_running_config_itself_changes_nothing(archive, capsys):
    result = replay(capsys, archive)
    assert result["scanned"] == len(corpus_files())
    assert result["changed"] == []


def test_turning_a_monitor_rule_to_enforce_lists_what_it_would_have_done(archive, capsys):
    rows = received(archive)
    expected: dict[int, str] = {}
    for row in rows:
        findings = row["findings"] or []
        enforced = [f["action"] for f in findings if f["mode"] == "enforce"]
        asked = [f["action"] for f in findings if f["policy"] == "unknown_sender"]
        worst = max((a for a in enforced + asked if a in SEVERITY), key=SEVERITY.__getitem__, default="deliver")
        if worst != row["action"]:
            expected[row["id"]] = worst
    assert load_config(archive).policies["unknown_sender"].mode == "monitor"
    assert len(expected) >= 3  # spam with attachments from senders nobody here has written to

    result = replay(capsys, draft(archive, "enforce.toml", {"unknown_sender": {"mode": "enforce"}}))
    assert {c["record"]: c["new_action"] for c in result["changed"]} == expected
    assert result["by_rule"] == {"unknown_sender: hold": len(expected)}
    for changed in result["changed"]:
        assert any(f["policy"] == "unknown_sender" and f["mode"] == "monitor" for f in changed["old_findings"])
        assert any(f["policy"] == "unknown_sender" and f["mode"] == "enforce" for f in changed["new_findings"])


def test_the_text_report_names_counts_and_messages(archive, capsys):
    path = draft(archive, "enforce-text.toml", {"unknown_sender": {"mode": "enforce"}})
    code = cli.main(["replay", "--config", str(path), "--quiet"])
    out, _ = capsys.readouterr()
    assert code == 0
    assert f"{len(corpus_files())} of {len(corpus_files())} received messages" in out
    assert "by decision:" in out
    assert "unknown_sender [monitor]" in out
    assert "unknown_sender [enforce]" in out
    assert "authentication" in out.split("note: ")[-1]  # says what it does not run again


def test_ctrl_c_gives_a_partial_report_of_what_was_replayed(archive):
    from archive.replay import replay as run_replay

    path = draft(archive, "interrupted.toml", {"unknown_sender": {"mode": "enforce"}})
    config = load_config(path)
    database = Database(config.settings.storage.database)
    done = []

    def progress(count: int) -> None:
        done.append(count)
        if len(done) == 25:
            raise KeyboardInterrupt  # what Ctrl-C raises in the main thread

    try:
        result = run_replay(
            database,
            BlobStore(Path(config.settings.storage.blobs)),
            config,
            load_directory(config.directory_path),
            progress=progress,
        )
    finally:
        database.dispose()
    assert result.interrupted
    assert result.total == len(corpus_files())
    assert result.scanned == 25  # whole messages only: the interrupt came after the 25th was compared
    first = sorted(r["id"] for r in received(archive))[:25]
    assert all(c.record_id in first for c in result.changed)


def test_since_and_until_pick_the_days_replayed(archive, capsys):
    path = draft(archive, "days.toml", {"unknown_sender": {"mode": "enforce"}})
    today = datetime.now(UTC).date()
    assert replay(capsys, path, "--until", str(today - timedelta(days=1)))["total"] == 0
    assert replay(capsys, path, "--since", str(today + timedelta(days=1)))["total"] == 0
    whole_day = replay(capsys, path, "--since", str(today), "--until", str(today))
    assert whole_day["total"] == len(corpus_files())
