"""The IT quarantine's decisions: release to all or some, release and trust, reject with a notice; the CLI; the audit log.

Messages arrive over real SMTP from an outside sender, wait in the
quarantine, and are decided as IT would; releases reach the downstream
through the real deliver queue. On SQLite and on the real PostgreSQL server.
"""

from __future__ import annotations

import email
import email.policy

import pytest

from archive import audit
from milter import cli
from policies.rules import correspondents
from quarantine import holds, it_quarantine
from tests.support.quarantine_helpers import ENFORCE, PDF, STRANGER, mail, pdf, send

SORTIZ, DWHITFIELD = "sortiz@example.gov", "dwhitfield@example.gov"


@pytest.fixture
def gateway(make_gateway):
    """The gateway with the rule enforcing (it ships in monitor mode)."""
    return make_gateway(ENFORCE)


def held_for_both(gateway) -> dict:
    raw = mail(("quote.pdf", pdf(), PDF), to=SORTIZ, cc=DWHITFIELD)
    assert send(gateway.port, raw, STRANGER, [SORTIZ, DWHITFIELD]) == (250, "")
    with gateway.runtime.database.read() as connection:
        [held] = it_quarantine.pending(connection)
    assert held["rcpt_to"] == [SORTIZ, DWHITFIELD]
    return held


def wake(gateway) -> None:
    gateway.loop.call_soon_threadsafe(gateway.gateway.runner.wake.set)


def test_release_to_one_recipient_keeps_the_other_waiting_then_reject_tells_them_why(gateway, sink):
    runtime = gateway.runtime
    held = held_for_both(gateway)
    with runtime.database.write() as connection:
        done = it_quarantine.release(
            connection, runtime, held["id"], "chris", recipients=[SORTIZ.upper()], note="expected"
        )
    assert (done.recipients, done.still_held) == ([SORTIZ], [DWHITFIELD])
    wake(gateway)
    [delivered] = sink.wait_for(1)
    assert delivered.rcpt_tos == [SORTIZ] and b'filename="quote.pdf"' in delivered.data
    with runtime.database.read() as connection:
        [waiting] = it_quarantine.pending(connection)
        released = holds.get(connection, done.hold_id)
    assert (waiting["id"], waiting["rcpt_to"], waiting["state"]) == (held["id"], [DWHITFIELD], "pending")
    assert (released["state"], released["decided_by"], released["rcpt_to"]) == ("released", "chris", [SORTIZ])

    with runtime.database.write() as connection:
        rejected = it_quarantine.reject(
            connection, runtime, held["id"], "chris", reason="A phishing lure posing as a quote."
        )
    assert (rejected.recipients, rejected.still_held, len(rejected.notices)) == ([DWHITFIELD], [], 1)
    wake(gateway)
    notice = sink.wait_for(2)[1]
    assert notice.rcpt_tos == [DWHITFIELD]  # the recipient is told; the outside sender never is (no backscatter)
    parsed = email.message_from_bytes(notice.data, policy=email.policy.default)
    text = parsed.get_body(("plain",)).get_content()
    assert parsed["X-AUP-Notice"] == "quarantine-rejected"
    assert "IT's reason: A phishing lure posing as a quote." in text and "quote.pdf (PDF document" in text
    assert all(STRANGER not in m.rcpt_tos for m in sink.messages)
    with runtime.database.read() as connection:
        entries = [(e["actor"], e["action"], e["details"].get("recipients")) for e in audit.entries(connection)][::-1]
    assert entries == [("chris", "quarantine.release", [SORTIZ]), ("chris", "quarantine.reject", None)]


