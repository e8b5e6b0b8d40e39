"""Who is known to whom: learned from the archive (`known-senders rebuild`), trusted by IT, listed; all audited.

A new installation learns its correspondents from the archive it already
has, so it does not quarantine every existing partner. On SQLite and on the
real PostgreSQL server.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import delete, select

from archive import audit, records
from milter import cli
from milter.commands import open_database
from milter.config import load_config
from policies.rules import correspondents
from tests.conftest import write_config


def archived(
    connection,
    *,
    direction: str,
    action: str,
    mail_from: str,
    rcpt_to: list[str],
    header_from: str,
    kind: str = "received",
) -> None:
    records.append(
        connection,
        message_id=f"M{records.head(connection)[0] + 1}",
        kind=kind,
        blob_sha256="0" * 64,
        size=1,
        direction=direction,
        action=action,
        mail_from=mail_from,
        rcpt_to=rcpt_to,
        header_from=header_from,
        recorded_at=datetime(2025, 3, 1, tzinfo=UTC),
    )


def pairs(connection) -> list[tuple[str, str, str]]:
    table = correspondents.known_sender
    return [
        tuple(row)
        for row in connection.execute(
            select(table.c.recipient, table.c.sender, table.c.source).order_by(table.c.recipient, table.c.sender)
        )
    ]


def test_rebuild_learns_every_outbound_pair_from_the_archive_and_only_those(
    tmp_path, database_url, capsys, monkeypatch
):
    monkeypatch.setenv("USER", "chris")
    monkeypatch.delenv("SUDO_USER", raising=False)
    path = write_config(tmp_path, database_url, "maildir:/nonexistent")
    database = open_database(load_config(path))
    with database.write() as connection:
        archived(
            connection,
            direction="outbound",
            action="deliver",
            mail_from="sortiz@example.gov",
            rcpt_to=["Partner@County.example.org", "dwhitfield@example.gov"],
            header_from="Sam Ortiz <sortiz@example.gov>",
        )
        archived(
            connection,
            direction="outbound",
            action="hold",
            mail_from="postmaster@example.gov",
            rcpt_to=["auditor@state.example.us"],
            header_from="Dana Whitfield <dwhitfield@example.gov>",
        )
        archived(
            connection,
            direction="outbound",
            action="reject",
            mail_from="lpark@example.gov",
            rcpt_to=["never@reached.example.net"],
            header_from="lpark@example.gov",
        )  # refused: reached no one
        archived(
            connection,
            direction="inbound",
            action="deliver",
            mail_from="stranger@outside.example.net",
            rcpt_to=["sortiz@example.gov"],
            header_from="stranger@outside.example.net",
        )  # outsiders teach nothing
        archived(
            connection,
            direction="outbound",
            action="deliver",
            mail_from="jdoe@example.gov",
            rcpt_to=["old.partner@archive.example.org"],
            header_from="jdoe@example.gov",
            kind="imported",
        )
    expected = [
        ("dwhitfield@example.gov", "auditor@state.example.us", "archive"),
        ("jdoe@example.gov", "old.partner@archive.example.org", "archive"),
        ("postmaster@example.gov", "auditor@state.example.us", "archive"),
        ("sortiz@example.gov", "partner@county.example.org", "archive"),
    ]

    assert cli.main(["--config", str(path), "known-senders", "rebuild"]) == 0
    assert "from 3 outbound archive records: 4 pairs seen, 4 new, 4 in all" in capsys.readouterr().out
    with database.read() as connection:
        assert pairs(connection) == expected
    assert cli.main(["--config", str(path), "known-senders", "rebuild"]) == 0  # again: nothing changes
    assert "4 pairs seen, 0 new, 4 in all" in capsys.readouterr().out
    with database.read() as connection:
        assert pairs(connection) == expected
        [entry, _] = [e for e in audit.entries(connection) if e["action"] == "known_senders.rebuild"]
    assert (entry["actor"], entry["details"]) == ("cli:chris", {"records": 3, "pairs": 4, "new": 0})
    database.dispose()


def test_trust_and_list_from_the_cli(tmp_path, database_url, capsys, monkeypatch):
    monkeypatch.setenv("USER", "chris")
    path = write_config(tmp_path, database_url, "maildir:/nonexistent")
    config = ["--config", str(path)]
    assert (
        cli.main(
            [
                *config,
                "known-senders",
                "trust",
                "SOrtiz@example.gov",
                "Billing@Vendor.example.com",
                "--note",
                "ticket 41",
            ]
        )
        == 0
    )
    assert capsys.readouterr().out.strip() == "billing@vendor.example.com is now a known sender for sortiz@example.gov"
    assert cli.main([*config, "known-senders", "trust", "someone@elsewhere.example.net", "x@y.example.com"]) == 2
    assert "is not in the agency's domains" in capsys.readouterr().err
    assert cli.main([*config, "known-senders", "trust", "sortiz@example.gov", "vendor.example.com"]) == 2
    assert "partners or departments" in capsys.readouterr().err
    assert cli.main([*config, "known-senders", "list", "--recipient", "sortiz@example.gov"]) == 0
    out = capsys.readouterr().out
    assert "billing@vendor.example.com" in out and "trusted" in out and "cli:chris" in out


def test_learning_counts_messages_and_keeps_the_latest_time(tmp_path, database_url):
    path = write_config(tmp_path, database_url, "maildir:/nonexistent")
    database = open_database(load_config(path))
    first, later = datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 6, 1, tzinfo=UTC)
    with database.write() as connection:
        correspondents.learn(connection, [("sortiz@example.gov", "a@b.example.org")], when=later)
        correspondents.learn(connection, [("sortiz@example.gov", "a@b.example.org")], when=first)
    with database.read() as connection:
        [row] = correspondents.listing(connection)
        assert correspondents.known_to(connection, "A@B.example.org", ["sortiz@example.gov", "lpark@example.gov"]) == {
            "sortiz@example.gov"
        }
    assert (
        row["messages"] == 2
        and row["first_seen"].replace(tzinfo=UTC) == later
        and row["last_seen"].replace(tzinfo=UTC) == later
    )
    with database.write() as connection:  # derived data: it may be emptied and rebuilt at any time
        connection.execute(delete(correspondents.known_sender))
    database.dispose()
