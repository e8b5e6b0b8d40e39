"""Archive search on SQLite FTS5 and real PostgreSQL: mail sent over SMTP, found by every field and by attachment text."""

from __future__ import annotations

import json
import smtplib
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage

import pytest

from archive import index, query, records, search
from archive.importer import Importer
from milter import cli
from milter.kernel.blobstore import BlobStore
from milter.mail.message import new_message_id
from milter.mail.settings import LimitSettings
from tests.conftest import TRUSTED, write_config
from tests.support import dlp_files

# -- the query language (no database) -----------------------------------------------


def test_a_query_parses_into_one_tree_with_and_binding_tighter_than_or():
    tree = query.parse('budget "capital plan" OR from:sortiz@example.gov -rule:language')
    assert tree == query.Or(
        (
            query.And((query.Text(None, ("budget",)), query.Text(None, ("capital", "plan")))),
            query.And((query.Text("from", ("sortiz", "example", "gov")), query.Not(query.Filter("rule", "language")))),
        )
    )
    assert query.parse("  ") is None
    assert query.parse("NOT (a OR b) AND budg*") == query.And(
        (
            query.Not(query.Or((query.Text(None, ("a",)), query.Text(None, ("b",))))),
            query.Text(None, ("budg",), prefix=True),
        )
    )
    assert query.parse("Résumé") == query.Text(None, ("resume",))
    assert query.parse("after:2026-01-31 has:attachments direction:INBOUND") == query.And(
        (
            query.Filter("after", date(2026, 1, 31)),
            query.Filter("has", "attachment"),
            query.Filter("direction", "inbound"),
        )
    )
    assert query.parse("not and or") == query.And(
        (query.Text(None, ("not",)), query.Text(None, ("and",)), query.Text(None, ("or",)))
    )


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("form:alice", "there is no field form:. Did you mean from:?"),
        ("Re: budget", 'put it in quotes: "re:'),
        ('"open phrase', "a quote is not closed"),
        ("(budget OR lunch", "a parenthesis is not closed"),
        ("budget)", "a closing parenthesis has no opening one"),
        ("budget OR", "OR needs something to search for after it"),
        ("AND budget", "AND needs something to search for before it"),
        ("NOT", "NOT needs something to leave out after it"),
        ("after:yesterday", "after:yesterday is not a date; write it as after:2026-01-31"),
        ("before:2026-02-30", "is not a date"),
        ("direction:sideways", "use direction:inbound or direction:outbound or direction:internal"),
        ("has:pictures", "use has:attachment"),
        ("from:", "from: needs a value"),
        ("&&", "has no letters or digits to search for"),
        ("()", "empty parentheses"),
    ],
)
def test_a_bad_query_gets_a_clear_answer(text, says):
    with pytest.raises(query.QueryError) as error:
        query.parse(text)
    assert says in str(error.value)


# -- over SMTP, on both databases ----------------------------------------------------


def send(port: int, message: EmailMessage, *, source: str = TRUSTED) -> None:
    with smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=60) as client:
        client.send_message(message)


def mail(
    sender: str,
    to: str,
    subject: str,
    body: str,
    *,
    cc: str | None = None,
    attachment: tuple[str, bytes, str] | None = None,
) -> EmailMessage:
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = sender, to, subject
    if cc:
        message["Cc"] = cc
    message.set_content(body)
    if attachment:
        name, data, mime = attachment
        maintype, subtype = mime.split("/")
        message.add_attachment(data, maintype=maintype, subtype=subtype, filename=name)
    return message


DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


@pytest.fixture
def searched(make_gateway):
    """A gateway that received five messages over SMTP, indexed."""
    gateway = make_gateway()
    port = gateway.port
    send(
        port,
        mail(
            "Sam Ortiz <sortiz@example.gov>",
            "dwhitfield@example.gov",
            "Capital plan budget",
            "The capital plan for the north reservoir is attached.",
            cc="lpark@example.gov",
            attachment=("reservoir-plan.docx", dlp_files.docx(["Zephyrine reservoir spillway costs"]), DOCX),
        ),
    )
    send(
        port,
        mail(
            "Lee Park <lpark@example.gov>",
            "sortiz@example.gov",
            "Quarterly numbers",
            "See the ledger.",
            attachment=("ledger-2026.pdf", dlp_files.pdf(["quarterly xylophone ledger totals"]), "application/pdf"),
        ),
    )
    send(
        port,
        mail(
            "Vendor <sales@outside.example.org>",
            "dwhitfield@example.gov",
            "Paving offer",
            "We pave roads cheaply, capital included.",
        ),
        source="127.0.0.1",
    )
    send(port, mail("sortiz@example.gov", "cnguyen@example.gov", "Printer again", "This shit printer is jammed again."))
    send(port, mail("dwhitfield@example.gov", "sortiz@example.gov", "Lunch", "Lunch on Friday?"))
    index.indexer_for(gateway.runtime).run()
    return gateway


