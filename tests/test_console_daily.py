"""Daily console work through Starlette's TestClient: role home pages, bulk decisions, decided history, CSV.

The real console app on the running gateway's runtime and database (SQLite
and PostgreSQL); broadcasts and quarantined files arrive over real SMTP.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

import pytest
from sqlalchemy import insert, update

from archive import foia, index
from archive.index import archive_finding
from console.worklist import day_words
from milter.kernel.db import utcnow
from quarantine import approvals, holds, it_quarantine
from tests.support import approval_support
from tests.support.quarantine_helpers import PDF, STRANGER, mail, pdf
from tests.support.quarantine_helpers import send as send_from_outside
from tests.test_approval_console import client_for, csrf
from tests.test_archive_search import mail as archive_mail
from tests.test_archive_search import send as archive_send
from tests.test_console import audit_rows, logged_in

SORTIZ = "sortiz@example.gov"


@pytest.fixture
def gateway(make_gateway):
    return make_gateway(approval_config())


def approval_config() -> dict:
    return approval_support.approval_config({"policies": {"unknown_sender": {"mode": "enforce"}}}, console=False)


def hold_broadcast(gateway, subject: str = "Main Street closed Friday") -> dict:
    approval_support.send(gateway.port, approval_support.broadcast(subject=subject), SORTIZ, ["all-staff@example.gov"])
    with gateway.runtime.database.read() as connection:
        return next(h for h in holds.listing(connection, "approval", state=None) if h["subject"] == subject)


def quarantine_file(gateway, subject: str = "Quote for road salt", days_ago: int = 0) -> dict:
    assert send_from_outside(gateway.port, mail(("quote.pdf", pdf(), PDF), subject=subject), STRANGER, [SORTIZ]) == (
        250,
        "",
    )
    with gateway.runtime.database.write() as connection:
        held = next(h for h in it_quarantine.pending(connection) if h["subject"] == subject)
        if days_ago:
            connection.execute(
                update(holds.held_message)
                .where(holds.held_message.c.id == held["id"])
                .values(created_at=utcnow() - timedelta(days=days_ago))
            )
    return held


def waiting_lines(html: str) -> list[str]:
    body = html.split('<ul class="worklist">', 1)[1].split("</ul>", 1)[0]
    return [
        " ".join(re.sub(r"<[^>]+>", "", line).split()) for line in re.findall(r"<li[^>]*>(.*?)</li>", body, re.DOTALL)
    ]


# -- (a) role home pages ----------------------------------------------------------


def test_each_role_home_page_lists_the_work_it_may_act_on_with_counts_and_due_dates(gateway):
    runtime = gateway.runtime
    broadcast = hold_broadcast(gateway)
    quarantine_file(gateway, days_ago=2)
    with runtime.database.write() as connection:
        foia.create(
            connection,
            "rita",
            runtime.config.settings.archive.foia,
            kind="foia",
            title="Road salt contracts",
            requester="A. Reporter",
            received_on=date.today() - timedelta(days=60),
        )
        connection.execute(
            insert(archive_finding).values(
                record_id=1, rule="language", action="hold", mode="monitor", message_date=utcnow()
            )
        )
    settings = runtime.config.settings.approvals
    due = approvals.schedule_of(settings, broadcast["created_at"]).expire
    with runtime.database.read() as connection:
        [request] = foia.listing(connection)

    dana = client_for(runtime, "dana", "department-head", "dwhitfield@example.gov")
    assert waiting_lines(dana.get("/").text) == [
        f"1 broadcast waiting for your approval, the first rejected unless decided by {day_words(due, settings.zone)}."
    ]
    jane = client_for(runtime, "jane", "department-head", "jdoe@example.gov")  # another department's head
    assert waiting_lines(jane.get("/").text) == ["No broadcasts are waiting for your approval."]
    chris = logged_in(runtime, "it-staff", "chris")
    assert waiting_lines(chris.get("/").text) == ["1 message with files waiting for IT review, the oldest for 2 d."]
    rita = logged_in(runtime, "records-officer", "rita")
    assert waiting_lines(rita.get("/").text) == [
        f"1 open request, the next due {day_words(request['due_on'])}; 1 overdue."
    ]
    auditor = logged_in(runtime, "auditor", "carl")
    assert '<ul class="worklist">' not in auditor.get("/").text  # an auditor acts on nothing

    admin = waiting_lines(logged_in(runtime, "admin", "ann").get("/").text)
    assert admin == [
        f"1 broadcast waiting for a decision, the first rejected unless decided by {day_words(due, settings.zone)}.",
        "1 message with files waiting for IT review, the oldest for 2 d.",
        f"1 open request, the next due {day_words(request['due_on'])}; 1 overdue.",
        "Rule language (monitor mode) would have acted on 1 message today.",
        "The virus scanner is not configured: attachments are not scanned for viruses.",
    ]


def test_day_words_say_the_day_as_a_to_do_list_does():
    assert day_words(date(2026, 12, 4)) == "Fri 4 Dec"


# -- (b) bulk decisions -------------------------------------------------------------


def hold_state(runtime, hold_id: int) -> tuple[str, str | None]:
    with runtime.database.read() as connection:
        found = holds.get(connection, hold_id)
    assert found is not None
    return found["state"], found["decided_by"]


def flashes(client) -> list[str]:  # type: ignore[no-untyped-def]
    page = client.get("/").text
    return [
        " ".join(re.sub(r"<[^>]+>", "", text).split())
        for text in re.findall(r'<p class="flash [a-z]+">(.*?)</p>', page, re.DOTALL)
    ]


def test_a_head_approves_several_broadcasts_at_once_each_audited_and_one_decided_by_someone_else_reported(gateway):
    runtime = gateway.runtime
    road, salt, picnic = (hold_broadcast(gateway, s) for s in ("Road work", "Salt supply", "Picnic"))
    ann = client_for(runtime, "ann", "admin", None)
    token = csrf(ann.get("/approvals").text)
    assert (
        ann.post(f"/approvals/{picnic['message_id']}/reject", data={"csrf_token": token, "reason": "No."}).status_code
        == 303
    )
    dana = client_for(runtime, "dana", "department-head", "dwhitfield@example.gov")
    jane = client_for(runtime, "jane", "department-head", "jdoe@example.gov")
    ids = [road["message_id"], salt["message_id"], picnic["message_id"]]

    listing = dana.get("/approvals").text
    assert f'name="message" value="{road["message_id"]}"' in listing and 'value="approve"' in listing
    assert dana.post("/approvals/decide", data={"decision": "approve", "message": ids}).status_code == 403  # no CSRF
    token = csrf(listing)
    dana.post("/approvals/decide", data={"csrf_token": token, "decision": "reject", "message": ids})
    assert flashes(dana) == ["Give a reason for the rejection: it is sent to each sender so they know what to change."]
    refused = jane.post(
        "/approvals/decide", data={"csrf_token": csrf(jane.get("/").text), "decision": "approve", "message": ids[:1]}
    )
    assert refused.status_code == 303 and hold_state(runtime, road["id"]) == ("pending", None)
    [jane_says] = flashes(jane)
    assert jane_says.startswith("Not done for “Road work”:") and "may not decide" in jane_says

    done = dana.post(
        "/approvals/decide", data={"csrf_token": token, "decision": "approve", "message": ids, "note": "Fine."}
    )
    assert (done.status_code, done.headers["location"]) == (303, "/approvals")
    said = flashes(dana)
    assert said[0] == "Approved: 2 of 3."
    assert said[1].startswith("Not done for “Picnic”: This message was already rejected by ann")
    assert hold_state(runtime, road["id"]) == ("released", "dana") == hold_state(runtime, salt["id"])
    assert hold_state(runtime, picnic["id"]) == ("rejected", "ann")
    decisions = [(r["actor"], r["target"], r["details"]["decision"]) for r in audit_rows(runtime, "approval.decision")]
    assert decisions == [
        ("ann", picnic["message_id"], "reject"),
        ("dana", road["message_id"], "approve"),
        ("dana", salt["message_id"], "approve"),
    ]
    bulk_entry = audit_rows(runtime, "approval.bulk")[-1]
    assert bulk_entry["actor"] == "dana" and bulk_entry["details"]["done"] == ["“Road work”", "“Salt supply”"]
    assert list(bulk_entry["details"]["refused"]) == ["“Picnic”"]


def test_it_staff_release_several_quarantined_messages_at_once_each_audited(gateway):
    runtime = gateway.runtime
    first, second, third = (quarantine_file(gateway, f"Quote {n}") for n in (1, 2, 3))
    chris = logged_in(runtime, "it-staff", "chris")
    rita = logged_in(runtime, "records-officer", "rita")
    page = chris.get("/quarantine").text
    token = csrf(page)
    assert f'name="hold" value="{first["id"]}"' in page
    forbidden = rita.post(
        "/quarantine/decide",
        data={"csrf_token": csrf(rita.get("/").text), "decision": "release", "hold": [first["id"]]},
    )
    assert forbidden.status_code == 403 and hold_state(runtime, first["id"]) == ("pending", None)
    one = chris.post(f"/quarantine/{second['id']}/reject", data={"csrf_token": token, "reason": "Phishing."})
    assert one.status_code == 303 and flashes(chris)[0].startswith("Rejected for sortiz@example.gov.")
    chris.post("/quarantine/decide", data={"csrf_token": token, "decision": "reject", "hold": [first["id"]]})
    assert flashes(chris) == [
        "Nothing was done: give a reason; the recipients are told why the message was not delivered."
    ]

    chosen = [first["id"], second["id"], third["id"]]
    done = chris.post("/quarantine/decide", data={"csrf_token": token, "decision": "release", "hold": chosen})
    assert (done.status_code, done.headers["location"]) == (303, "/quarantine")
    assert flashes(chris) == [
        "Released: 2 of 3.",
        f"Not done for message {second['id']}: quarantined message {second['id']} was already rejected by chris",
    ]
    assert [hold_state(runtime, i) for i in chosen] == [
        ("released", "chris"),
        ("rejected", "chris"),
        ("released", "chris"),
    ]
    decided = [(r["actor"], r["target"], r["details"]["decision"]) for r in audit_rows(runtime, "quarantine.decide")]
    assert decided == [
        ("chris", str(second["id"]), "reject"),
        ("chris", str(first["id"]), "release"),
        ("chris", str(third["id"]), "release"),
    ]
    assert len(audit_rows(runtime, "quarantine.release")) == 2  # holds.release's own entry, one per message


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_records_officer_marks_several_search_results_for_a_request_at_once(make_gateway):
    gateway = make_gateway()
    for subject in ("Reservoir schedule", "Reservoir budget"):
        archive_send(
            gateway.port, archive_mail("sortiz@example.gov", "dwhitfield@example.gov", subject, "About the reservoir.")
        )
    index.indexer_for(gateway.runtime).run()
    runtime = gateway.runtime
    with runtime.database.write() as connection:
        request_id = foia.create(
            connection,
            "rita",
            runtime.config.settings.archive.foia,
            kind="foia",
            title="Reservoir",
            requester="A. Reporter",
            received_on=date.today(),
        )
    rita = logged_in(runtime, "records-officer", "rita")
    page = rita.get(f"/records?q=reservoir&request={request_id}").text
    ids = re.findall(r'name="record" value="(\d+)"', page)
    assert len(ids) == 2
    withheld = rita.post(
        f"/foia/{request_id}/reviews",
        data={"csrf_token": csrf(page), "decision": "withhold", "record": ids, "q": "reservoir"},
    )
    assert withheld.headers["location"] == f"/records?q=reservoir&request={request_id}"
    assert [text.split(":")[0] for text in flashes(rita)] == [f"Not done for message {i}" for i in ids]  # no exemption
    done = rita.post(
        f"/foia/{request_id}/reviews",
        data={"csrf_token": csrf(page), "decision": "release", "record": [*ids, "999999"], "q": "reservoir"},
    )
    assert done.status_code == 303
    assert flashes(rita) == [
        "Marked release: 2 of 3.",
        "Not done for message 999999: there is no archive record 999999",
    ]
    with runtime.database.read() as connection:
        reviews = foia.current_reviews(connection, request_id)
    assert sorted(reviews) == sorted(int(i) for i in ids) and {r["disposition"] for r in reviews.values()} == {
        "release"
    }
    assert sorted(r["target"] for r in audit_rows(runtime, "foia.review")) == sorted(ids)
    assert "release" in rita.get(f"/records?q=reservoir&request={request_id}").text
    listed = rita.get("/records?q=reservoir&format=csv")
    assert listed.headers["content-type"] == "text/csv; charset=utf-8"
    assert listed.headers["content-disposition"].startswith('attachment; filename="records-search-')
    table = list(csv.DictReader(io.StringIO(listed.text)))
    assert sorted(row["subject"] for row in table) == ["Reservoir budget", "Reservoir schedule"]
    assert audit_rows(runtime, "archive.search")[-1]["details"]["csv"] is True


# -- (c) decided history, (e) CSV downloads ------------------------------------------


def test_decided_broadcasts_show_who_decided_what_and_when_filtered_paged_and_as_csv(gateway, monkeypatch):
    runtime = gateway.runtime
    road, salt = hold_broadcast(gateway, "Road work"), hold_broadcast(gateway, "Salt supply")
    dana = client_for(runtime, "dana", "department-head", "dwhitfield@example.gov")
    jane = client_for(runtime, "jane", "department-head", "jdoe@example.gov")
    ann = client_for(runtime, "ann", "admin", None)
    token = csrf(dana.get("/approvals").text)
    dana.post("/approvals/decide", data={"csrf_token": token, "decision": "approve", "message": [road["message_id"]]})
    ann.post(
        f"/approvals/{salt['message_id']}/reject", data={"csrf_token": csrf(ann.get("/").text), "reason": "Not now."}
    )

    page = dana.get("/history/approvals").text
    assert "2 decided messages; newest decision first" in page
    assert page.index("Salt supply") < page.index("Road work")  # newest decision first
    assert "Not now." in page and ">ann<" in page and ">dana<" in page
    assert "0 decided messages" in jane.get("/history/approvals").text  # another department's broadcasts
    by_ann = dana.get("/history/approvals?by=ann").text
    assert "Salt supply" in by_ann and "Road work" not in by_ann and "filtered" in by_ann
    released = ann.get("/history/approvals?state=released").text
    assert "Road work" in released and "Salt supply" not in released
    assert logged_in(runtime, "it-staff", "chris").get("/history/approvals").status_code == 403

    monkeypatch.setattr("console.history.PER_PAGE", 1)
    first = ann.get("/history/approvals").text
    assert "Page 1 of 2" in first and "Salt supply" in first and "Road work" not in first
    assert "Road work" in ann.get("/history/approvals?page=2").text

    listed = ann.get("/history/approvals?format=csv&by=dana")
    assert listed.headers["content-disposition"].startswith('attachment; filename="approval-decided-')
    [row] = list(csv.DictReader(io.StringIO(listed.text)))  # every match, not one page
    assert (row["decided_by"], row["state"], row["subject"]) == ("dana", "released", "Road work")
    assert [e["actor"] for e in audit_rows(runtime, "approval.history")][-1] == "ann"


def test_quarantine_history_and_the_waiting_lists_download_as_csv_with_formulas_neutralised(gateway):
    runtime = gateway.runtime
    formula = '=HYPERLINK("http://198.51.100.7/x","Invoice")'
    quarantine_file(gateway, formula)
    kept = quarantine_file(gateway, "Quote 2")
    chris = logged_in(runtime, "it-staff", "chris")
    page = chris.get("/quarantine?rule=unknown_sender").text
    assert 'href="/quarantine?recipient=&amp;sender=&amp;rule=unknown_sender&amp;age=&amp;format=csv"' in page
    waiting = chris.get("/quarantine?format=csv")
    rows = list(csv.DictReader(io.StringIO(waiting.text)))
    assert sorted(row["subject"] for row in rows) == ["'" + formula, "Quote 2"]
    assert {row["rcpt_to"] for row in rows} == {SORTIZ}
    assert audit_rows(runtime, "console.download")[-1]["target"] == "quarantine-waiting"

    token = csrf(page)
    chris.post(f"/quarantine/{kept['id']}/reject", data={"csrf_token": token, "reason": "Phishing."})
    history = chris.get("/history/quarantine?q=Quote").text
    assert "1 decided message, filtered" in history and "Phishing." in history and "rejected" in history
    assert logged_in(runtime, "records-officer", "rita").get("/history/quarantine").status_code == 403

    ann = client_for(runtime, "ann", "admin", None)
    hold_broadcast(gateway, "@SUM(1+1)")
    approvals_csv = list(csv.DictReader(io.StringIO(ann.get("/approvals?format=csv").text)))
    assert [row["subject"] for row in approvals_csv] == ["'@SUM(1+1)"]
    assert approvals_csv[0]["sender"] == SORTIZ
