"""Impersonation of staff from outside: display names, lookalike domains, Reply-To; the warning the reader sees."""

from __future__ import annotations

import email
import email.policy
import smtplib

import pytest

from milter.kernel.directory import load_directory
from milter.mail.message import Envelope, Message
from policies.auth.lookalike import find_lookalike, skeleton
from policies.base import Action
from policies.rules.impersonation import Impersonation, ImpersonationSettings, name_tokens
from tests.conftest import EXAMPLE_DIRECTORY, message_bytes
from tests.support.smtp_raw import OUTSIDE, received_records

DIRECTORY = load_directory(EXAMPLE_DIRECTORY)
OWN = ["example.gov"]


def inbound(sender: str, *, extra_headers: str = "", mail_from: str = "bounce@mailer.example") -> Message:
    raw = message_bytes(
        sender=sender, to="sortiz@example.gov", subject="Wire transfer today", extra_headers=extra_headers
    )
    return Message(Envelope(mail_from, ("sortiz@example.gov",), client_ip="203.0.113.5"), raw, "inbound")


def kinds(sender: str, rule: Impersonation | None = None, **options: str) -> list[str]:
    rule = rule or Impersonation(ImpersonationSettings(), DIRECTORY)
    return [f.reason.split("(rule impersonation, ", 1)[1].split(")")[0] for f in rule.check(inbound(sender, **options))]


# -- display names --------------------------------------------------------------------


def test_a_staff_name_on_an_outside_address_is_impersonation():
    rule = Impersonation(ImpersonationSettings(), DIRECTORY)
    (finding,) = rule.check(inbound("Dana Whitfield <dana.whitfield.director@gmail.com>"))
    assert (finding.action, finding.hold_queue) == (Action.TAG, None)
    assert finding.reason.startswith(
        'The sender\'s name "Dana Whitfield" is the name of Dana Whitfield (dwhitfield@example.gov) '
        "in the agency directory, but the message came from dana.whitfield.director@gmail.com, "
        "an address outside the agency"
    )
    assert "directory: Dana Whitfield <dwhitfield@example.gov>" in finding.evidence


def test_the_same_name_from_the_agency_is_not():
    assert kinds("Dana Whitfield <dwhitfield@example.gov>") == []
    assert kinds("Dana Whitfield <dana@mail.example.gov>") == []  # a subdomain of the agency's


@pytest.mark.parametrize(
    "display",
    [
        "DANA WHITFIELD",
        "dana whitfield",
        "Whitfield, Dana",
        "Dana  Whitfield (Director)",
        "Dr. Dana Whitfield",
        "Dána Whitfíeld",  # accents
        "Dаna Whitfield",  # a Cyrillic а
        "Dana Whitfie1d",  # a digit one for l
        "Mike Vasquenza",  # a nickname of Michael
        "Christopher Nguyen",  # the full name of Chris
        "Jane M. Doe",  # a middle initial
    ],
)
def test_names_match_ignoring_case_accents_punctuation_look_alikes_and_nicknames(display):
    assert kinds(f'"{display}" <someone@gmail.com>') == ["display name"]


@pytest.mark.parametrize(
    "display", ["Dana", "Whitfield", "Dana Smith", "Pat Whitfield", "Postmaster", "Samantha Ortega", "Lee Parker"]
)
def test_other_names_are_not_staff(display):
    assert kinds(f'"{display}" <someone@gmail.com>') == []


def test_an_agency_address_in_the_display_name_counts_too():
    assert kinds('"dwhitfield@example.gov" <evil@gmail.com>') == ["display name"]
    assert kinds('"billing@example.gov" <evil@gmail.com>') == [
        "display name"
    ]  # nobody has it, and it still claims the agency


def test_exempt_senders_and_outside_addresses_the_directory_lists_are_allowed(tmp_path):
    rule = Impersonation(
        ImpersonationSettings(exempt_senders=["dana.personal@gmail.com", "@board.cityboards.org"]), DIRECTORY
    )
    assert kinds("Dana Whitfield <dana.personal@gmail.com>", rule) == []
    assert kinds("Dana Whitfield <dana@board.cityboards.org>", rule) == []
    assert kinds("Dana Whitfield <dana.other@gmail.com>", rule) == ["display name"]