def subjects(gateway, text: str, **options) -> list[str]:
    with gateway.runtime.database.read() as connection:
        result = search.search(connection, text, per_page=100, **options)
    assert result.total == len(result.hits)
    return sorted(hit["subject"] for hit in result.hits)


def test_messages_sent_over_smtp_are_found_by_every_field(searched):
    today = datetime.now(UTC).date()
    cases = {
        "from:sortiz@example.gov": ["Capital plan budget", "Printer again"],
        'from:"Lee Park"': ["Quarterly numbers"],
        "from:outside.example.org": ["Paving offer"],
        "to:sortiz@example.gov": ["Lunch", "Quarterly numbers"],
        "cc:lpark": ["Capital plan budget"],
        "subject:capital": ["Capital plan budget"],  # "capital" is in the paving offer's body, not its subject
        "capital": ["Capital plan budget", "Paving offer"],
        "filename:ledger-2026.pdf": ["Quarterly numbers"],
        "filename:reservoir*": ["Capital plan budget"],
        "direction:inbound": ["Paving offer"],
        "direction:internal": ["Capital plan budget", "Lunch", "Printer again", "Quarterly numbers"],
        "rule:language": ["Printer again"],
        "has:attachment": ["Capital plan budget", "Quarterly numbers"],
        f"after:{today.isoformat()}": [
            "Capital plan budget",
            "Lunch",
            "Paving offer",
            "Printer again",
            "Quarterly numbers",
        ],
        f"before:{today.isoformat()}": [],
        f"before:{(today + timedelta(days=1)).isoformat()} from:dwhitfield": ["Lunch"],
        "zephyrine": ["Capital plan budget"],  # only inside the docx attachment
        '"xylophone ledger"': ["Quarterly numbers"],  # only inside the pdf attachment
        '"ledger xylophone"': [],  # a phrase keeps its order
    }
    for text, expected in cases.items():
        assert subjects(searched, text) == expected, text


def test_boolean_queries(searched):
    cases = {
        "capital OR lunch": ["Capital plan budget", "Lunch", "Paving offer"],
        "capital AND NOT direction:inbound": ["Capital plan budget"],
        "capital -paving": ["Capital plan budget"],
        "NOT capital": ["Lunch", "Printer again", "Quarterly numbers"],
        "(zephyrine OR xylophone) from:lpark": ["Quarterly numbers"],
        "(lunch OR printer) AND NOT (from:dwhitfield)": ["Printer again"],
        "has:attachment OR rule:language": ["Capital plan budget", "Printer again", "Quarterly numbers"],
        "NOT (has:attachment OR direction:inbound) NOT lunch": ["Printer again"],
        "": ["Capital plan budget", "Lunch", "Paving offer", "Printer again", "Quarterly numbers"],
    }
    for text, expected in cases.items():
        assert subjects(searched, text) == expected, text


def test_results_are_sorted_by_date_either_way_and_by_relevance(searched):
    with searched.runtime.database.read() as connection:
        newest = search.search(connection, "", sort="newest").hits
        oldest = search.search(connection, "", sort="oldest").hits
        ranked = search.search(connection, "capital", sort="relevance")
    assert [h["subject"] for h in newest] == [h["subject"] for h in oldest][::-1]
    assert newest[0]["subject"] == "Lunch"
    dates = [h["message_date"] for h in newest]
    assert dates == sorted(dates, reverse=True)
    # "capital" in the subject and body outranks "capital" once in a body
    assert [h["subject"] for h in ranked.hits] == ["Capital plan budget", "Paving offer"]


def test_paging_past_one_thousand_results_has_no_cap(tmp_path, database_url):
    path = write_config(tmp_path / "gw", database_url, "maildir:/tmp/unused")
    config_db = __import__("milter.kernel.db", fromlist=["Database"]).Database(database_url)
    config_db.create_schema()
    blobs = BlobStore(tmp_path / "gw" / "blobs")
    total = 2_345  # past search.WALK_DATES_ABOVE too, so SQLite's date-index paging is covered
    items = [
        (
            f"m{n}",
            lambda n=n: (
                f"From: clerk{n % 7}@example.gov\r\nTo: archive@example.gov\r\nSubject: minutes {n}\r\n"
                f"Date: Mon, 2 Mar 2026 {n // 60 % 24:02d}:{n % 60:02d}:00 +0000\r\n\r\nMeeting minutes number {n}.\r\n"
            ).encode(),
        )
        for n in range(total)
    ]
    report = Importer(config_db, blobs, None, LimitSettings(), "test").run(items, "generated")
    assert (report.imported, report.failed) == (total, 0)
    index.Indexer(config_db, blobs, LimitSettings(), batch=500).run()
    seen: list[int] = []
    with config_db.read() as connection:
        first = search.search(connection, "minutes", per_page=50)
        assert (first.total, first.pages) == (total, 47)
        for page in range(1, 48):
            result = search.search(connection, "minutes", page=page, per_page=50, sort="oldest")
            assert result.total == total
            seen += [hit["record_id"] for hit in result.hits]
            dates = [hit["message_date"] for hit in result.hits]
            assert dates == sorted(dates)
        deep = search.search(connection, "meeting", page=21, per_page=50)
    assert len(seen) == len(set(seen)) == total  # every message once, none capped
    assert len(deep.hits) == 50 and deep.first == 1001
    # the CLI pages the same way, and says it is a search in the audit log
    assert cli.main(["--config", str(path), "archive", "search", "minutes", "--page", "47", "--json"]) == 0
    config_db.dispose()


