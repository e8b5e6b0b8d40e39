"""The approvals pages of the console: who sees and decides what, safe display, CSRF and the audit log.

The real console app (Starlette's TestClient) on the real gateway's runtime
and database (SQLite and PostgreSQL); broadcasts arrive over real SMTP.
"""

from __future__ import annotations

import html
import re
import time

from sqlalchemy import select
from starlette.testclient import TestClient

from archive import audit
from console import users
from console.app import create_app
from quarantine import holds
from tests.support.approval_support import (
    approval_config,
    broadcast,
    delivered_to,
    parsed,
    send,
    text_of,
    wait_for_notice,
)
from tests.support.servers import wait_until

PASSWORD = "correct horse battery staple"


def client_for(runtime, login: str, role: str, email: str | None) -> TestClient:  # type: ignore[no-untyped-def]
    with runtime.database.write() as connection:
        users.add(connection, login, PASSWORD, role, email)
    client = TestClient(create_app(runtime), client=("127.0.0.1", 50000), follow_redirects=False)
    token = csrf(client.get("/login").text)
    assert client.post("/login", data={"csrf_token": token, "login": login, "password": PASSWORD}).status_code == 303
    return client


def csrf(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def held(runtime) -> list[dict]:  # type: ignore[no-untyped-def]
    with runtime.database.read() as connection:
        return holds.listing(connection, "approval", state=None)


def test_each_head_sees_and_decides_only_their_departments_broadcasts(make_gateway, sink):
    gateway = make_gateway(approval_config(console=False))
    runtime = gateway.runtime
    send(gateway.port, broadcast(subject="Road work"), "sortiz@example.gov", ["all-staff@example.gov"])
    send(
        gateway.port,
        broadcast(sender="Pat Lee <sortiz@example.gov>", subject="Salt supply"),
        "sortiz@example.gov",
        ["all-staff@example.gov"],
    )
    road, salt = held(runtime)
    dana = client_for(runtime, "dana", "department-head", "dwhitfield@example.gov")
    jane = client_for(runtime, "jane", "department-head", "jdoe@example.gov")
    sam = client_for(runtime, "sam", "department-head", "sortiz@example.gov")
    unlinked = client_for(runtime, "nolink", "department-head", None)
    rita = client_for(runtime, "rita", "records-officer", "jdoe@example.gov")
    ann = client_for(runtime, "ann", "admin", None)

    listing = dana.get("/approvals")
    assert listing.status_code == 200 and "Road work" in listing.text and "Salt supply" in listing.text
    assert "department head" in listing.text
    for other in (jane, sam):
        page = other.get("/approvals")
        assert page.status_code == 200 and "Road work" not in page.text and "Nothing is waiting for you" in page.text
    assert "not linked to a person in the directory" in unlinked.get("/approvals").text
    assert rita.get("/approvals").status_code == 403
    assert "Road work" in ann.get("/approvals").text

    page = dana.get(f"/approvals/{road['message_id']}")
    assert (
        page.status_code == 200
        and "Approve and send" in page.text
        and "For: Dana Whitfield – Director of Public Works" in page.text
    )
    assert jane.get(f"/approvals/{road['message_id']}").status_code == 403
    own = sam.get(f"/approvals/{road['message_id']}")
    assert own.status_code == 403 and "nobody approves their own message" in own.text
    assert dana.get("/approvals/NOTANID").status_code == 404

    # A head of another department cannot decide by posting the form either; the attempt is audited.
    refused = jane.post(
        f"/approvals/{road['message_id']}/approve", data={"csrf_token": csrf(jane.get("/approvals").text)}
    )
    assert refused.status_code == 303
    assert "may not decide this message" in jane.get(refused.headers["location"]).text
    # Without the session's CSRF token nothing happens at all.
    assert dana.post(f"/approvals/{road['message_id']}/approve", data={}).status_code == 403

    token = csrf(page.text)
    empty = dana.post(f"/approvals/{road['message_id']}/reject", data={"csrf_token": token, "reason": ""})
    assert "Give a reason" in dana.get(empty.headers["location"]).text
    done = dana.post(
        f"/approvals/{road['message_id']}/reject", data={"csrf_token": token, "reason": "Use the road-work page."}
    )
    assert done.headers["location"] == "/approvals" and "Rejected" in dana.get("/approvals").text
    decided = dana.get(f"/approvals/{road['message_id']}")
    assert "This message was rejected by dana" in decided.text and "Approve and send" not in decided.text
    assert jane.get(f"/approvals/{road['message_id']}").status_code == 403  # decided or not, not hers to read
    told = wait_for_notice(sink, "approval-rejected", "sortiz@example.gov")
    assert "Use the road-work page." in text_of(told)

    # The admin's preview is the note that is appended: not the department head's "For: ..." line.
    preview = re.search(
        r'<blockquote class="note">(.*?)</blockquote>', ann.get(f"/approvals/{salt['message_id']}").text, re.DOTALL
    )
    assert preview is not None
    previewed = [line.strip() for line in html.unescape(preview.group(1)).splitlines() if line.strip()]
    assert previewed[-1] == "Approved by the agency's mail administrators"
    approved = ann.post(
        f"/approvals/{salt['message_id']}/approve",
        data={"csrf_token": csrf(ann.get("/approvals").text), "note": "urgent"},
    )
    assert approved.status_code == 303
    [data] = wait_until(
        lambda: delivered_to(sink, "all-staff@example.gov") or None, what="the admin-approved broadcast"
    )
    assert "Salt supply" in parsed(data)["Subject"] and "(admin)" in parsed(data)["X-AUP-Approved-By"]
    delivered_lines = [line.strip() for line in text_of(parsed(data)).splitlines() if line.strip()]
    assert delivered_lines[-len(previewed) :] == previewed
    time.sleep(0.3)
    assert len(delivered_to(sink, "all-staff@example.gov")) == 1

    with runtime.database.read() as connection:
        entries = [
            (row.actor, row.action, row.details)
            for row in connection.execute(select(audit.audit_log).order_by(audit.audit_log.c.id))
        ]
    mine = [
        (actor, action, (details or {}).get("decision"))
        for actor, action, details in entries
        if action.startswith("approval.")
    ]
    assert ("dana", "approval.view", None) in mine and ("dana", "approval.decision", "reject") in mine
    assert (
        ("dana", "approval.reject", None) in mine
        and ("ann", "approval.decision", "approve") in mine
        and ("ann", "approval.release", None) in mine
    )
    jane_try = [details for actor, action, details in entries if (actor, action) == ("jane", "approval.decision")]
    assert len(jane_try) == 1 and "may not decide" in jane_try[0]["refused"]
    ann_did = next(details for actor, action, details in entries if (actor, action) == ("ann", "approval.decision"))
    assert (ann_did["capacity"], ann_did["note"]) == ("admin", "urgent")


def test_a_held_message_is_shown_without_scripts_styles_or_remote_content(make_gateway, sink):
    gateway = make_gateway(approval_config(console=False))
    hostile = broadcast(subject="Newsletter").replace(
        b'<p><img src="https://tracker.example.com/pixel.gif">',
        b'<style>body{background:url(https://evil.example/x.png)}</style><p style="color:red" onclick="steal()">'
        b'<img src="https://tracker.example.com/pixel.gif"><a href="javascript:alert(1)">click</a>'
        b'<a href="https://example.gov/detours">detours</a>',
    )
    send(gateway.port, hostile, "sortiz@example.gov", ["all-staff@example.gov"])
    [road] = held(gateway.runtime)
    dana = client_for(gateway.runtime, "dana", "department-head", "dwhitfield@example.gov")
    page = dana.get(f"/approvals/{road['message_id']}")
    assert page.status_code == 200
    shown = page.text.split('class="message-html">', 1)[1].split("</div>", 1)[0]
    for bad in ("<script", "<style", "style=", "onclick", "<img", "tracker.example.com", "evil.example", "javascript:"):
        assert bad not in shown, bad
    assert 'href="https://example.gov/detours"' in shown and "nofollow" in shown and "Please use Elm Street." in shown
    assert "default-src 'none'" in page.headers["content-security-policy"]
