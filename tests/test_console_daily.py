"""Daily console work through Starlette's TestClient: role home pages, bulk decisions, decided history, CSV.

The real console app on the running gateway's runtime and database (SQLite
and PostgreSQL); broadcasts and quarantined files arrive over real SMTP.
"""

from __future__ import annotations

import re
from datetime import date, timedelta

import pytest
from sqlalchemy import insert, update

from archive import foia
from archive.index import archive_finding
from console.worklist import day_words
from milter.kernel.db import utcnow
from quarantine import approvals, holds, it_quarantine
from tests.support import approval_support
from tests.support.quarantine_helpers import PDF, STRANGER, mail, pdf
from tests.support.quarantine_helpers import send as send_from_outside
from tests.test_approval_console import client_for
from tests.test_console import logged_in

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
