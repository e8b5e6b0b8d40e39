"""The first rules through the real Pipeline and config: size, anonymous_sender, inspection, and monitor mode."""

from __future__ import annotations

import asyncio
import base64
import zipfile
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from email.message import EmailMessage
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest

from milter.config import load_config
from milter.intake.pipeline import Decision, Pipeline
from milter.kernel.directory import load_directory
from milter.mail.message import Direction, Envelope, Message, normalise_line_endings
from tests.conftest import write_config
from tests.test_archives import zipcrypto_zip
from tests.test_message import nested_multiparts

Check = Callable[..., tuple[Decision, Message]]


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    with ThreadPoolExecutor(4) as pool:
        yield pool


@pytest.fixture
def check(tmp_path: Path, executor: ThreadPoolExecutor) -> Callable[..., Check]:
    """Build a Pipeline from a real config file (with `policies` overrides) and return a checker."""

    def configured(policies: dict[str, Any] | None = None) -> Check:
        path = write_config(
            tmp_path / "cfg",
            f"sqlite:///{tmp_path / 'aup.db'}",
            f"maildir:{tmp_path / 'out'}",
            {"policies": policies or {}},
        )
        config = load_config(path)
        pipeline = Pipeline(config, load_directory(config.directory_path), executor=executor)

        def run(
            raw: bytes, direction: Direction = "inbound", rcpt: tuple[str, ...] = ("dwhitfield@example.gov",)
        ) -> tuple[Decision, Message]:
            data, _ = normalise_line_endings(raw)
            message = Message(Envelope("x@example.com", rcpt), data, direction, config.settings.limits)
            return asyncio.run(pipeline.run(message)), message

        return run

    return configured


def mail(from_line: str | None = "Ana Lopez <alopez@city.gov>", extra: str = "", body: str = "Hello.\r\n") -> bytes:
    head = "" if from_line is None else f"From: {from_line}\r\n"
    return f"{head}To: dwhitfield@example.gov\r\nSubject: hi\r\n{extra}\r\n{body}".encode()


def findings_of(decision: Decision, policy: str) -> list[Any]:
    return [f for f in decision.findings if f.policy == policy]


# -- size -------------------------------------------------------------------------


def test_size_limits_are_per_direction_and_a_reject_says_what_to_do(check):
    run = check({"size": {"max_bytes": {"inbound": "1MiB", "outbound": "4MiB", "internal": "3MiB"}}})
    big = mail(body="x" * (2 << 20) + "\r\n")
    decision, _ = run(big, "inbound")
    assert decision.action == "reject"
    assert decision.reply == (
        "552 5.3.4 The message is 2.0 MB; the limit for mail into the agency is 1.0 MB. "
        "Share large files through the agency's file-sharing service instead, or split them over several messages."
    )
    assert [f.evidence for f in findings_of(decision, "size")] == [(f"size={len(big)}", f"limit={1 << 20}")]
    for direction in ("outbound", "internal"):
        assert run(big, direction)[0].action == "deliver"
    bigger = mail(body="x" * (5 << 20) + "\r\n")
    assert "the limit for mail leaving the agency is 4.0 MB" in run(bigger, "outbound")[0].reply
    assert "the limit for mail within the agency is 3.0 MB" in run(bigger, "internal")[0].reply


def test_a_message_just_over_the_limit_is_not_shown_as_equal_to_it(check):
    run = check({"size": {"max_bytes": {"inbound": "1MiB"}}})
    raw = mail(body="y" * (1024 * 1024) + "\r\n")
    reason = findings_of(run(raw)[0], "size")[0].reason
    assert f"The message is {len(raw):,} bytes; the limit for mail into the agency is 1,048,576 bytes." in reason


def test_a_message_at_the_limit_is_accepted(check):
    raw = mail(body="z" * 1500 + "\r\n")
    run = check({"size": {"max_bytes": {"inbound": len(raw)}}})
    assert run(raw)[0].action == "deliver"


# -- anonymous sender ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("from_line", "extra", "words"),
    [
        (None, "", "has no From header"),
        ("", "", "names no address"),
        ("undisclosed-recipients:;", "", "names no address"),
        ("Some Person", "", "is not a complete address"),
        ("anonymous@city.gov", "", "hides who sent the message"),
        ("Tip Line <Anonymous+tips@city.gov>", "", "hides who sent the message"),
        ("nobody@city.gov", "", "hides who sent the message"),
        ("Real Name <real@mail.invalid>", "", "cannot receive mail (mail.invalid)"),
        ("x@localhost", "", "cannot receive mail (localhost)"),
        ("a@city.gov, b@city.gov", "", "lists 2 authors but no Sender"),
        ("a@city.gov", "From: b@city.gov\r\n", "has 2 From headers"),
        ("user@nodot", "", "is not a complete address"),
        ('"', "", "names no address"),  # the email package itself crashes on this From
    ],
)
def test_anonymous_senders_are_held_with_a_reason(check, from_line, extra, words):
    decision, _ = check()(mail(from_line, extra))
    found = findings_of(decision, "anonymous_sender")
    assert len(found) == 1 and words in found[0].reason, found
    assert "Send it again from your own mailbox" in found[0].reason
    assert decision.action == "hold" and decision.hold_queue == "quarantine"


