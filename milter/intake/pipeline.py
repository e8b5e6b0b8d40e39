"""Run every rule on a Message and turn their findings into a Decision.

The most severe enforced action wins: reject > hold > tag > deliver. A rule
that raises or runs past its time budget fails closed: the Decision is a
tempfail (451 4.3.0) and the client retries later. A rule in monitor mode has
its findings recorded but asks for nothing.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from milter.kernel.directory import Directory, normalise_address
from milter.mail.message import Message
from policies.base import Action, Finding, HoldQueue, Policy, Services
from policies.registry import RUN_ORDER

if TYPE_CHECKING:
    from milter.config import Config

log = logging.getLogger(__name__)

Outcome = Literal["deliver", "hold", "reject", "tempfail"]


@dataclass(frozen=True)
class RecipientOutcome:
    action: Literal["deliver", "hold"]
    hold_queue: HoldQueue | None = None


@dataclass
class Decision:
    action: Outcome
    findings: list[Finding] = field(default_factory=list)
    hold_queue: HoldQueue | None = None
    reply: str = "250 2.0.0 Ok"
    recipients: dict[str, RecipientOutcome] = field(default_factory=dict)
    add_headers: list[tuple[str, str]] = field(default_factory=list)
    edits: list[Callable[[bytes], bytes]] = field(
        default_factory=list
    )  # applied in order to make the delivered version
    error: str | None = None  # why a tempfail happened, for logs

    @property
    def deliver_to(self) -> list[str]:
        return [r for r, outcome in self.recipients.items() if outcome.action == "deliver"]

    def held_for(self, queue: str) -> list[str]:
        return [r for r, outcome in self.recipients.items() if outcome.action == "hold" and outcome.hold_queue == queue]

    def as_dict(self, message: Message) -> dict[str, object]:
        return {
            "id": message.id,
            "direction": message.direction,
            "action": self.action,
            "hold_queue": self.hold_queue,
            "reply": self.reply,
            "findings": [f.as_dict() for f in self.findings],
        }


def tempfail(reason: str, findings: Iterable[Finding] = ()) -> Decision:
    return Decision(
        "tempfail",
        list(findings),
        reply="451 4.3.0 Temporary failure while scanning; please try again later",
        error=reason,
    )


def decide(message: Message, findings: list[Finding]) -> Decision:
    """The most severe enforced finding wins; holds may apply to some recipients only."""
    enforced = [f for f in findings if f.enforced]
    rejects = [f for f in enforced if f.action == Action.REJECT]
    if rejects:
        first = rejects[0]
        code = first.reply or "550 5.7.1"
        return Decision("reject", findings, reply=f"{code} {_one_line(first.reason)}")
    outcomes: dict[str, RecipientOutcome] = {}
    for rcpt in message.envelope.rcpt_to:
        rcpt_key = normalise_address(rcpt)
        hold = next(
            (f for f in enforced if f.action == Action.HOLD and (f.recipients is None or rcpt_key in f.recipients)),
            None,
        )
        outcomes[rcpt] = (
            RecipientOutcome("hold", hold.hold_queue or "quarantine") if hold else RecipientOutcome("deliver")
        )
    headers = [header for f in enforced for header in f.add_headers]  # e.g. Authentication-Results on every message
    headers += [
        ("X-AUP-Milter-Tag", f"{f.policy}: {_one_line(f.reason)[:200]}") for f in enforced if f.action == Action.TAG
    ]
    edits = [f.edit for f in enforced if f.edit is not None]
    held = [o for o in outcomes.values() if o.action == "hold"]
    if not held:
        return Decision(
            "deliver", findings, reply="250 2.0.0 Ok: queued", recipients=outcomes, add_headers=headers, edits=edits
        )
    queue = held[0].hold_queue
    return Decision(
        "hold",
        findings,
        hold_queue=queue,
        recipients=outcomes,
        add_headers=headers,
        edits=edits,
        reply=f"250 2.0.0 Ok: accepted; held for {'approval' if queue == 'approval' else 'review by IT'}",
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


class Pipeline:
    """The configured rules, built once per config load, run per message."""

    def __init__(
        self, config: Config, directory: Directory, *, executor: ThreadPoolExecutor, services: Services | None = None
    ) -> None:
        self.config = config
        self.directory = directory
        self.timeout = config.settings.pipeline.rule_timeout
        self.executor = executor  # shared with earlier pipelines: a reload never cancels a scan in flight
        self.policies: list[Policy] = []
        for policy_class in RUN_ORDER:
            settings = config.policies[policy_class.name]
            if settings.mode != "off":
                self.policies.append(policy_class(settings, directory, services or Services()))
        self.observers: list[
            Callable[[str, float, Exception | None], None]
        ] = []  # metrics hook: (rule, seconds, error)

    async def run(self, message: Message) -> Decision:
        loop = asyncio.get_running_loop()
        findings: list[Finding] = []
        for policy in self.policies:
            if not policy.applies_to(message):
                continue
            started = time.monotonic()
            error: Exception | None = None
            try:
                work: Awaitable[list[Finding]]
                if inspect.iscoroutinefunction(policy.check):
                    work = policy.check(message)  # waits on the network; CPU-heavy parts go to threads inside
                else:
                    work = loop.run_in_executor(self.executor, policy.check, message)
                found = await asyncio.wait_for(work, self.timeout)
            except TimeoutError as exc:
                error = exc
                found = self._failed(policy, message, f"did not finish within {self.timeout:g}s")
            except Exception as exc:
                error = exc
                log.exception("rule %s failed on message %s", policy.name, message.id)
                found = self._failed(policy, message, f"failed: {type(exc).__name__}: {exc}")
            for observe in self.observers:
                observe(policy.name, time.monotonic() - started, error)
            if isinstance(found, Decision):
                return found
            findings.extend(replace(f, mode=policy.settings.mode) for f in found)
        return decide(message, findings)

    def _failed(self, policy: Policy, message: Message, what: str) -> Decision | list[Finding]:
        """Fail closed: an enforcing rule that breaks tempfails the message; a monitoring one is noted."""
        note = Finding(policy.name, Action.DELIVER, f"The rule {what}.", ("rule error",))
        if policy.settings.mode == "enforce":
            return tempfail(f"rule {policy.name} {what}", [note])
        return [note]