def test_release_and_trust_makes_the_sender_known_so_the_next_file_arrives_directly(gateway, sink):
    runtime = gateway.runtime
    held = held_for_both(gateway)
    with runtime.database.write() as connection:
        done = it_quarantine.release(connection, runtime, held["id"], "chris", recipients=[SORTIZ], trust=True)
    assert done.trusted == STRANGER
    with runtime.database.read() as connection:
        assert correspondents.known_to(connection, STRANGER, [SORTIZ, DWHITFIELD]) == {SORTIZ}
        [trust] = [e for e in audit.entries(connection) if e["action"] == "known_senders.trust"]
    assert (trust["actor"], trust["target"], trust["details"]["recipients"]) == ("chris", STRANGER, [SORTIZ])
    assert send(gateway.port, mail(("second.pdf", pdf(), PDF)), STRANGER, [SORTIZ]) == (250, "")
    wake(gateway)
    assert [m.rcpt_tos for m in sink.wait_for(2)] == [[SORTIZ], [SORTIZ]]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_decisions_are_single_use_and_bad_requests_get_a_clear_answer(gateway, sink):
    runtime = gateway.runtime
    held = held_for_both(gateway)
    with runtime.database.write() as connection, pytest.raises(it_quarantine.QuarantineError, match="give a reason"):
        it_quarantine.reject(connection, runtime, held["id"], "chris", reason="  ")
    with (
        runtime.database.write() as connection,
        pytest.raises(it_quarantine.QuarantineError, match=r"is not held for someone@example\.gov"),
    ):
        it_quarantine.release(connection, runtime, held["id"], "chris", recipients=["someone@example.gov"])
    with runtime.database.write() as connection:
        it_quarantine.release(connection, runtime, held["id"], "chris")
    with (
        runtime.database.write() as connection,
        pytest.raises(it_quarantine.QuarantineError, match="already released by chris"),
    ):
        it_quarantine.release(connection, runtime, held["id"], "ann")
    with (
        runtime.database.write() as connection,
        pytest.raises(it_quarantine.QuarantineError, match="no quarantined message 999"),
    ):
        it_quarantine.reject(connection, runtime, 999, "ann", reason="x")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_cli_lists_shows_releases_and_rejects_and_is_audited(gateway, sink, capsys, monkeypatch):
    monkeypatch.setenv("USER", "chris")
    monkeypatch.delenv("SUDO_USER", raising=False)
    config = ["--config", str(gateway.config.path)]
    held = held_for_both(gateway)
    assert cli.main([*config, "quarantine", "list", "--recipient", "dwhitfield"]) == 0
    out = capsys.readouterr().out
    assert f"{held['id']}" in out and "unknown_sender" in out and "Quote for road salt" in out and "0 min" in out
    assert cli.main([*config, "quarantine", "list", "--sender", "nobody@"]) == 0
    assert capsys.readouterr().out.strip() == "(none)"

    assert cli.main([*config, "quarantine", "show", str(held["id"])]) == 0
    out = capsys.readouterr().out
    assert f"envelope:   from=<{STRANGER}> to={SORTIZ}, {DWHITFIELD}" in out and "  - quote.pdf (PDF document" in out

    assert cli.main([*config, "quarantine", "release", str(held["id"]), "--to", SORTIZ, "--trust"]) == 0
    assert capsys.readouterr().out.strip() == (
        f"released to {SORTIZ} (delivery 1); still held for {DWHITFIELD}; {STRANGER} is now a known sender for them"
    )
    assert cli.main([*config, "quarantine", "reject", str(held["id"]), "--reason", "Not needed."]) == 0
    assert capsys.readouterr().out.strip() == f"rejected for {DWHITFIELD}; each was told why"
    assert cli.main([*config, "quarantine", "reject", str(held["id"]), "--reason", "again"]) == 1
    assert "was already rejected by cli:chris" in capsys.readouterr().err
    wake(gateway)
    assert sorted(m.rcpt_tos[0] for m in sink.wait_for(2)) == [DWHITFIELD, SORTIZ]  # the release and the notice
    with gateway.runtime.database.read() as connection:
        actions = [(e["actor"], e["action"]) for e in audit.entries(connection)][::-1]
    assert actions == [
        ("cli:chris", "quarantine.view"),
        ("cli:chris", "quarantine.release"),
        ("cli:chris", "known_senders.trust"),
        ("cli:chris", "quarantine.reject"),
    ]
