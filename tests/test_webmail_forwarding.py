"""Forwarding to personal webmail: each sign of an automatic forward, and the mail that must still go through."""

from __future__ import annotations

import pytest

from milter.kernel.directory import load_directory
from milter.mail.message import Envelope, Message, normalise_line_endings
from policies.base import Action
from policies.rules.webmail_forwarding import WebmailForwarding, WebmailForwardingSettings
from tests.conftest import EXAMPLE_DIRECTORY, message_bytes

DIRECTORY = load_directory(EXAMPLE_DIRECTORY)


def outbound(
    extra_headers: str = "",
    sender: str = "sortiz@example.gov",
    mail_from: str = "sortiz@example.gov",
    rcpts: tuple[str, ...] = ("sam.ortiz.home@gmail.com",),
    subject: str = "Budget numbers",
    body: str = "See below.\r\n",
) -> Message:
    raw, _ = normalise_line_endings(
        message_bytes(sender=sender, to=", ".join(rcpts), subject=subject, body=body, extra_headers=extra_headers)
    )
    return Message(Envelope(mail_from, rcpts, client_ip="127.0.0.2", trusted=True), raw, "outbound")


def rule(**settings: object) -> WebmailForwarding:
    return WebmailForwarding(WebmailForwardingSettings.model_validate(settings), DIRECTORY)


@pytest.mark.parametrize(
    ("headers", "sender", "sign"),
    [
        ("Auto-Submitted: auto-forwarded\r\n", "sortiz@example.gov", '"Auto-Submitted: auto-forwarded"'),
        (
            "X-MS-Exchange-Inbox-Rules-Loop: sortiz@example.gov\r\n",
            "sortiz@example.gov",
            "X-MS-Exchange-Inbox-Rules-Loop: sortiz@example.gov",
        ),
        (
            "X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent\r\n",
            "sortiz@example.gov",
            "Mailbox Rules Agent",
        ),
        (
            "Resent-From: sortiz@example.gov\r\nResent-To: sam.ortiz.home@gmail.com\r\n",
            "vendor@supplier.example.com",
            '"Resent-From: sortiz@example.gov"',
        ),
        (
            "X-Forwarded-To: sam.ortiz.home@gmail.com\r\nX-Forwarded-For: sortiz@example.gov sam.ortiz.home@gmail.com\r\n",
            "sortiz@example.gov",
            '"X-Forwarded-To: sam.ortiz.home@gmail.com"',
        ),
        (
            "",
            "vendor@supplier.example.com",
            "envelope sender <sortiz@example.gov> is in the agency but From is vendor@supplier.example.com",
        ),
    ],
)
def test_an_automatic_forward_to_webmail_is_rejected_naming_the_sign(headers, sender, sign):
    [finding] = rule().check(outbound(headers, sender=sender))
    assert finding.action == Action.REJECT and finding.reply == "550 5.7.1"
    assert sign in finding.reason and "sam.ortiz.home@gmail.com" in finding.reason
    assert "personal webmail" in finding.reason and "(rule webmail_forwarding)" in finding.reason
    assert "Remove the forwarding rule" in finding.reason  # what to do next


def test_auto_generated_counts_only_on_a_message_that_is_itself_a_forward():
    notice = outbound(
        "Auto-Submitted: auto-generated\r\n",
        sender="permits@example.gov",
        mail_from="permits@example.gov",
        rcpts=("resident@gmail.com",),
        subject="Your permit was approved",
    )
    assert rule().check(notice) == []  # the agency's own systems notify residents at Gmail
    forward = outbound("Auto-Submitted: auto-generated\r\n", subject="FW: Budget numbers")
    [finding] = rule().check(forward)
    assert '"Auto-Submitted: auto-generated" on a forwarded message' in finding.reason
    block = outbound(
        "Auto-Submitted: auto-generated\r\n",
        body="---------- Forwarded message ---------\r\nFrom: x@y.example\r\n\r\nHi\r\n",
    )
    assert len(rule().check(block)) == 1


@pytest.mark.parametrize(
    "message",
    [
        outbound(),  # a person writing to a Gmail address
        outbound(
            subject="FW: Budget numbers", body="-----Original Message-----\r\nsee below\r\n"
        ),  # a person forwarding by hand
        outbound(
            "Auto-Submitted: auto-forwarded\r\n", rcpts=("partner@county.example.org",)
        ),  # forwarded, but not to webmail
        outbound("Auto-Submitted: auto-replied\r\n"),  # an out-of-office reply
        outbound(
            "List-Id: <notices.example.gov>\r\n", sender="resident@yahoo.com"
        ),  # an agency mailing list passing a post on
        outbound(rcpts=("someone@notgmail.com",), sender="vendor@supplier.example.com"),
    ],
    ids=["ordinary", "forwarded-by-hand", "not-webmail", "auto-replied", "mailing-list", "lookalike-domain"],
)
def test_mail_that_is_not_an_automatic_forward_to_webmail_goes_through(message):
    assert rule().check(message) == []


def test_webmail_domains_subdomains_exempt_senders_and_an_own_list(tmp_path):
    assert (
        rule().is_webmail("a@googlemail.com")
        and rule().is_webmail("b@mail.yahoo.com")
        and rule().is_webmail("c@PROTON.ME")
    )
    assert not rule().is_webmail("d@example.gov") and not rule().is_webmail("e@gmail.com.example.net")
    forward = outbound("Auto-Submitted: auto-forwarded\r\n")
    assert rule(exempt_senders=["SOrtiz@example.gov"]).check(forward) == []
    own = tmp_path / "webmail.txt"
    own.write_text("# ours\nfreemail.example\n")
    assert rule(domains=own).check(forward) == []
    assert (
        len(rule(domains=own).check(outbound("Auto-Submitted: auto-forwarded\r\n", rcpts=("me@freemail.example",))))
        == 1
    )
    assert [f.action for f in rule(action="hold").check(forward)] == [Action.HOLD]
