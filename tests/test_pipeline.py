"""The pipeline: the most severe enforced finding wins, monitor asks nothing, failures fail closed."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from milter.config import load_config
from milter.intake.pipeline import Pipeline, decide
from milter.kernel.directory import load_directory
from milter.mail.message import Envelope, Message
from policies.base import Action, Finding
from policies.rules.size import SizeLimit
from tests.conftest import EXAMPLE_DIRECTORY, message_bytes, write_config


def make_message(rcpts=("dwhitfield@example.gov", "sortiz@example.gov"), raw: bytes | None = None) -> Message:
    envelope = Envelope("cnguyen@example.gov", tuple(rcpts), client_ip="127.0.0.2", trusted=True)
    return Message(envelope, raw or message_bytes(sender="cnguyen@example.gov"), "internal")


def finding(action: Action, mode="enforce", **extra) -> Finding:
    return Finding("test", action, f"asks {action}", mode=mode, **extra)


def test_most_severe_enforced_action_wins():
    message = make_message()
    assert decide(message, []).action == "deliver"
    assert decide(message, [finding(Action.TAG)]).action == "deliver"
    assert decide(message, [finding(Action.TAG), finding(Action.HOLD, hold_queue="quarantine")]).action == "hold"
    rejected = decide(message, [finding(Action.HOLD, hold_queue="approval"), finding(Action.REJECT, reply="552 5.3.4")])
    assert rejected.action == "reject"
    assert rejected.reply == "552 5.3.4 asks reject"


def test_monitor_findings_are_recorded_but_ask_for_nothing():
    decision = decide(make_message(), [finding(Action.REJECT, mode="monitor")])
    assert decision.action == "deliver"
    assert [f.mode for f in decision.findings] == ["monitor"]


def test_a_hold_for_some_recipients_delivers_to_the_others():
    decision = decide(
        make_message(), [finding(Action.HOLD, hold_queue="quarantine", recipients=frozenset({"sortiz@example.gov"}))]
    )
    assert decision.action == "hold"
    assert decision.deliver_to == ["dwhitfield@example.gov"]
    assert decision.held_for("quarantine") == ["sortiz@example.gov"]
    assert decision.held_for("approval") == []


def test_tags_add_headers_and_the_reject_reply_is_the_rules_reason():
    decision = decide(make_message(), [finding(Action.TAG, add_headers=(("X-Test", "yes"),))])
    assert ("X-Test", "yes") in decision.add_headers
    assert any(name == "X-AUP-Milter-Tag" and value.startswith("test: ") for name, value in decision.add_headers)


@pytest.fixture
def config(tmp_path):
    return load_config(
        write_config(tmp_path, "sqlite:///:memory:", "maildir:/tmp/unused", {"pipeline": {"rule_timeout": "0.3s"}})
    )


def run(config, message, timings: list[float] | None = None):
    with ThreadPoolExecutor(4) as executor:
        pipeline = Pipeline(config, load_directory(EXAMPLE_DIRECTORY), executor=executor)
        started = time.monotonic()
        decision = asyncio.run(pipeline.run(message))
        if timings is not None:
            timings.append(time.monotonic() - started)
        return decision


def test_a_rule_that_raises_tempfails_the_message(config, monkeypatch):
    def broken(self, message):
        raise RuntimeError("boom")

    monkeypatch.setattr(SizeLimit, "check", broken)
    decision = run(config, make_message())
    assert decision.action == "tempfail"
    assert decision.reply.startswith("451 4.3.0")
    assert "size" in (decision.error or "") and "boom" in (decision.error or "")


def test_a_rule_that_overruns_its_budget_tempfails_the_message(config, monkeypatch):
    def slow(self, message):
        time.sleep(1.0)
        return []

    monkeypatch.setattr(SizeLimit, "check", slow)
    timings: list[float] = []
    decision = run(config, make_message(), timings)
    assert decision.action == "tempfail"
    assert "did not finish within 0.3s" in (decision.error or "")
    assert timings[0] < 0.9  # the reply does not wait for the slow rule


def test_a_monitoring_rule_that_fails_is_noted_and_does_not_block(tmp_path, monkeypatch):
    config = load_config(
        write_config(tmp_path, "sqlite:///:memory:", "maildir:/tmp/unused", {"policies": {"size": {"mode": "monitor"}}})
    )
    monkeypatch.setattr(SizeLimit, "check", lambda self, message: 1 / 0)
    decision = run(config, make_message())
    assert decision.action == "deliver"
    assert [(f.policy, f.mode, f.evidence) for f in decision.findings] == [("size", "monitor", ("rule error",))]


def test_rules_that_are_off_do_not_run_and_directions_limit_a_rule(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(SizeLimit, "check", lambda self, message: calls.append(message.direction) or [])
    off = load_config(
        write_config(
            tmp_path / "a", "sqlite:///:memory:", "maildir:/tmp/unused", {"policies": {"size": {"mode": "off"}}}
        )
    )
    run(off, make_message())
    outbound_only = load_config(
        write_config(
            tmp_path / "b",
            "sqlite:///:memory:",
            "maildir:/tmp/unused",
            {"policies": {"size": {"directions": ["outbound"]}}},
        )
    )
    run(outbound_only, make_message())
    assert calls == []
    outbound = Message(
        Envelope("cnguyen@example.gov", ("someone@gmail.com",), trusted=True), message_bytes(), "outbound"
    )
    run(outbound_only, outbound)
    assert calls == ["outbound"]


def test_an_async_rule_is_awaited_with_the_same_time_budget(config, monkeypatch):
    async def waits_on_dns(self, message):
        await asyncio.sleep(5)
        return []

    monkeypatch.setattr(SizeLimit, "check", waits_on_dns)
    timings: list[float] = []
    decision = run(config, make_message(), timings)
    assert decision.action == "tempfail" and "did not finish within 0.3s" in (decision.error or "")
    assert timings[0] < 1.0

    async def answers(self, message):
        return [self.finding("async finding", action="reject")]

    monkeypatch.setattr(SizeLimit, "check", answers)
    assert run(config, make_message()).action == "reject"
