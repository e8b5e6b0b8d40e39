"""The broadcast rule: what counts as a broadcast, who may send one freely, and its config errors.

Messages are built as the relay builds them, checked against the shipped
example directory and the shipped [policies.broadcast] settings.
"""

from __future__ import annotations

import dataclasses
import time

import pytest

from milter.config import load_config
from milter.intake.direction import direction_of
from milter.kernel.directory import Directory, Group, load_directory
from milter.kernel.settings import ConfigError
from milter.mail.message import Envelope, Message
from policies.base import Action
from policies.rules.broadcast import Broadcast, BroadcastSettings, reach_of
from tests.conftest import EXAMPLE_DIRECTORY, ROOT, message_bytes, write_config

SHIPPED = load_config(ROOT / "config" / "aup-milter.toml")
DIRECTORY = load_directory(EXAMPLE_DIRECTORY)
PEOPLE = [f"clerk{n}@example.gov" for n in range(60)]  # local addresses the directory does not list: one person each


def message(
    rcpts: list[str],
    sender: str = "sortiz@example.gov",
    mail_from: str | None = None,
    body: str = "Just a note.\r\n",
    subject: str = "Hello",
    trusted: bool = True,
    auth_user: str | None = None,
) -> Message:
    envelope = Envelope(
        mail_from=sender if mail_from is None else mail_from,
        rcpt_to=tuple(rcpts),
        client_ip="127.0.0.2" if trusted else "203.0.113.9",
        trusted=trusted,
        auth_user=auth_user,
    )
    raw = message_bytes(sender=sender, to=", ".join(rcpts[:3]), subject=subject, body=body)
    return Message(envelope, raw, direction_of(envelope, DIRECTORY))


def rule(directory: Directory = DIRECTORY, **settings: object) -> Broadcast:
    base = SHIPPED.policies["broadcast"].model_dump()
    return Broadcast(BroadcastSettings.model_validate({**base, **settings}), directory)


def check(item: Message, policy: Broadcast | None = None) -> list:  # type: ignore[type-arg]
    policy = policy or rule()
    return policy.check(item) if policy.applies_to(item) else []


def test_sam_to_all_staff_is_held_for_approval_and_the_reason_names_dana():
    [finding] = check(message(["all-staff@example.gov"]))
    assert (finding.policy, finding.action, finding.hold_queue) == ("broadcast", Action.HOLD, "approval")
    assert finding.evidence == ("broadcast group: all-staff@example.gov (450 people)",)
    assert (
        "All Staff (all-staff@example.gov)" in finding.reason
        and "Dana Whitfield (Director of Public Works) or a delegate" in finding.reason
    )


@pytest.mark.parametrize(
    "sender", ["cnguyen@example.gov", "dwhitfield@example.gov", "mvasquenza@example.gov", "jdoe@example.gov"]
)
def test_department_heads_leadership_and_it_staff_broadcast_freely(sender):
    assert check(message(["all-staff@example.gov"], sender=sender)) == []


@pytest.mark.parametrize(
    ("sender", "mail_from", "auth_user"),
    [
        ("cnguyen@example.gov", "sortiz@example.gov", None),  # IT staff's name on Sam's envelope
        ("sortiz@example.gov", "cnguyen@example.gov", None),
        ("cnguyen@example.gov", "cnguyen@example.gov", "sortiz@example.gov"),  # Sam logged in, writing as Chris
    ],
)
def test_an_allowed_name_on_a_message_someone_else_sends_does_not_pass(sender, mail_from, auth_user):
    [finding] = check(message(["all-staff@example.gov"], sender=sender, mail_from=mail_from, auth_user=auth_user))
    assert finding.hold_queue == "approval"


def test_more_internal_recipients_than_the_threshold_is_a_broadcast_and_people_count_once():
    assert check(message(PEOPLE[:50])) == []
    [finding] = check(message(PEOPLE[:51]))
    assert finding.evidence == ("internal recipients: 51 (threshold 50)",)
    # The team's three members count as people: 3 + 48 others is 51; Lee listed again still counts once.
    assert reach_of(["public-works-team@example.gov", *PEOPLE[:48]], DIRECTORY).count == 51
    assert len(check(message(["public-works-team@example.gov", *PEOPLE[:48]]))) == 1
    assert reach_of(["public-works-team@example.gov", "LPark@example.gov", *PEOPLE[:47]], DIRECTORY).count == 50
    assert check(message(["public-works-team@example.gov", "lpark@example.gov", *PEOPLE[:47]])) == []
    # Outside recipients do not count.
    assert check(message([*PEOPLE[:50], *[f"p{n}@county.org" for n in range(30)]])) == []
    assert len(check(message(PEOPLE[:11]), rule(threshold=10))) == 1


