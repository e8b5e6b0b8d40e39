"""DMARC: policy discovery, alignment, p= / sp= / pct=, and what the authentication rule asks for each outcome.

The messages are real: signed with dkimpy's test key for the domain under
test, checked against local zone data, with SPF evaluated for the client
address the test gives.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import dkim
import pytest

from milter.kernel.directory import load_directory
from milter.kernel.dns import ZoneResolver
from milter.mail.message import Envelope, Message
from policies.auth.dkim import DkimResult
from policies.auth.dmarc import aligned, evaluate, find_record, organisational_domain, parse_record
from policies.auth.spf import SpfResult
from policies.base import Action, Services
from policies.rules.authentication import (
    Authentication,
    AuthenticationSettings,
    authserv_id_of,
    from_authenticated,
    results,
)
from tests.conftest import EXAMPLE_DIRECTORY

VECTORS = Path(__file__).parent / "data" / "auth" / "dkimpy"
KEY = (VECTORS / "test.private").read_bytes()
PUBLIC = (VECTORS / "test.txt").read_text().strip()
DIRECTORY = load_directory(EXAMPLE_DIRECTORY)
SENDER_IP, OTHER_IP = "192.0.2.10", "203.0.113.66"

ZONE = {
    # p=reject, relaxed; its servers are 192.0.2.0/24; it signs with selector "s1"
    "rejecting.example": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "_dmarc.rejecting.example": [("TXT", "v=DMARC1; p=reject; rua=mailto:dmarc@rejecting.example")],
    "s1._domainkey.rejecting.example": [("TXT", PUBLIC)],
    "mail.rejecting.example": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "s1._domainkey.mail.rejecting.example": [("TXT", PUBLIC)],
    # p=quarantine, with a stricter sp= for subdomains
    "quarantining.example": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "_dmarc.quarantining.example": [("TXT", "v=DMARC1; p=quarantine; sp=reject")],
    "news.quarantining.example": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    # p=none: failures are reported, nothing else
    "watching.example": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "_dmarc.watching.example": [("TXT", "v=DMARC1; p=none")],
    # strict alignment for both
    "strict.example": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "_dmarc.strict.example": [("TXT", "v=DMARC1; p=reject; adkim=s; aspf=s")],
    "bounce.strict.example": [("TXT", "v=spf1 ip4:192.0.2.0/24 -all")],
    "s1._domainkey.mail.strict.example": [("TXT", PUBLIC)],
    # pct=0 and pct=50
    "sampled.example": [("TXT", "v=spf1 -all")],
    "_dmarc.sampled.example": [("TXT", "v=DMARC1; p=reject; pct=0")],
    "halfway.example": [("TXT", "v=spf1 -all")],
    "_dmarc.halfway.example": [("TXT", "v=DMARC1; p=quarantine; pct=50")],
    # two records: none applies
    "twice.example": [("TXT", "v=spf1 -all")],
    "_dmarc.twice.example": [("TXT", "v=DMARC1; p=reject"), ("TXT", "v=DMARC1; p=none")],
    # the policy lookup times out
    "flaky.example": [("TXT", "v=spf1 -all")],
    "_dmarc.flaky.example": [("TIMEOUT", None)],
    # the agency itself publishes only p=none
    "example.gov": [("TXT", "v=spf1 ip4:198.51.100.25 -all")],
    "_dmarc.example.gov": [("TXT", "v=DMARC1; p=none")],
    "gw._domainkey.example.gov": [("TXT", PUBLIC)],
}


def signed(author: str, *, d: str | None = None, subject: str = "Quarterly figures", extra: str = "") -> bytes:
    message = (
        f"From: {author}\r\nTo: sortiz@example.gov\r\nSubject: {subject}\r\nMessage-ID: <{subject.replace(' ', '.')}@x>\r\n"
        f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n{extra}\r\nThe figures are attached.\r\n"
    ).encode()
    if d is None:
        return message
    return dkim.sign(message, b"gw" if d == "example.gov" else b"s1", d.encode(), KEY) + message


def rule(zone: dict | None = None, **settings) -> Authentication:
    return Authentication(
        AuthenticationSettings(authserv_id="gateway.test", **settings),
        DIRECTORY,
        Services(resolver=ZoneResolver(zone or ZONE)),
    )


def run(raw: bytes, mail_from: str, ip: str = SENDER_IP, policy: Authentication | None = None):
    message = Message(
        Envelope(mail_from, ("sortiz@example.gov",), client_ip=ip, helo="mx.sender.example"), raw, "inbound"
    )
    findings = asyncio.run((policy or rule()).check(message))
    return message, findings


def verdicts(findings):
    return [(f.action, f.reply, f.hold_queue) for f in findings[1:]]  # the first only records the results


# -- the pieces ----------------------------------------------------------------


def test_records_are_read_as_rfc7489_says():
    record = parse_record(
        "a.example", "v=DMARC1; p=quarantine; sp=none; adkim=s; aspf=r; pct=25; rua=mailto:x@a.example"
    )
    assert (record.p, record.sp, record.adkim, record.aspf, record.pct) == ("quarantine", "none", "s", "r", 25)
    assert parse_record("a.example", "v=DMARC1; p=reject").sp == "reject"  # sp defaults to p
    assert parse_record("a.example", "v=DMARC1; rua=mailto:x@a.example").p == "none"  # 6.6.3: rua but no p
    assert parse_record("a.example", "v=DMARC1; p=reject; pct=banana").pct == 100
    for bad in ("v=DMARC2; p=reject", "p=reject; v=DMARC1", "v=DMARC1; p=maybe"):
        with pytest.raises(ValueError):
            parse_record("a.example", bad)


def test_alignment_uses_the_organisational_domain_from_the_public_suffix_list():
    assert organisational_domain("mail.news.example.co.uk") == "example.co.uk"
    assert organisational_domain("a.b.example.gov") == "example.gov"
    assert aligned("mail.example.gov", "example.gov", "r") and not aligned("mail.example.gov", "example.gov", "s")
    assert aligned("Example.GOV.", "example.gov", "s")
    assert not aligned("example.co.uk", "other.co.uk", "r")  # sharing a public suffix is not alignment


async def test_the_record_is_found_at_the_domain_then_at_the_organisational_domain():
    zone = ZoneResolver(ZONE)
    record, why, lookups = await find_record(zone, "news.quarantining.example")
    assert record is not None and record.domain == "quarantining.example"
    assert [lookup.name for lookup in lookups] == ["_dmarc.news.quarantining.example", "_dmarc.quarantining.example"]
    record, why, _ = await find_record(zone, "twice.example")
    assert record is None and "2 DMARC records" in why
    record, why, _ = await find_record(zone, "nowhere.example")
    assert record is None and why == "nowhere.example publishes no DMARC record"


def test_pct_samples_which_failures_get_the_policy():
    record = parse_record("halfway.example", "v=DMARC1; p=quarantine; pct=50")
    spf = SpfResult("mailfrom", "x@halfway.example", "halfway.example", "fail", "")
    applied = [
        evaluate("halfway.example", record, "", [], spf, sample).disposition for sample in (0, 25, 49.99, 50, 75, 99.99)
    ]
    assert applied == ["quarantine"] * 3 + ["none"] * 3  # outside the sample: the next policy down
    never = parse_record("sampled.example", "v=DMARC1; p=reject; pct=0")
    assert evaluate("sampled.example", never, "", [], spf, 0).disposition == "quarantine"


def test_a_check_that_might_have_passed_but_failed_temporarily_makes_the_result_temporary():
    record = parse_record("rejecting.example", "v=DMARC1; p=reject")
    spf = SpfResult("mailfrom", "x@other.example", "other.example", "fail", "")
    unsure = DkimResult("temperror", "rejecting.example", "s1")
    assert evaluate("rejecting.example", record, "", [unsure], spf, 0).result == "temperror"
    unrelated = DkimResult("temperror", "other.example", "s1")
    assert evaluate("rejecting.example", record, "", [unrelated], spf, 0).result == "fail"


# -- through the rule --------------------------------------------------------------


def test_aligned_dkim_or_spf_passes():
    for raw, mail_from, ip in [
        (
            signed("Pat <pat@rejecting.example>", d="rejecting.example"),
            "bounces@elsewhere.example",
            OTHER_IP,
        ),  # DKIM only
        (signed("Pat <pat@rejecting.example>"), "pat@rejecting.example", SENDER_IP),  # SPF only
        (
            signed("Pat <pat@rejecting.example>", d="mail.rejecting.example"),
            "x@mail.rejecting.example",
            OTHER_IP,
        ),  # relaxed
    ]:
        message, findings = run(raw, mail_from, ip)
        found = results(message)
        assert found.dmarc.result == "pass" and from_authenticated(message) is True
        assert verdicts(findings) == []


def test_a_failure_under_p_reject_is_rejected_with_the_reason():
    raw = signed("Pat <pat@rejecting.example>", d="rejecting.example")
    message, findings = run(raw.replace(b"figures are", b"figures were"), "pat@rejecting.example", OTHER_IP)
    assert verdicts(findings) == [(Action.REJECT, "550 5.7.1", None)]
    reason = findings[1].reason
    assert "rejecting.example, whose owner publishes a DMARC policy of reject, and it failed DMARC" in reason
    assert "body hash mismatch" in reason and "SPF fail for rejecting.example" in reason
    assert results(message).dmarc.disposition == "reject" and from_authenticated(message) is False


def test_a_failure_under_p_quarantine_is_held_for_it():
    _, findings = run(signed("Pat <pat@quarantining.example>"), "pat@quarantining.example", OTHER_IP)
    assert verdicts(findings) == [(Action.HOLD, "550 5.7.1", "quarantine")]


def test_a_subdomain_without_a_record_gets_sp():
    message, findings = run(signed("News <news@news.quarantining.example>"), "news@news.quarantining.example", OTHER_IP)
    dmarc = results(message).dmarc
    assert (dmarc.record.domain, dmarc.policy) == ("quarantining.example", "reject")
    assert verdicts(findings) == [(Action.REJECT, "550 5.7.1", None)]


def test_p_none_records_the_failure_and_asks_nothing():
    message, findings = run(signed("W <w@watching.example>"), "w@watching.example", OTHER_IP)
    assert results(message).dmarc.result == "fail" and verdicts(findings) == []


def test_strict_alignment_needs_the_exact_domain():
    # DKIM by a subdomain and SPF for a subdomain: relaxed would pass, strict does not.
    raw = signed("S <s@strict.example>", d="mail.strict.example")
    zone = {**ZONE, "s1._domainkey.mail.strict.example": [("TXT", PUBLIC)]}
    message, findings = run(raw, "x@bounce.strict.example", SENDER_IP, rule(zone))
    found = results(message)
    assert found.spf.passed and found.dkim[0].passed and found.dmarc.result == "fail"
    assert "not aligned with strict.example (strict)" in found.dmarc.reason
    assert verdicts(findings) == [(Action.REJECT, "550 5.7.1", None)]


def test_pct_zero_downgrades_reject_to_quarantine():
    _, findings = run(signed("P <p@sampled.example>"), "p@sampled.example", OTHER_IP)
    assert verdicts(findings) == [(Action.HOLD, "550 5.7.1", "quarantine")]


def test_the_local_policy_decides_what_each_outcome_asks():
    raw = signed("Pat <pat@rejecting.example>")
    lenient = rule(actions={"dmarc_reject": "hold", "dmarc_quarantine": "tag", "local_domain": "reject"})
    _, findings = run(raw, "pat@rejecting.example", OTHER_IP, lenient)
    assert verdicts(findings) == [(Action.HOLD, "550 5.7.1", "quarantine")]
    watching = rule(actions={"dmarc_reject": "monitor"})
    _, findings = run(raw, "pat@rejecting.example", OTHER_IP, watching)
    assert verdicts(findings) == [(Action.DELIVER, "550 5.7.1", None)]
    exempt = rule(exempt_domains=["rejecting.example"])
    _, findings = run(raw, "pat@rejecting.example", OTHER_IP, exempt)
    assert [f.action for f in findings[1:]] == [Action.DELIVER] and "exempt" in findings[1].reason
    capped = rule(action="hold")  # the rule's ceiling caps every outcome
    _, findings = run(raw, "pat@rejecting.example", OTHER_IP, capped)
    assert verdicts(findings) == [(Action.HOLD, "550 5.7.1", "quarantine")]


def test_a_dns_failure_that_leaves_the_verdict_open_asks_the_sender_to_retry():
    message, findings = run(signed("F <f@flaky.example>"), "f@flaky.example", OTHER_IP)
    assert results(message).dmarc.result == "temperror"
    assert verdicts(findings) == [(Action.REJECT, "451 4.4.3", None)]
    assert "try again later" in findings[1].reason and "_dmarc.flaky.example" in findings[1].reason
    _, findings = run(signed("F <f@flaky.example>"), "f@flaky.example", OTHER_IP, rule(temporary_errors="deliver"))
    assert (
        verdicts(findings) == [(Action.DELIVER, None, None)]
        and "delivered with the results recorded" in findings[1].reason
    )


def test_our_own_domain_from_outside_unauthenticated_is_rejected_whatever_dmarc_says():
    # example.gov publishes p=none, and the rule still refuses an unauthenticated claim to it.
    message, findings = run(signed("Dana Whitfield <dwhitfield@example.gov>"), "dwhitfield@example.gov", OTHER_IP)
    assert results(message).dmarc.policy == "none"
    assert verdicts(findings) == [(Action.REJECT, "550 5.7.1", None)]
    assert (
        "agency's own domain (From dwhitfield@example.gov and envelope sender dwhitfield@example.gov)"
        in findings[1].reason
    )
    # only the envelope sender in our domain
    _, findings = run(signed("Pat <pat@watching.example>"), "dwhitfield@example.gov", OTHER_IP)
    assert (
        verdicts(findings) == [(Action.REJECT, "550 5.7.1", None)]
        and "envelope sender dwhitfield@example.gov" in findings[1].reason
    )
    # signed by the agency's key, or sent from its SPF-listed server: authenticated
    _, findings = run(
        signed("Dana Whitfield <dwhitfield@example.gov>", d="example.gov"), "dwhitfield@example.gov", OTHER_IP
    )
    assert verdicts(findings) == []
    _, findings = run(signed("Dana Whitfield <dwhitfield@example.gov>"), "dwhitfield@example.gov", "198.51.100.25")
    assert verdicts(findings) == []


def test_several_from_domains_are_each_checked_and_the_strictest_outcome_wins():
    raw = signed("Pat <pat@watching.example>, Quinn <q@rejecting.example>", extra="Sender: pat@watching.example\r\n")
    message, findings = run(raw, "pat@watching.example", OTHER_IP)
    assert results(message).dmarc.from_domain == "rejecting.example"
    assert verdicts(findings) == [(Action.REJECT, "550 5.7.1", None)]


def test_a_trusted_forwarder_seal_saying_dmarc_passed_is_believed():
    message = signed("Pat <pat@rejecting.example>", d="rejecting.example").replace(
        b"figures are", b"figures [list footer] are"
    )
    message = (
        b"Authentication-Results: lists.example.org; spf=pass smtp.mailfrom=pat@rejecting.example; "
        b"dkim=pass header.d=rejecting.example; dmarc=pass header.from=rejecting.example\r\n"
    ) + message
    sealed = b"".join(dkim.arc_sign(message, b"s1", b"lists.example.org", KEY, b"lists.example.org")) + message
    zone = {**ZONE, "s1._domainkey.lists.example.org": [("TXT", PUBLIC)]}
    found_message, findings = run(sealed, "list-bounces@lists.example.org", OTHER_IP, rule(zone))
    assert results(found_message).arc.result == "pass" and verdicts(findings) == [(Action.REJECT, "550 5.7.1", None)]
    _, findings = run(
        sealed, "list-bounces@lists.example.org", OTHER_IP, rule(zone, trusted_arc_sealers=["lists.example.org"])
    )
    assert [f.action for f in findings[1:]] == [Action.DELIVER] and "trusted_arc_sealers" in findings[1].reason


def test_the_results_header_names_our_authserv_id_and_each_result():
    _message, findings = run(
        signed("Pat <pat@rejecting.example>", d="rejecting.example"), "pat@rejecting.example", SENDER_IP
    )
    ((name, value),) = findings[0].add_headers
    assert name == "Authentication-Results" and authserv_id_of(value) == "gateway.test"
    assert value.startswith("gateway.test; spf=pass smtp.mailfrom=pat@rejecting.example; spf=")
    assert "dkim=pass header.d=rejecting.example header.a=rsa-sha256 header.s=s1 header.b=" in value
    assert "dmarc=pass (p=reject dis=none) header.from=rejecting.example; arc=none" in value
    assert findings[0].action == Action.DELIVER and findings[0].edit is None  # nothing to strip


def test_incoming_headers_claiming_our_authserv_id_are_stripped_and_others_kept():
    forged = (
        "Authentication-Results: gateway.test; dmarc=pass header.from=example.gov\r\n"
        'Authentication-Results: (sneaky) "GATEWAY.test"; dkim=pass\r\n'
        "Authentication-Results: mx.partner.example; spf=pass smtp.mailfrom=pat@rejecting.example\r\n"
    )
    raw = forged.encode() + signed("Pat <pat@rejecting.example>")
    _, findings = run(raw, "pat@rejecting.example", SENDER_IP)
    assert (
        "2 incoming Authentication-Results header(s) claiming this gateway (gateway.test) were removed"
        in findings[0].reason
    )
    delivered = findings[0].edit(raw)
    assert b"gateway.test" not in delivered.lower() and b"Authentication-Results: mx.partner.example;" in delivered
    assert delivered.endswith(signed("Pat <pat@rejecting.example>"))  # nothing else changed
    assert [
        authserv_id_of(v) for v in ("a.example; none", "(c) b.example 1; none", '"c.example"; none', "garbage")
    ] == ["a.example", "b.example", "c.example", "garbage"]