@pytest.mark.parametrize(
    "from_line",
    [
        "Nobody Knows <nk@city.gov>",
        "noreply@city.gov",
        "no-reply@notifications.example.com",
        "Anonymous Alcoholics <info@aa.org>",
        "=?utf-8?q?Ren=C3=A9e_Unknown?= <rvalois@city.gov>",
        "hidden.valley@parks.gov",
        "a@city.gov, b@city.gov",
    ],
)
def test_ordinary_senders_are_not_anonymous(check, from_line):
    extra = "Sender: a@city.gov\r\n" if "," in from_line else ""
    decision, _ = check()(mail(from_line, extra))
    assert findings_of(decision, "anonymous_sender") == []
    assert decision.action == "deliver"


# -- inspection -------------------------------------------------------------------------


def broken_zip_mail() -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"] = "Ana Lopez <alopez@city.gov>", "dwhitfield@example.gov"
    msg.set_content("files")
    zipped = BytesIO()
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("a.txt", "hello " * 200)
    msg.add_attachment(zipped.getvalue()[:-40], maintype="application", subtype="zip", filename="broken.zip")
    return msg.as_bytes()


def encrypted_zip_mail() -> bytes:
    msg = EmailMessage()
    msg["From"], msg["To"] = "Ana Lopez <alopez@city.gov>", "dwhitfield@example.gov"
    msg.set_content("files")
    msg.add_attachment(
        zipcrypto_zip("ssn.csv", b"123-45-6789", b"pw"), maintype="application", subtype="zip", filename="secure.zip"
    )
    return msg.as_bytes()


INSPECTION_HOLDS = {
    "malformed": (
        mail(
            extra="Content-Type: multipart/mixed; boundary=X\r\n",
            body="--X\r\nContent-Type: text/plain\r\n\r\nno end\r\n",
        ),
        "malformed: message: CloseBoundaryNotFoundDefect",
    ),
    "cap": (nested_multiparts(25).replace(b"a@example.gov", b"alopez@city.gov"), "cap: "),
    "corrupt": (broken_zip_mail(), "corrupt: 2/broken.zip: broken.zip: not a readable ZIP"),
}


@pytest.mark.parametrize("name", INSPECTION_HOLDS)
def test_inspection_holds_what_could_not_be_inspected(check, name):
    raw, evidence = INSPECTION_HOLDS[name]
    decision, _ = check()(raw)
    found = findings_of(decision, "inspection")
    assert len(found) == 1
    assert any(item.startswith(evidence) for item in found[0].evidence), found[0].evidence
    assert found[0].reason.startswith("The gateway could not fully inspect this message, so IT will look at it")
    assert (decision.action, decision.hold_queue) == ("hold", "quarantine")


def test_inspection_does_not_hold_for_cosmetic_defects_or_encryption(check):
    unpadded = base64.b64encode(b"abcd").decode().rstrip("=")  # the data is all there; only the padding is missing
    cosmetic = mail(
        extra="Content-Type: multipart/mixed; boundary=X\r\n",
        body=f"--X\r\nContent-Type: application/octet-stream; name=a.bin\r\nContent-Transfer-Encoding: base64\r\n\r\n{unpadded}\r\n--X--\r\n",
    )
    decision, message = check()(cosmetic)
    assert {p.kind for p in message.problems} == {"defect"}
    assert decision.action == "deliver" and findings_of(decision, "inspection") == []

    decision, message = check()(encrypted_zip_mail())
    assert {p.kind for p in message.problems} == {"encrypted"}
    assert decision.action == "deliver"


def test_inspection_kinds_are_configurable(check):
    decision, _ = check({"inspection": {"kinds": ["encrypted"]}})(encrypted_zip_mail())
    assert decision.action == "hold"
    assert findings_of(decision, "inspection")[0].evidence == (
        "encrypted: 2/secure.zip/ssn.csv: ssn.csv: encrypted; its contents cannot be inspected",
    )


def test_inspection_finds_archive_problems_even_when_no_other_rule_looked_inside(check):
    decision, message = check()(broken_zip_mail())
    assert "archive_members" in message.__dict__  # computed by inspection itself, once
    assert decision.action == "hold"


# -- monitor mode ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("policies", "raw", "rule"),
    [
        ({"anonymous_sender": {"mode": "monitor"}}, mail("anonymous@city.gov"), "anonymous_sender"),
        ({"size": {"mode": "monitor", "max_bytes": {"inbound": "1KiB"}}}, mail(body="q" * 2000), "size"),
        ({"inspection": {"mode": "monitor"}}, broken_zip_mail(), "inspection"),
    ],
)
def test_monitor_mode_records_the_finding_without_changing_the_action(check, policies, raw, rule):
    decision, _ = check(policies)(raw)
    found = findings_of(decision, rule)
    assert len(found) == 1 and found[0].mode == "monitor"
    assert (decision.action, decision.reply) == ("deliver", "250 2.0.0 Ok: queued")
    assert decision.deliver_to == ["dwhitfield@example.gov"]


def test_a_rule_turned_off_finds_nothing(check):
    decision, _ = check({"anonymous_sender": {"mode": "off"}})(mail("anonymous@city.gov"))
    assert findings_of(decision, "anonymous_sender") == [] and decision.action == "deliver"