def test_the_search_says_when_the_index_is_behind(tmp_path, database_url):
    database = __import__("milter.kernel.db", fromlist=["Database"]).Database(database_url)
    database.create_schema()
    blobs = BlobStore(tmp_path / "blobs")
    raw = b"From: a@example.gov\r\nTo: b@example.gov\r\nSubject: pending\r\n\r\nnot yet indexed\r\n"
    with database.write() as connection:
        records.append(
            connection,
            message_id=new_message_id(),
            kind="received",
            blob_sha256=blobs.put(raw),
            size=len(raw),
            direction="internal",
            action="deliver",
            findings=[],
        )
    with database.read() as connection:
        before = search.search(connection, "pending")
    assert (before.total, before.behind) == (0, 1)
    index.Indexer(database, blobs, LimitSettings()).run()
    with database.read() as connection:
        after = search.search(connection, "pending")
    assert (after.total, after.behind) == (1, 0)
    database.dispose()


def test_cli_search_and_show_are_audited(searched, capsys):
    path = searched.config.path
    assert cli.main(["--config", str(path), "archive", "search", "zephyrine", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["total"] == 1 and result["hits"][0]["subject"] == "Capital plan budget"
    record_id = result["hits"][0]["record_id"]
    assert cli.main(["--config", str(path), "archive", "show", str(record_id)]) == 0
    shown = capsys.readouterr().out
    assert "Subject: Capital plan budget" in shown and "Zephyrine reservoir spillway costs" in shown
    assert cli.main(["--config", str(path), "archive", "search", "form:x"]) == 2
    assert "there is no field form:" in capsys.readouterr().err
    from archive import audit

    with searched.runtime.database.read() as connection:
        logged = [(e["action"], e["target"]) for e in audit.entries(connection, limit=10)]
    assert ("archive.view", result["hits"][0]["message_id"]) in logged
    assert ("archive.search", "zephyrine") in logged


def test_held_and_rejected_mail_is_archived_and_the_background_job_indexes_it(make_gateway):
    """Every decision is in the archive; the gateway's own background indexer process indexes it, with no command run."""
    from tests.support.servers import wait_until

    gateway = make_gateway({"policies": {"size": {"max_bytes": {"internal": "4KiB"}}}, "archive": {"indexer": True}})
    send(
        gateway.port,
        mail("sortiz@example.gov", "dwhitfield@example.gov", "Threat", "I will hurt you if the report is late."),
    )
    with pytest.raises(smtplib.SMTPDataError) as refused:
        send(
            gateway.port,
            mail("sortiz@example.gov", "dwhitfield@example.gov", "Huge", " ".join(f"row{n}" for n in range(1500))),
        )
    assert 500 <= refused.value.smtp_code < 600

    def found() -> list[str]:
        return subjects(gateway, "decision:hold OR decision:reject")

    assert wait_until(lambda: found() == ["Huge", "Threat"], timeout=30, what="the index job to index both messages")
    assert subjects(gateway, "decision:reject") == ["Huge"]
    assert subjects(gateway, "decision:hold rule:language") == ["Threat"]


def test_the_activity_report_of_one_user(searched, capsys):
    path = searched.config.path
    today = datetime.now(UTC).date().isoformat()
    assert (
        cli.main(
            [
                "--config",
                str(path),
                "archive",
                "report",
                "--user",
                "SOrtiz@example.gov",
                "--since",
                today,
                "--until",
                today,
                "--json",
            ]
        )
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    # sent: Capital plan budget, Printer again; received: Quarterly numbers, Lunch
    assert (result["total"], result["sent"], result["received"]) == (4, 2, 2)
    assert result["by_direction"] == {"internal": 4}
    assert result["by_day"] == [
        {"day": today, "inbound": 0, "outbound": 0, "internal": 4, "other": 0, "sent": 2, "received": 2}
    ]
    people = {row["address"]: (row["sent_to"], row["received_from"]) for row in result["correspondents"]}
    assert people == {"dwhitfield@example.gov": (1, 1), "lpark@example.gov": (1, 1), "cnguyen@example.gov": (1, 0)}
    assert [(f["rule"], f["messages"]) for f in result["findings"]] == [
        ("language", 1)
    ]  # the profanity in "Printer again"
    yesterday = (datetime.now(UTC).date() - timedelta(days=1)).isoformat()
    assert (
        cli.main(
            [
                "--config",
                str(path),
                "archive",
                "report",
                "--user",
                "sortiz@example.gov",
                "--since",
                today,
                "--until",
                yesterday,
            ]
        )
        == 2
    )
    assert "ends" in capsys.readouterr().err
