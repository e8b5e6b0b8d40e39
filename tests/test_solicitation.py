"""Solicitation: political campaigning, selling, fundraising, union business, and the exceptions the config names."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import pytest

from milter.config import load_config
from milter.intake.pipeline import Pipeline
from milter.kernel.directory import load_directory
from milter.kernel.settings import ConfigError
from milter.mail.message import Envelope, Message, normalise_line_endings
from policies.base import Action
from policies.rules.solicitation import Solicitation, SolicitationSettings
from tests.conftest import EXAMPLE_DIRECTORY, message_bytes, write_config

DIRECTORY = load_directory(EXAMPLE_DIRECTORY)

SAMPLES = {
    "political": (
        "Please vote for Maria Chen on Tuesday! Re-elect the mayor who fixed our roads. Campaign yard signs are at my desk, "
        "and you can volunteer for her campaign on Saturday. Paid for by Friends of Chen."
    ),
    "commercial": (
        "I'm selling my 2015 Honda Civic, great condition, asking price $9,500 or best offer. Also my Tupperware party "
        "catalog is here; use discount code TOWN10. Cash or Venmo accepted."
    ),
    "fundraising": (
        "My daughter is selling Girl Scout cookies for her troop fundraiser! Would you sponsor me in the charity walk "
        "next month? Every dollar helps, and it is tax deductible."
    ),
    "union": (
        "Reminder: union meeting Thursday at 5 in the union hall. Local 1203 will discuss the contract ratification vote and "
        "the grievance procedure. Talk to your shop steward about union dues."
    ),
}


def message(
    body: str,
    sender: str = "sortiz@example.gov",
    rcpts: tuple[str, ...] = ("all-staff@example.gov",),
    subject: str = "hello",
    direction: str = "internal",
) -> Message:
    raw, _ = normalise_line_endings(
        message_bytes(sender=sender, to=", ".join(rcpts), subject=subject, body=body + "\r\n")
    )
    return Message(Envelope(sender, rcpts, client_ip="127.0.0.2", trusted=True), raw, direction)  # type: ignore[arg-type]


def rule(**settings: object) -> Solicitation:
    return Solicitation(Solicitation.Settings.model_validate({"mode": "enforce", **settings}), DIRECTORY)


@pytest.mark.parametrize("category", list(SAMPLES))
def test_each_category_is_found_and_quoted(category):
    [finding] = rule().check(message(SAMPLES[category]))
    assert finding.action == Action.HOLD
    assert f"(rule solicitation, {category})" in finding.reason
    assert len(finding.evidence) >= 2 and all(item.startswith(f'{category}: "') for item in finding.evidence)
    quoted = [item.split('"')[1] for item in finding.evidence]
    assert all(f'"{quote}"' in finding.reason for quote in quoted[:5])


def test_one_cue_is_not_enough_and_min_cues_is_configurable():
    body = "Please vote for the best chili in the cook-off on Friday."
    assert rule().check(message(body)) == []
    assert [f.action for f in rule(min_cues=1).check(message(body))] == [Action.HOLD]


def test_ordinary_mail_has_no_solicitation():
    body = (
        "The council will vote on the road salt contract on Tuesday. Please send the draft budget to Purchasing, "
        "and remind your staff that the United Way campaign ends Friday."
    )
    assert rule().check(message(body)) == []


def test_a_union_official_writing_to_human_resources_is_allowed_and_recorded():
    official = {
        "categories": ["union"],
        "senders": ["lpark@example.gov"],
        "recipients": ["hr@example.gov", "@hr.example.gov"],
        "note": "union officials may write to Human Resources",
    }
    allowed = rule(exceptions=[official]).check(
        message(SAMPLES["union"], sender="lpark@example.gov", rcpts=("hr@example.gov",))
    )
    assert [f.action for f in allowed] == [
        Action.DELIVER
    ] and "union officials may write to Human Resources" in allowed[0].reason
    to_everyone = rule(exceptions=[official]).check(
        message(SAMPLES["union"], sender="lpark@example.gov", rcpts=("hr@example.gov", "all-staff@example.gov"))
    )
    assert [f.action for f in to_everyone] == [Action.HOLD]  # every recipient must be listed
    someone_else = rule(exceptions=[official]).check(
        message(SAMPLES["union"], sender="sortiz@example.gov", rcpts=("hr@example.gov",))
    )
    assert [f.action for f in someone_else] == [Action.HOLD]
    other_category = rule(exceptions=[official]).check(
        message(SAMPLES["commercial"], sender="lpark@example.gov", rcpts=("hr@example.gov",))
    )
    assert [f.action for f in other_category] == [Action.HOLD]


def test_an_approved_charity_drive_is_allowed_by_its_name():
    drive = {
        "categories": ["fundraising"],
        "phrases": ["United Way Workplace Campaign"],
        "note": "the approved charity drive",
    }
    body = "The United Way workplace campaign starts today. Please donate if you can: every dollar helps, and it is tax deductible."
    assert [f.action for f in rule(exceptions=[drive]).check(message(body))] == [Action.DELIVER]
    assert [f.action for f in rule(exceptions=[drive]).check(message(SAMPLES["fundraising"]))] == [Action.HOLD]


def test_actions_per_category_and_an_exception_needs_a_condition(tmp_path):
    found = rule(actions={"political": "off", "commercial": "monitor", "union": "reject"}, action="reject").check(
        message(SAMPLES["political"] + " " + SAMPLES["commercial"] + " " + SAMPLES["union"])
    )
    assert {f.evidence[0].split(":")[0]: f.action for f in found} == {
        "commercial": Action.DELIVER,
        "union": Action.REJECT,
    }
    path = write_config(
        tmp_path / "cfg",
        f"sqlite:///{tmp_path / 'a.db'}",
        f"maildir:{tmp_path / 'out'}",
        {"policies": {"solicitation": {"exceptions": [{"categories": ["union"], "note": "everyone"}]}}},
    )
    with pytest.raises(ConfigError, match="would allow everything"):
        load_config(path)


def test_the_shipped_config_monitors_it_and_leaves_inbound_mail_alone(tmp_path):
    config = load_config(
        write_config(tmp_path / "cfg", f"sqlite:///{tmp_path / 'a.db'}", f"maildir:{tmp_path / 'out'}")
    )
    assert (
        config.policies["solicitation"].mode == "monitor" == load_config().policies["solicitation"].mode
    )  # also the shipped file
    with ThreadPoolExecutor(2) as executor:
        pipeline = Pipeline(config, DIRECTORY, executor=executor)
        internal = asyncio.run(pipeline.run(message(SAMPLES["union"])))
        inbound = asyncio.run(
            pipeline.run(
                message(
                    SAMPLES["commercial"],
                    sender="shop@store.example.com",
                    rcpts=("sortiz@example.gov",),
                    direction="inbound",
                )
            )
        )
    assert internal.action == "deliver"
    assert [(f.policy, f.mode, f.action) for f in internal.findings] == [("solicitation", "monitor", Action.HOLD)]
    assert [f.policy for f in inbound.findings if f.policy == "solicitation"] == []
    assert SolicitationSettings().directions == ["internal", "outbound"]
