"""The IT quarantine page through Starlette's TestClient: who may use it, decisions by form, the safe preview, the notice job.

The app is the real console on the running gateway's runtime, so releases
reach the downstream through the real deliver queue.
"""

from __future__ import annotations

import time

import pytest

from console.quarantine import safe_html
from quarantine import it_quarantine
from tests.support.quarantine_helpers import ENFORCE, PDF, STRANGER, mail, pdf, send
from tests.test_console import audit_rows, csrf_of, logged_in

SORTIZ, DWHITFIELD = "sortiz@example.gov", "dwhitfield@example.gov"


@pytest.fixture
def gateway(make_gateway):
    return make_gateway(ENFORCE)


def quarantine_one(gateway) -> dict:
    assert send(
        gateway.port, mail(("quote.pdf", pdf(), PDF), to=SORTIZ, cc=DWHITFIELD), STRANGER, [SORTIZ, DWHITFIELD]
    ) == (250, "")
    with gateway.runtime.database.read() as connection:
        [held] = it_quarantine.pending(connection)
    return held


@pytest.mark.parametrize("role", ["auditor", "department-head", "records-officer"])
def test_only_admins_and_it_staff_may_see_or_decide(gateway, role):
    held = quarantine_one(gateway)
    client = logged_in(gateway.runtime, role)
    assert client.get("/quarantine").status_code == 403
    assert client.get(f"/quarantine/{held['id']}").status_code == 403
    token = csrf_of(client.get("/").text)
    assert client.post(f"/quarantine/{held['id']}/release", data={"csrf_token": token}).status_code == 403
    with gateway.runtime.database.read() as connection:
        assert it_quarantine.get(connection, held["id"])["state"] == "pending"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_it_staff_reject_needs_a_reason_and_release_to_one_recipient_keeps_the_other_waiting(gateway, sink):
    held = quarantine_one(gateway)
    client = logged_in(gateway.runtime, "it-staff", "chris")
    listing = client.get("/quarantine?recipient=dwhitfield&rule=unknown_sender")
    assert listing.status_code == 200 and f'href="/quarantine/{held["id"]}"' in listing.text
    assert "Nothing is waiting that matches." in client.get("/quarantine?rule=virus").text
    page = client.get(f"/quarantine/{held['id']}")
    assert page.status_code == 200 and "quote.pdf" in page.text and "PDF document" in page.text
    token = csrf_of(page.text)

    refused = client.post(f"/quarantine/{held['id']}/reject", data={"csrf_token": token, "reason": "  "})
    assert refused.status_code == 303
    assert "Nothing was done: give a reason" in client.get(refused.headers["location"]).text
    assert (
        client.post(f"/quarantine/{held['id']}/release", data={"recipient": SORTIZ}).status_code == 403
    )  # no CSRF token

    released = client.post(f"/quarantine/{held['id']}/release", data={"csrf_token": token, "recipient": SORTIZ})
    assert (released.status_code, released.headers["location"]) == (303, f"/quarantine/{held['id']}")
    assert f"Released to {SORTIZ}. Still held for {DWHITFIELD}." in client.get(released.headers["location"]).text
    gateway.loop.call_soon_threadsafe(gateway.gateway.runner.wake.set)
    delivered = [m for m in sink.wait_for(1) if b'filename="quote.pdf"' in m.data]
    assert [m.rcpt_tos for m in delivered] == [[SORTIZ]]
    decided = list(audit_rows(gateway.runtime, "quarantine.decide"))
    assert [(r["actor"], r["target"], r["details"]["decision"], r["details"].get("refused")) for r in decided] == [
        (
            "chris",
            str(held["id"]),
            "reject",
            "give a reason: the recipients are told why the message was not delivered",
        ),
        ("chris", str(held["id"]), "release", None),
    ]


def test_the_preview_keeps_formatting_and_drops_everything_that_loads_or_runs():
    cleaned = safe_html(
        '<p style="x">Hi <b>there</b></p><img src="http://198.51.100.1/t.png"><script>alert(1)</script>'
        '<a href="http://198.51.100.1/login" onclick="x()">log in</a><style>p{}</style><form><input></form>'
    )
    assert cleaned == "<p>Hi <b>there</b></p><a>log in</a>"


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_gateway_job_notifies_each_quarantined_recipient_by_itself(gateway, sink):
    quarantine_one(gateway)
    deadline = time.monotonic() + 20  # the job runs every 5 s; the notices then go through the deliver queue
    while sorted(m.rcpt_tos[0] for m in sink.messages) != [DWHITFIELD, SORTIZ]:
        assert time.monotonic() < deadline, [m.rcpt_tos for m in sink.messages]
        time.sleep(0.1)
    assert all(b"X-AUP-Notice: quarantine-held" in m.data for m in sink.messages)
    with gateway.runtime.database.read() as connection:
        assert it_quarantine.unnotified(connection) == []
