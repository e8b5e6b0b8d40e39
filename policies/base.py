"""What every rule shares: its settings, its findings, and the Policy shape.

A rule is a small class, as in GNU Mailman's rules: a `name`, a `description`,
a `Settings` model for its `[policies.NAME]` table, and `check(message)`
returning findings. Rules read the Message and the directory; they never
write anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import IntEnum
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from milter.kernel.db import utcnow
from milter.kernel.directory import Directory
from milter.mail.message import Direction, Message

if TYPE_CHECKING:
    from milter.kernel.db import Database

Mode = Literal["enforce", "monitor", "off"]
HoldQueue = Literal["approval", "quarantine"]
DIRECTIONS: tuple[Direction, ...] = ("inbound", "outbound", "internal")


class Action(IntEnum):
    """What a finding asks for; the most severe wins."""

    DELIVER = 0
    TAG = 1
    HOLD = 2
    REJECT = 3

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    policy: str
    action: Action
    reason: str  # what happened and what to do next, in words a person can act on
    evidence: tuple[str, ...] = ()
    mode: Mode = "enforce"
    hold_queue: HoldQueue | None = None
    recipients: frozenset[str] | None = None  # None: the whole message
    reply: str | None = None  # SMTP code and enhanced status for a reject, e.g. "552 5.3.4"
    add_headers: tuple[tuple[str, str], ...] = ()
    # A change to the delivered bytes (a warning banner, a subject tag), made with milter/mail/edit.py;
    # applied only when the rule enforces. The archive keeps the message as received and as delivered.
    edit: Callable[[bytes], bytes] | None = field(default=None, compare=False)

    @property
    def enforced(self) -> bool:
        return self.mode == "enforce"

    def as_dict(self) -> dict[str, object]:
        return {
            "policy": self.policy,
            "mode": self.mode,
            "action": str(self.action),
            "reason": self.reason,
            "evidence": list(self.evidence),
            "hold_queue": self.hold_queue,
            "recipients": sorted(self.recipients) if self.recipients is not None else None,
        }


class SettingsTable(BaseModel):
    """A table inside a rule's settings: unknown keys are errors, values never change."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicySettings(BaseModel):
    """Keys every `[policies.NAME]` table has."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = Field("enforce", json_schema_extra={"fix": '"enforce", "monitor" (record only) or "off"'})
    directions: list[Direction] = Field(
        list(DIRECTIONS), json_schema_extra={"fix": 'a list from "inbound", "outbound", "internal"'}
    )
    action: Literal["tag", "hold", "reject"] = Field("hold", json_schema_extra={"fix": '"tag", "hold" or "reject"'})

    @property
    def status(self) -> str:
        """What the rule really does: its mode, unless something it needs is missing."""
        return self.mode


@dataclass
class Services:
    """What rules may use besides the Message and the directory, wired by the Runtime.

    Rules only read: the database is there for lookups (who has written to
    whom, recent fingerprints), never for writes.
    """

    database: Database | None = None
    clock: Callable[[], datetime] = utcnow
    resolver: Any = None  # DNS, injectable so tests answer from local zone data


@dataclass
class Policy:
    name: ClassVar[str]
    description: ClassVar[str]
    Settings: ClassVar[type[PolicySettings]] = PolicySettings
    hold_queue: ClassVar[HoldQueue] = "quarantine"
    # Rules whose published results this one reads (Message.result): the pipeline runs them first,
    # as rspamd's register_dependency orders symbols.
    requires: ClassVar[tuple[str, ...]] = ()

    settings: PolicySettings
    directory: Directory
    services: Services = field(default_factory=Services)

    def applies_to(self, message: Message) -> bool:
        return message.direction in self.settings.directions

    def check(self, message: Message) -> list[Finding]:
        """Findings for this message. May be `async def` for rules that wait on the network (DNS)."""
        raise NotImplementedError

    def finding(
        self, reason: str, evidence: tuple[str, ...] | list[str] = (), *, action: str | None = None, **extra: object
    ) -> Finding:
        """A finding asking for this rule's configured action (or the one given)."""
        chosen = Action[(action or self.settings.action).upper()]
        queue = extra.pop("hold_queue", self.hold_queue if chosen == Action.HOLD else None)
        return Finding(self.name, chosen, reason, tuple(evidence), hold_queue=queue, **extra)  # type: ignore[arg-type]