def test_the_index_holds_name_forms_not_a_loop_over_people():
    rule = Impersonation(ImpersonationSettings(), DIRECTORY)
    index = rule.index.pairs
    assert index[frozenset(name_tokens("mike vasquenza"))][0].address == "mvasquenza@example.gov"
    assert frozenset(name_tokens("dana whitfield")) in index
    assert all(len(key) == 2 for key in index)


def test_the_nickname_list_is_editable_and_checked(tmp_path):
    extra = tmp_path / "forms.txt"
    extra.write_text("# ours\ndana: dee, deedee\n")
    rule = Impersonation(ImpersonationSettings(nicknames=extra), DIRECTORY)
    assert kinds("Dee Whitfield <d@gmail.com>", rule) == ["display name"]
    bad = tmp_path / "bad.txt"
    bad.write_text("dana dee\n")
    with pytest.raises(ValueError, match="is not NAME: FORM, FORM"):
        ImpersonationSettings(nicknames=bad)


# -- lookalike domains --------------------------------------------------------------------


@pytest.mark.parametrize(
    "domain, how",
    [
        ("examp1e.gov", 'looks the same as example.gov: it uses "1" (digit one)'),
        ("exаmple.gov", 'looks the same as example.gov: it uses "а" (cyrillic small letter a)'),
        (
            "xn--exmple-4nf.gov",
            'looks the same as example.gov: it uses "а" (cyrillic small letter a)',
        ),  # the same, as punycode
        ("exarnple.gov", "looks the same as example.gov"),
        ("exmaple.gov", 'is example.gov with two letters swapped ("ma" for "am")'),
        ("exxample.gov", 'is example.gov with a doubled "x"'),
        ("exmple.gov", 'is example.gov with a missing "a"'),
        ("example.com", "is the name of example.gov under another ending"),
        ("example.gov.secure-login.net", "contains example.gov"),
        ("example-gov.com", "contains example.gov"),
    ],
)
def test_lookalikes_of_the_agency_domain_are_found_and_explained(domain, how):
    found = find_lookalike(domain, OWN)
    assert found is not None and found.own == "example.gov" and found.how.startswith(how)


@pytest.mark.parametrize(
    "domain", ["example.gov", "mail.example.gov", "gmail.com", "partner.org", "county.partner.org", "exam.gov"]
)
def test_other_domains_are_not_lookalikes(domain):
    assert find_lookalike(domain, OWN) is None


def test_skeletons_are_uts39():
    assert (
        skeleton("exаmple.gov") == skeleton("example.gov") == skeleton("EXAMPLE.GOV") == skeleton("ｅｘａｍｐｌｅ.gov")
    )
    assert skeleton("paypal") != skeleton("paypa1.") and skeleton("paypal") == skeleton("paypa1")


def test_lookalike_addresses_are_found_in_from_reply_to_and_the_envelope():
    assert kinds("Billing <billing@examp1e.gov>") == ["lookalike domain"]
    assert kinds("Pat <pat@partner.org>", mail_from="bounce@exmaple.gov") == ["lookalike domain"]
    assert kinds("Pat <pat@partner.org>", extra_headers="Reply-To: pat@exаmple.gov\r\n") == ["lookalike domain"]
    rule = Impersonation(ImpersonationSettings(trusted_domains=["example.com"]), DIRECTORY)
    assert kinds("Pat <pat@example.com>", rule) == []


def test_a_staff_name_on_a_lookalike_domain_is_both():
    assert kinds("Sam Ortiz <sortiz@examp1e.gov>") == ["display name", "lookalike domain"]


# -- Reply-To ----------------------------------------------------------------------------


def test_reply_to_outside_under_a_staff_name_is_found():
    assert kinds("Dana Whitfield <dwhitfield@example.gov>", extra_headers="Reply-To: dana.w@gmail.com\r\n") == [
        "reply to"
    ]
    assert kinds("Dana Whitfield <dwhitfield@example.gov>", extra_headers="Reply-To: lpark@example.gov\r\n") == []
    assert kinds("Pat <pat@partner.org>", extra_headers="Reply-To: billing@partner.org\r\n") == []


# -- what the reader sees -------------------------------------------------------------------


