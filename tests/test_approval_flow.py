"""Broadcast approval end to end: real SMTP in, the real console's signed links, the real downstream out.

The gateway runs in-process with the shipped [approvals] and [policies.broadcast]
sections and the shipped example directory, on SQLite and PostgreSQL; the
console is served by uvicorn on a loopback port and followed with an HTTP
client exactly as an approver's browser follows the link in their e-mail.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import threading
import time

import httpx2
from sqlalchemy import select

from archive import audit, records
from milter import cli
from quarantine import approval_tokens, approvals, holds
from tests.conftest import EXAMPLE_DIRECTORY
from tests.support.approval_support import (
    ATTACHMENT,
    CSRF,
    approval_config,
    broadcast,
    delivered_to,
    links_in,
    notices,
    parsed,
    send,
    text_of,
    wait_for_notice,
)
from tests.support.servers import wait_until

NOTE = "Sam Ortiz\nFor: Dana Whitfield – Director of Public Works"


def settle(seconds: float = 0.5) -> None:
    time.sleep(seconds)


def confirm(client: httpx2.Client, url: str, **fields: str) -> httpx2.Response:
    """Open a link from an e-mail, then press the confirmation page's button."""
    page = client.get(url)
    assert page.status_code == 200, page.text
    token = CSRF.search(page.text)
    assert token, page.text
    choice = "approve" if 'value="approve"' in page.text else "reject"
    return client.post(url, data={"csrf_token": token.group(1), "decision": choice, **fields})


def audit_actions(runtime, message_id: str) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with runtime.database.read() as connection:
        rows = connection.execute(
            select(audit.audit_log).where(audit.audit_log.c.target == message_id).order_by(audit.audit_log.c.id)
        )
        return [(row.actor, row.action) for row in rows]


