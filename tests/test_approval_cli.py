"""`aup-milter approvals list|show|approve|reject`, and approval that hands a message on to IT review."""

from __future__ import annotations

import time

from archive import audit, records
from milter import cli
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


def run(gateway, capsys, *args: str) -> tuple[int, str, str]:  # type: ignore[no-untyped-def]
    code = cli.main(["--config", str(gateway.config.path), "approvals", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_list_show_and_decide_for_an_approver_from_the_command_line(make_gateway, sink, capsys):
    gateway = make_gateway(approval_config())
    send(gateway.port, broadcast(subject="Snow plow schedule"), "sortiz@example.gov", ["all-staff@example.gov"])
    wait_for_notice(sink, "approval-request", "lpark@example.gov")
    with gateway.runtime.database.read() as connection:
        [hold] = holds.listing(connection, "approval")

    code, out, _ = run(gateway, capsys, "list")
    assert code == 0 and hold["message_id"] in out and "Snow plow schedule" in out and "sortiz@example.gov" in out
    assert "Dana Whitfield (Director of Public Works) or Lee Park" in out
    code, out, _ = run(gateway, capsys, "show", str(hold["id"]))
    assert code == 0 and "waiting for:" in out and "reminder:" in out and "expires:" in out
    assert "dwhitfield@example.gov: issued" in out and "lpark@example.gov: issued" in out and "valid until" in out
    assert "| Main Street is closed on Friday for paving." in out
    assert run(gateway, capsys, "show", "999999")[0] == 1
    with gateway.runtime.database.read() as connection:
        [viewed] = audit.entries(connection, action="approval.view")
    assert viewed["actor"].startswith("cli:") and viewed["target"] == hold["message_id"]

    code, _, err = run(gateway, capsys, "approve", hold["message_id"], "--as", "jdoe@example.gov")
    assert code == 2 and "jdoe@example.gov may not decide this message" in err
    code, _, err = run(gateway, capsys, "approve", hold["message_id"], "--as", "sortiz@example.gov")
    assert code == 2 and "nobody approves their own message" in err
    code, out, _ = run(
        gateway,
        capsys,
        "reject",
        str(hold["id"]),
        "--as",
        "lpark@example.gov",
        "--reason",
        "Post the schedule on the intranet.",
    )
    assert code == 0 and "Rejected" in out
    code, _, err = run(gateway, capsys, "approve", str(hold["id"]))
    assert code == 2 and "already rejected by cli:" in err

    told = wait_for_notice(sink, "approval-rejected", "sortiz@example.gov")
    assert "Lee Park (delegate of Dana Whitfield)" in " ".join(text_of(told).split())
    code, out, _ = run(gateway, capsys, "list", "--all")
    assert "rejected" in out and "Post the schedule on the intranet." in out
    with gateway.runtime.database.read() as connection:
        [entry] = audit.entries(connection, action="approval.decision")
        [rejected] = audit.entries(connection, action="approval.reject")  # the hold's own entry
    assert rejected["actor"] == entry["actor"] and entry["details"]["decision"] == "reject"
    assert (
        entry["actor"].startswith("cli:")
        and entry["details"]["approver"] == "lpark@example.gov"
        and entry["source"] == "cli"
    )
    time.sleep(0.3)
    assert delivered_to(sink, "all-staff@example.gov") == []


def test_approval_hands_a_message_other_rules_held_to_it_review_instead_of_delivering_it(make_gateway, sink, capsys):
    gateway = make_gateway(approval_config())
    threat = broadcast(subject="Parking").replace(
        b"Please use Elm Street.", b"Whoever parks in my spot again, you will be sorry."
    )
    send(gateway.port, threat, "sortiz@example.gov", ["all-staff@example.gov"])
    wait_for_notice(sink, "approval-request", "dwhitfield@example.gov")
    with gateway.runtime.database.read() as connection:
        [hold] = holds.listing(connection, "approval")
        [received] = records.records_for(connection, hold["message_id"])
    assert {f["policy"] for f in received["findings"] if f["action"] == "hold"} == {"broadcast", "language"}

    code, out, _ = run(gateway, capsys, "approve", hold["message_id"], "--as", "dwhitfield@example.gov")
    assert code == 0 and "now waits for IT" in out
    told = wait_for_notice(sink, "approval-approved", "sortiz@example.gov")
    assert "now waits for IT review" in told["Subject"]
    time.sleep(0.3)
    assert delivered_to(sink, "all-staff@example.gov") == []
    with gateway.runtime.database.read() as connection:
        approval = holds.get(connection, hold["id"])
        [it_hold] = holds.listing(connection, "quarantine")
        versions = {r["kind"]: r for r in records.records_for(connection, hold["message_id"])}
    assert (
        approval["state"] == "released"
        and f"handed to the quarantine queue as hold {it_hold['id']}" in approval["decision_note"]
    )
    assert it_hold["blob_sha256"] == versions["delivered"]["blob_sha256"] and "threatening" in it_hold["reason"]

    # IT releases it: the approved version, note and all, is what goes out.
    with gateway.runtime.database.write() as connection:
        holds.release(connection, it_hold["id"], "it-anna", note="a complaint about parking, not a threat")
    [data] = wait_until(lambda: delivered_to(sink, "all-staff@example.gov") or None, what="the released broadcast")
    plain = parsed(data).get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    assert plain.rstrip().endswith("Sam Ortiz\nFor: Dana Whitfield – Director of Public Works")
