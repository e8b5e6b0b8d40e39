"""Rules that read another rule's results declare it, and the pipeline runs them in that order.

The case that needed it: outside mail from an agency address with files is
known to every recipient only when it is authenticated, which the
unknown_sender rule learns from the authentication rule's published results.
"""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dkim
import pytest

from milter.config import load_config
from milter.intake.pipeline import Pipeline
from milter.kernel.directory import load_directory
from milter.kernel.dns import ZoneResolver
from milter.mail.message import Envelope, Message, ResultKey
from policies.base import Action, Policy, Services
from policies.registry import RUN_ORDER, run_order
from policies.rules.authentication import RESULTS, Authentication
from policies.rules.unknown_sender import UnknownSender
from tests.conftest import EXAMPLE_DIRECTORY, write_config
from tests.support.quarantine_helpers import PDF, mail, pdf

VECTORS = Path(__file__).parent / "data" / "auth" / "dkimpy"
KEY = (VECTORS / "test.private").read_bytes()
AGENCY_SERVER, ELSEWHERE = "198.51.100.25", "203.0.113.66"
ZONE = {
    "example.gov": [("TXT", "v=spf1 ip4:198.51.100.25 -all")],
    "_dmarc.example.gov": [("TXT", "v=DMARC1; p=none")],
    "gw._domainkey.example.gov": [("TXT", (VECTORS / "test.txt").read_text().strip())],
    "vendor-co.net": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "_dmarc.vendor-co.net": [("TXT", "v=DMARC1; p=none")],
}
PARTNER, PARTNER_SERVER = "billing@vendor-co.net", "192.0.2.10"
SENDER, RECIPIENT = "sortiz@example.gov", "dwhitfield@example.gov"


def rule(name: str, requires: tuple[str, ...] = ()) -> type[Policy]:
    return type(name.title(), (Policy,), {"name": name, "description": name, "requires": requires})


def test_a_rule_runs_after_the_rules_it_requires_and_otherwise_in_registry_order():
    a, b, c, d = rule("a"), rule("b", ("d",)), rule("c"), rule("d")
    assert [p.name for p in run_order([a, b, c, d])] == ["a", "d", "b", "c"]
    assert [p.name for p in run_order([a, c, d])] == ["a", "c", "d"]  # no requirement: order untouched


def test_a_cycle_or_a_missing_rule_is_refused_by_name():
    with pytest.raises(ValueError, match="cycle: x -> y -> x"):
        run_order([rule("x", ("y",)), rule("y", ("x",))])
    with pytest.raises(ValueError, match="rule x requires 'nothing'"):
        run_order([rule("x", ("nothing",))])


def test_the_shipped_order_runs_authentication_before_the_rule_that_reads_it():
    names = [p.name for p in RUN_ORDER]
    assert UnknownSender.requires == ("authentication",)
    assert names.index("authentication") < names.index("unknown_sender")
    assert sorted(names) == sorted({p.name for p in RUN_ORDER})  # each rule once


def test_a_result_asked_for_before_it_is_published_is_not_remembered_as_missing():
    message = Message(Envelope("a@example.org", ("b@example.gov",)), b"Subject: x\r\n\r\nbody\r\n", "inbound")
    key: ResultKey[int] = ResultKey("count")
    assert message.result(key) is None
    message.publish(key, 3)
    assert message.result(key) == 3


def signed(raw: bytes) -> bytes:
    return dkim.sign(raw, b"gw", b"example.gov", KEY) + raw


def decide(tmp_path: Path, raw: bytes, client_ip: str, *, sender: str = SENDER, reverse: bool = False):
    """The shipped rules with unknown_sender enforcing, over local DNS data; optionally registered backwards."""
    unknown_sender = {"mode": "enforce", "partners": {"senders": ["vendor-co.net"]}}
    config = load_config(
        write_config(
            tmp_path, "sqlite:///:memory:", "maildir:/tmp/unused", {"policies": {"unknown_sender": unknown_sender}}
        )
    )
    message = Message(Envelope(sender, (RECIPIENT,), client_ip=client_ip, helo="mx.sender.example"), raw, "inbound")
    with ThreadPoolExecutor(2) as executor:
        pipeline = Pipeline(
            config, load_directory(EXAMPLE_DIRECTORY), executor=executor, services=Services(resolver=ZoneResolver(ZONE))
        )
        if reverse:
            pipeline.policies.reverse()  # what a registry edit could do without declarations
        decision = asyncio.run(pipeline.run(message))
    return message, decision


def unknown_sender_findings(decision) -> list[str]:
    return [f.reason for f in decision.findings if f.policy == "unknown_sender"]


def test_outside_mail_from_an_agency_address_with_dmarc_passing_is_known_to_everyone(tmp_path):
    # The agency's hosted newsletter service: signs as example.gov, sends from an address outside its SPF record.
    raw = signed(mail(("quote.pdf", pdf(), PDF), sender=SENDER, to=RECIPIENT))
    message, decision = decide(tmp_path, raw, ELSEWHERE)
    checked = message.result(RESULTS)
    assert checked is not None and checked.dmarc.passed and checked.from_authenticated
    assert unknown_sender_findings(decision) == []
    assert decision.recipients[RECIPIENT].action == "deliver"


def test_outside_mail_from_an_agency_address_without_authentication_waits_for_it(tmp_path):
    raw = mail(("quote.pdf", pdf(), PDF), sender=SENDER, to=RECIPIENT)
    message, decision = decide(tmp_path, raw, ELSEWHERE)
    checked = message.result(RESULTS)
    assert checked is not None and not checked.from_authenticated
    [finding] = [f for f in decision.findings if f.policy == "unknown_sender"]
    assert "agency address, but this copy came from outside without authentication" in finding.reason
    assert (finding.action, finding.hold_queue, finding.recipients) == (Action.HOLD, "quarantine", {RECIPIENT})
    # and the authentication rule refuses the forgery outright, before anyone's quarantine fills up
    assert decision.action == "reject" and "agency's own domain" in decision.reply


def test_without_declared_order_the_reader_would_have_seen_nothing(tmp_path):
    """The same signed message with the rules run backwards: the proof that order, not luck, made it pass."""
    raw = signed(mail(("quote.pdf", pdf(), PDF), sender=SENDER, to=RECIPIENT))
    _, decision = decide(tmp_path, raw, ELSEWHERE, reverse=True)
    [reason] = unknown_sender_findings(decision)
    assert "without authentication" in reason


def test_a_partner_whose_domain_publishes_dmarc_is_known_only_when_the_copy_passes_it(tmp_path):
    raw = mail(("invoice.pdf", pdf("Invoice 88"), PDF), sender=PARTNER, to=RECIPIENT)
    _, passing = decide(tmp_path / "pass", raw, PARTNER_SERVER, sender=PARTNER)  # SPF pass, aligned: DMARC pass
    assert unknown_sender_findings(passing) == [] and passing.recipients[RECIPIENT].action == "deliver"
    _, failing = decide(tmp_path / "fail", raw, ELSEWHERE, sender=PARTNER)  # same envelope, the wrong server
    [reason] = unknown_sender_findings(failing)
    assert f"publishes DMARC and this copy failed it, so it may not be from {PARTNER}" in reason
    assert failing.recipients[RECIPIENT].action == "hold"


def test_authentication_is_the_rule_that_publishes_the_results():
    assert Authentication.name == RESULTS.name == "authentication"