def test_a_group_counts_by_its_size_when_the_directory_knows_only_that():
    supervisors = Group("supervisors@example.gov", "Supervisors", broadcast=False, size=75, members=())
    directory = dataclasses.replace(DIRECTORY, groups={**DIRECTORY.groups, supervisors.address: supervisors})
    [finding] = check(message(["supervisors@example.gov"]), rule(directory))
    assert finding.evidence == ("internal recipients: 75 (threshold 50)",)


def test_a_charity_request_to_many_colleagues_needs_approval_but_not_to_a_few():
    charity = (
        "Our team is collecting donations for the county food bank.\r\nPlease donate to the canned food drive!\r\n"
    )
    [finding] = check(message(PEOPLE[:12], body=charity, subject="Food drive"))
    assert "asks 12 colleagues to support a charitable cause" in finding.reason
    assert any(item.startswith('charity: "collecting donations for"') for item in finding.evidence)
    assert check(message(PEOPLE[:5], body=charity)) == []
    assert check(message(PEOPLE[:12], body="The budget meeting moved to Thursday at 10.\r\n")) == []
    assert check(message(PEOPLE[:12], body="Facilities will donate the old chairs to the high school.\r\n")) == []


def test_exempt_senders_and_domains_pass():
    assert (
        check(message(["all-staff@example.gov"], sender="oem@example.gov"), rule(exempt_senders=["OEM@example.gov"]))
        == []
    )
    assert (
        check(message(["all-staff@example.gov"], sender="oem@example.gov"), rule(exempt_senders=["@example.gov"])) == []
    )
    [held] = check(
        message(["all-staff@example.gov"], sender="hr@example.gov"), rule(exempt_senders=["oem@example.gov"])
    )
    assert "no department head is on file for the sender" in held.reason


def test_mail_from_outside_is_not_a_broadcast_even_with_a_local_from():
    forged = message(["all-staff@example.gov"], trusted=False)
    assert forged.direction == "inbound"
    assert check(forged) == [] and rule(directions=["inbound", "internal", "outbound"]).check(forged) == []


def test_left_out_the_rule_is_off_and_the_shipped_file_enforces():
    assert BroadcastSettings().mode == "off"
    assert SHIPPED.policies["broadcast"].mode == "enforce"
    assert SHIPPED.settings.approvals.fallback_approvers == ["mvasquenza@example.gov"]


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        (
            {"policies": {"broadcast": {"allowed_roles": ["boss"]}}},
            "policies.broadcast.allowed_roles",
            "unknown role 'boss'",
        ),
        ({"policies": {"broadcast": {"threshold": 0}}}, "policies.broadcast.threshold", "greater than or equal to 1"),
        (
            {"policies": {"broadcast": {"action": "reject"}}},
            "policies.broadcast.action",
            "a broadcast always waits for approval",
        ),
        (
            {"approvals": {"fallback_approvers": ["cio"]}},
            "approvals.fallback_approvers",
            "'cio' is not an email address",
        ),
        ({"approvals": {"timezone": "Mars/Olympus"}}, "approvals.timezone", "not a known time zone"),
        ({"approvals": {"remind_after": 12}}, "approvals", "fewer business days than expire_after"),
        ({"approvals": {"token_lifetime": "10m"}}, "approvals.token_lifetime", 'at least "1h"'),
        ({"approvals": {"remind_days": 1}}, "approvals.remind_days", "did you mean 'remind_after'?"),
    ],
)
def test_config_mistakes_name_the_key_and_the_fix(tmp_path, extra, key, words):
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'aup.db'}", "maildir:/tmp/unused", extra)
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert error.value.key == key and words in str(error.value), str(error.value)


def test_ordinary_mail_costs_the_rule_almost_nothing():
    """Cheap filter first: a 10 KB message to one colleague is decided from the envelope alone."""
    body = "The quarterly report is attached to the shared drive. " * 190 + "\r\n"
    items = [message(["dwhitfield@example.gov"], body=body) for _ in range(200)]
    policy = rule()
    started = time.process_time()
    for item in items:
        assert policy.check(item) == []
    per_message_ms = (time.process_time() - started) * 1000 / len(items)
    assert per_message_ms < 1.0, per_message_ms