def test_sam_to_all_staff_is_held_until_dana_approves_by_link_and_arrives_with_the_note(
    make_gateway, sink, tmp_path, capsys
):
    gateway = make_gateway(approval_config())
    original = broadcast()
    reply = send(gateway.port, original, "sortiz@example.gov", ["all-staff@example.gov"])
    assert "held for approval" in reply

    # The sender hears at once who decides; Dana and her delegate Lee get the summary and two links each.
    held = wait_for_notice(sink, "approval-held", "sortiz@example.gov")
    assert "Dana Whitfield (Director of Public Works) or Lee Park (Deputy Director of Public Works)" in " ".join(
        text_of(held).split()
    )
    assert "For: Dana Whitfield – Director of Public Works" in text_of(held)
    to_dana = wait_for_notice(sink, "approval-request", "dwhitfield@example.gov")
    to_lee = wait_for_notice(sink, "approval-request", "lpark@example.gov")
    assert "Main Street closed Friday" in to_dana["Subject"] and "Sam Ortiz" in to_dana["Subject"]
    assert "detour-map.bin (1 KB)" in text_of(to_dana) and "Main Street is closed on Friday" in text_of(to_dana)
    dana, lee = links_in(to_dana), links_in(to_lee)
    assert dana["approve"] != lee["approve"]  # bound to the approver
    settle()
    assert delivered_to(sink, "all-staff@example.gov") == []
    with gateway.runtime.database.read() as connection:
        [hold] = holds.listing(connection, "approval")
    message_id = hold["message_id"]

    # `aup-milter check --json` says the same as the gateway did.
    (tmp_path / "sam.eml").write_bytes(original)
    assert cli.main(["--config", str(gateway.config.path), "check", str(tmp_path / "sam.eml"), "--json"]) == 3  # held
    result = json.loads(capsys.readouterr().out)
    assert (result["action"], result["hold_queue"]) == ("hold", "approval")
    assert [f["policy"] for f in result["findings"] if f["action"] == "hold"] == ["broadcast"]

    # Following the link only shows the message: a GET changes nothing.
    with httpx2.Client(follow_redirects=False, timeout=30) as browser:
        page = browser.get(dana["approve"])
        assert page.status_code == 200
        assert "Main Street closed Friday" in page.text and "detour-map.bin" in page.text
        assert (
            "pixel.gif" not in page.text and "<script>alert" not in page.text
        )  # shown without remote content or scripts
        with gateway.runtime.database.read() as connection:
            assert holds.get(connection, hold["id"])["state"] == "pending"
        done = confirm(browser, dana["approve"])
        assert done.status_code == 200 and "Approved" in done.text, done.text

        # The downstream gets the message once, with the note at the end of the text and of the HTML.
        [data] = wait_until(lambda: delivered_to(sink, "all-staff@example.gov") or None, what="the approved broadcast")
        message = parsed(data)
        plain = message.get_body(("plain",)).get_content().replace("\r\n", "\n")
        html = message.get_body(("html",)).get_content().replace("\r\n", "\n")
        assert plain.rstrip().endswith(NOTE), plain
        assert plain.startswith("Main Street is closed on Friday for paving.\nPlease use Elm Street.\n")
        assert "<p>Sam Ortiz<br>\nFor: Dana Whitfield – Director of Public Works</p>\n</body></html>" in html, html
        assert message["X-AUP-Approved-By"].startswith("Dana Whitfield <dwhitfield@example.gov> (department head); ")
        # The MIME structure and every byte outside the two text bodies are as sent.
        assert ATTACHMENT in data and data.count(b"--outer") == original.count(b"--outer")
        assert [p.get_content_type() for p in message.walk()] == [p.get_content_type() for p in parsed(original).walk()]
        body_start = original.index(b"\r\n\r\n")
        assert data.endswith(original[original.index(b"--inner--") :])  # everything after the HTML part is untouched
        assert original[body_start : original.index(b"Main Street")] in data

        # The sender is told; Lee's links (and Dana's, again) no longer work.
        approved = wait_for_notice(sink, "approval-approved", "sortiz@example.gov")
        assert "Dana Whitfield approved your message" in " ".join(text_of(approved).split())
        again = browser.get(dana["approve"])
        assert again.status_code == 410 and "already released by dwhitfield@example.gov" in again.text
        replayed = browser.post(
            dana["approve"], data={"csrf_token": CSRF.search(page.text).group(1), "decision": "approve"}
        )  # type: ignore[union-attr]
        assert replayed.status_code == 410
        assert browser.get(lee["reject"]).status_code == 410
    settle()
    assert len(delivered_to(sink, "all-staff@example.gov")) == 1

    # The archive keeps the message as sent and as delivered; the decision is audited.
    with gateway.runtime.database.read() as connection:
        kept = {row["kind"]: row for row in records.records_for(connection, message_id)}
        assert kept["received"]["action"] == "hold" and kept["received"]["hold_queue"] == "approval"
        assert gateway.runtime.blobs.get(kept["received"]["blob_sha256"]) == original
        assert gateway.runtime.blobs.get(kept["delivered"]["blob_sha256"]) in data
        assert holds.get(connection, hold["id"])["state"] == "released"
        assert approvals.request_for(connection, hold["id"])["outcome"] == "approved"
    with gateway.runtime.database.read() as connection:
        [replay] = audit.entries(connection, action="approval.link_refused")
    assert replay["details"]["kind"] == "revoked"
    actions = audit_actions(gateway.runtime, message_id)
    assert ("dwhitfield@example.gov", "approval.release") in actions and (
        "dwhitfield@example.gov",
        "approval.decision",
    ) in actions


def test_chris_from_it_sends_to_all_staff_without_a_hold(make_gateway, sink):
    gateway = make_gateway(approval_config())
    reply = send(
        gateway.port,
        broadcast(sender="Chris Nguyen <cnguyen@example.gov>"),
        "cnguyen@example.gov",
        ["all-staff@example.gov"],
    )
    assert "queued" in reply
    [data] = wait_until(lambda: delivered_to(sink, "all-staff@example.gov") or None, what="Chris's broadcast")
    assert b"For:" not in data and parsed(data)["X-AUP-Approved-By"] is None
    settle()
    assert notices(sink) == []
    with gateway.runtime.database.read() as connection:
        assert holds.listing(connection, "approval") == []