def multipart(sender: str) -> bytes:
    return (
        f"From: {sender}\r\nTo: sortiz@example.gov\r\nSubject: Wire transfer today\r\nMessage-ID: <imp@x>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n"
        "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlease wire $4,800 to the account below today.\r\n"
        "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<html><body><p>Please wire $4,800 today.</p></body></html>\r\n"
        "--b--\r\n"
    ).encode()


def test_a_tag_adds_one_banner_to_text_and_html_and_tags_the_subject_once():
    rule = Impersonation(ImpersonationSettings(), DIRECTORY)
    raw = multipart("Sam Ortiz <sortiz@examp1e.gov>")
    findings = rule.check(Message(Envelope("x@examp1e.gov", ("sortiz@example.gov",)), raw, "inbound"))
    edits = [f.edit for f in findings if f.edit is not None]
    assert len(findings) == 2 and len(edits) == 1  # two findings, one warning
    delivered = email.message_from_bytes(edits[0](raw), policy=email.policy.default)
    assert delivered["Subject"] == "[Caution: check the sender] Wire transfer today"
    plain = delivered.get_body(("plain",)).get_content()
    html = delivered.get_body(("html",)).get_content()
    assert plain.startswith(
        "CAUTION: This message claims to be from Sam Ortiz, but it was sent from sortiz@examp1e.gov"
    )
    assert "examp1e.gov is made to look like example.gov" in plain and plain.rstrip().endswith("account below today.")
    assert (
        "<strong>Caution:</strong> This message claims to be from Sam Ortiz" in html
        and "<p>Please wire $4,800 today.</p>" in html
    )
    twice = email.message_from_bytes(edits[0](edits[0](raw)), policy=email.policy.default)
    assert twice["Subject"] == "[Caution: check the sender] Wire transfer today"


def test_the_banner_escapes_what_the_sender_wrote():
    rule = Impersonation(ImpersonationSettings(), DIRECTORY)
    raw = multipart(
        '"<img src=x onerror=alert(1)> billing@example.gov" <x@gmail.com>'
    )  # the display name is quoted in the banner
    (finding,) = rule.check(Message(Envelope("x@gmail.com", ("sortiz@example.gov",)), raw, "inbound"))
    html = email.message_from_bytes(finding.edit(raw), policy=email.policy.default).get_body(("html",)).get_content()
    banner = html.split("</div>")[0]
    assert "<img" not in banner and "claims to be from &lt;img src=x onerror=alert(1)&gt; billing@example.gov" in banner


def test_kinds_can_be_monitored_held_or_switched_off():
    rule = Impersonation(
        ImpersonationSettings(actions={"display_name": "hold", "lookalike_domain": "off", "reply_to": "monitor"}),
        DIRECTORY,
    )
    findings = rule.check(inbound("Sam Ortiz <sortiz@examp1e.gov>", extra_headers="Reply-To: sam@gmail.com\r\n"))
    assert [(f.action, f.hold_queue) for f in findings] == [(Action.HOLD, "quarantine"), (Action.DELIVER, None)]
    assert findings[0].edit is not None and findings[1].edit is None


def test_inside_mail_is_not_checked():
    assert "internal" not in ImpersonationSettings().directions and "outbound" not in ImpersonationSettings().directions


# -- over real SMTP --------------------------------------------------------------------------


def test_over_smtp_the_warning_reaches_the_recipient_and_the_archive_keeps_both_versions(gateway, sink):
    raw = multipart("Dana Whitfield <dana.whitfield.director@gmail.com>")
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(OUTSIDE, 0)) as client:
        assert client.sendmail("dana.whitfield.director@gmail.com", ["sortiz@example.gov"], raw) == {}
    (received,) = sink.wait_for(1)
    delivered = email.message_from_bytes(received.data, policy=email.policy.default)
    assert delivered["Subject"] == "[Caution: check the sender] Wire transfer today"
    assert (
        delivered.get_body(("plain",))
        .get_content()
        .startswith("CAUTION: This message claims to be from Dana Whitfield")
    )
    records = received_records(gateway.runtime)
    assert [r.kind for r in records] == ["received", "delivered"]
    assert records[1].details["edited_by"] == ["impersonation"]
    assert gateway.runtime.blobs.get(records[0].blob_sha256) == raw  # the message as it came, unchanged