def test_a_rejection_by_link_needs_a_reason_and_the_sender_gets_it(make_gateway, sink):
    gateway = make_gateway(approval_config())
    send(gateway.port, broadcast(subject="Bake sale"), "sortiz@example.gov", ["all-staff@example.gov"])
    lee = links_in(wait_for_notice(sink, "approval-request", "lpark@example.gov"))
    with httpx2.Client(follow_redirects=False, timeout=30) as browser:
        page = browser.get(lee["reject"])
        token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        empty = browser.post(lee["reject"], data={"csrf_token": token, "decision": "reject", "reason": "  "})
        assert empty.status_code == 400 and "Give a reason" in empty.text
        done = browser.post(
            lee["reject"],
            data={
                "csrf_token": token,
                "decision": "reject",
                "reason": "Post it on the intranet bulletin board instead.",
            },
        )
        assert done.status_code == 200 and "Rejected" in done.text
    told = wait_for_notice(sink, "approval-rejected", "sortiz@example.gov")
    words = " ".join(text_of(told).split())
    assert "Lee Park (delegate of Dana Whitfield) did not approve your message" in words
    assert "Post it on the intranet bulletin board instead." in words and "What to do next" in words
    settle()
    assert delivered_to(sink, "all-staff@example.gov") == []
    with gateway.runtime.database.read() as connection:
        [hold] = holds.listing(connection, "approval", state=None)
    assert (hold["state"], hold["decided_by"], hold["decision_note"]) == (
        "rejected",
        "lpark@example.gov",
        "Post it on the intranet bulletin board instead.",
    )


def test_other_heads_the_sender_and_bad_links_are_refused_and_nothing_is_delivered(make_gateway, sink):
    gateway = make_gateway(approval_config({"approvals": {"token_lifetime": "1h"}}))
    runtime = gateway.runtime
    send(gateway.port, broadcast(), "sortiz@example.gov", ["all-staff@example.gov"])
    dana = links_in(wait_for_notice(sink, "approval-request", "dwhitfield@example.gov"))
    with runtime.database.read() as connection:
        [hold] = holds.listing(connection, "approval")

    # A head of another department, and the sender, may not decide (console, command line or core alike).
    for address in ("jdoe@example.gov", "sortiz@example.gov", "SOrtiz@Example.gov"):
        decider = approvals.Decider(actor=address, address=address, via="console")
        try:
            approvals.approve(runtime, hold["id"], decider)
        except approvals.DecisionRefused as refused:
            assert ("own message" in str(refused)) == address.lower().startswith("sortiz"), refused
        else:
            raise AssertionError(f"{address} approved the message")

    with httpx2.Client(follow_redirects=False, timeout=30) as browser:
        # Forged: a token signed with another key, and one with a changed character.
        signer = approval_tokens.URLSafeSerializer(
            "not the gateway's key at all, not at all", salt=approval_tokens.SALT
        )
        forged = signer.dumps({"m": hold["message_id"], "a": "jdoe@example.gov", "d": "approve", "n": "x"})
        base = dana["approve"].rsplit("/", 1)[0]
        assert browser.get(f"{base}/{forged}").status_code == 400
        tampered = dana["approve"][:-3] + ("aaa" if not dana["approve"].endswith("aaa") else "bbb")
        assert browser.get(tampered).status_code == 400
        # The decision in the form must be the link's: the approve link cannot reject.
        page = browser.get(dana["approve"])
        token = CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        assert (
            browser.post(dana["approve"], data={"csrf_token": token, "decision": "reject", "reason": "x"}).status_code
            == 400
        )
        # Without the session's CSRF token the POST never reaches the handler.
        assert httpx2.post(dana["approve"], data={"decision": "approve"}).status_code == 403
        # Expired: the link's time runs out (the shortest lifetime the config allows is an hour, so the row says it ran out).
        with runtime.database.write() as connection:
            connection.execute(
                approval_tokens.approval_token.update()
                .where(approval_tokens.approval_token.c.approver == "dwhitfield@example.gov")
                .values(expires_at=dt.datetime(2020, 1, 1, tzinfo=dt.UTC))
            )
        expired = browser.post(dana["approve"], data={"csrf_token": token, "decision": "approve"})
        assert expired.status_code == 410 and "expired" in expired.text
    settle()
    assert delivered_to(sink, "all-staff@example.gov") == []
    with runtime.database.read() as connection:
        assert holds.get(connection, hold["id"])["state"] == "pending"
        refusals = [
            row.details["kind"]
            for row in connection.execute(
                select(audit.audit_log).where(audit.audit_log.c.action == "approval.link_refused")
            )
        ]
    assert refusals == ["forged", "expired"]


def test_a_sender_with_no_department_head_waits_for_the_fallback_approver(make_gateway, sink, tmp_path):
    folder = tmp_path / "nohead"
    folder.mkdir()
    directory = re.sub(
        r'id = "clerk"\nname = "Town Clerk"\nhead = "jdoe@example.gov"\n',
        'id = "clerk"\nname = "Town Clerk"\n',
        EXAMPLE_DIRECTORY.read_text(),
    )
    directory += '\n[[people]]\naddress = "pat@example.gov"\nname = "Pat Quinn"\ntitle = "Clerk Assistant"\ndepartment = "clerk"\n'
    gateway = make_gateway(approval_config(), folder=folder)
    (folder / "directory.toml").write_text(directory)
    gateway.gateway.reload()
    runtime = gateway.runtime
    assert runtime.directory.departments["clerk"].head is None

    send(gateway.port, broadcast(sender="Pat Quinn <pat@example.gov>"), "pat@example.gov", ["all-staff@example.gov"])
    held = wait_for_notice(sink, "approval-held", "pat@example.gov")
    assert "Michael Vasquenza (MHIS Director)" in " ".join(text_of(held).split())
    fallback = wait_for_notice(sink, "approval-fallback", "mvasquenza@example.gov")
    assert "no head or delegate of the sender's department is on file" in " ".join(text_of(fallback).split())
    with runtime.database.read() as connection:
        [hold] = holds.listing(connection, "approval")
    try:
        approvals.approve(
            runtime, hold["id"], approvals.Decider("dwhitfield@example.gov", "dwhitfield@example.gov", "console")
        )
    except approvals.DecisionRefused as refused:
        assert "Michael Vasquenza" in str(refused)
    else:
        raise AssertionError("a head of another department approved")
    settle()
    assert delivered_to(sink, "all-staff@example.gov") == []

    with httpx2.Client(follow_redirects=False, timeout=30) as browser:
        done = confirm(browser, links_in(fallback)["approve"])
    assert done.status_code == 200
    [data] = wait_until(lambda: delivered_to(sink, "all-staff@example.gov") or None, what="the approved broadcast")
    plain = parsed(data).get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert plain.rstrip().endswith("Pat Quinn\nFor: Michael Vasquenza – MHIS Director"), plain
    assert "(fallback approver)" in parsed(data)["X-AUP-Approved-By"]


def test_two_approvers_deciding_at_once_deliver_the_message_exactly_once(make_gateway, sink):
    gateway = make_gateway(approval_config())
    runtime = gateway.runtime
    send(gateway.port, broadcast(), "sortiz@example.gov", ["all-staff@example.gov"])
    wait_for_notice(sink, "approval-request", "lpark@example.gov")
    with runtime.database.read() as connection:
        [hold] = holds.listing(connection, "approval")
    start = threading.Barrier(2)
    outcomes: dict[str, str] = {}

    def decide(address: str) -> None:
        start.wait()
        try:
            outcomes[address] = approvals.approve(
                runtime, hold["id"], approvals.Decider(address, address, "console")
            ).state
        except approvals.DecisionRefused as refused:
            outcomes[address] = f"refused: {refused}"

    threads = [threading.Thread(target=decide, args=(a,)) for a in ("dwhitfield@example.gov", "lpark@example.gov")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(v.split(":")[0] for v in outcomes.values()) == ["approved", "refused"], outcomes
    wait_until(lambda: delivered_to(sink, "all-staff@example.gov") or None, what="the approved broadcast")
    settle()
    assert len(delivered_to(sink, "all-staff@example.gov")) == 1
    assert len(notices(sink, "approval-approved", "sortiz@example.gov")) == 1
    with runtime.database.read() as connection:
        assert [r["kind"] for r in records.records_for(connection, hold["message_id"])] == ["received", "delivered"]
