"""Broadcasts: mail to all employees or large groups needs the department head's prior approval.

The agencies' policy: "E-mail messages addressed to all employees or large
groups of employees must have the prior approval of the sender's Department
Head", and access to the everyone lists is for department heads, senior
leadership and IT staff. Requests to colleagues for a charitable purpose need
the same approval. A broadcast is a message from an internal sender
- to a group the directory flags as a broadcast list, or
- to more internal recipients than `threshold` (groups expanded where the
  directory knows their members or size), or
- to at least `charity.min_recipients` internal recipients asking for money or
  help for a cause (config/wordlists/broadcast_charity.txt).
Senders whose every identity (From, envelope sender, SMTP login) has an allowed role
or is exempt pass; everyone else's broadcast is held in the approval queue
(quarantine/approvals.py takes it from there).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, FilePath, field_validator, model_validator

from milter.kernel.directory import ROLES, Directory, Group, listed, normalise_address
from milter.mail.message import Direction, Message
from policies.base import Finding, Mode, Policy, PolicySettings
from policies.text.phrases import PhraseList, Text, load_phrases
from policies.text.wordlists import list_path

MAX_GROUP_DEPTH = 5  # groups inside groups are expanded this deep
MAX_QUOTES = 3


class CharitySettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    min_recipients: int = Field(
        10,
        ge=2,
        json_schema_extra={"fix": "the fewest internal recipients for a charity request to need approval, at least 2"},
    )
    min_cues: int = Field(
        1, ge=1, json_schema_extra={"fix": "how many different charity phrases must be found, at least 1"}
    )
    list: FilePath | None = Field(
        None, json_schema_extra={"fix": "a phrase list file; leave out for config/wordlists/broadcast_charity.txt"}
    )

    @property
    def path(self) -> Path:
        return list_path(self.list, "broadcast_charity.txt")


class BroadcastSettings(PolicySettings):
    # Off unless configured: the approval queue needs the directory's heads and [approvals] set up first (the shipped file does).
    mode: Mode = Field(
        "off",
        json_schema_extra={
            "fix": '"enforce", "monitor" (record who would be held) or "off" (the default when the section is left out)'
        },
    )
    directions: list[Direction] = Field(
        ["internal", "outbound"],
        json_schema_extra={"fix": 'a list from "internal", "outbound" (mail from inside the agency)'},
    )
    action: Literal["hold"] = Field("hold", json_schema_extra={"fix": '"hold": a broadcast always waits for approval'})
    threshold: int = Field(
        50, ge=1, json_schema_extra={"fix": "the most internal recipients a message may reach without approval"}
    )
    allowed_roles: list[str] = Field(
        ["department-head", "leadership", "it-staff"],
        json_schema_extra={"fix": f"directory roles that may broadcast without approval, from: {', '.join(ROLES)}"},
    )
    exempt_senders: list[str] = Field(
        [],
        json_schema_extra={
            "fix": 'addresses that may broadcast without approval (emergency management, payroll), or "@domain"'
        },
    )
    charity: CharitySettings = Field(
        CharitySettings(), json_schema_extra={"fix": "a table such as { min_recipients = 10, min_cues = 1 }"}
    )

    @field_validator("allowed_roles")
    @classmethod
    def _roles(cls, values: list[str]) -> list[str]:
        for role in values:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}")
        return values

    @field_validator("exempt_senders")
    @classmethod
    def _senders(cls, values: list[str]) -> list[str]:
        return [normalise_address(v) for v in values]

    @model_validator(mode="after")
    def _list_compiles(self) -> BroadcastSettings:
        load_phrases(self.charity.path)  # a bad line is a config error now, not a failure per message
        return self


@dataclass(frozen=True)
class Reach:
    """Whom a message reaches inside the agency."""

    count: int  # people, groups expanded where the directory knows them
    broadcast_groups: tuple[Group, ...]  # flagged all-employee or large lists among the recipients

    def describe(self) -> str:
        if self.broadcast_groups:
            return ", ".join(f"{g.name or g.address} ({g.address})" for g in self.broadcast_groups)
        return f"{self.count} people inside the agency"


def reach_of(rcpts: tuple[str, ...] | list[str], directory: Directory) -> Reach:
    """Internal recipients counted once each; a group counts as its members, else its size, else one."""
    people: set[str] = set()
    sized = 0
    flagged: list[Group] = []
    seen: set[str] = set()

    def add(address: str, depth: int) -> None:
        nonlocal sized
        key = normalise_address(address)
        if key in seen or not directory.is_local(key):
            return
        seen.add(key)
        group = directory.group(key)
        if group is None:
            person = directory.person(key)
            people.add(person.address if person else key)
            return
        if group.broadcast:
            flagged.append(group)
        if group.members and depth < MAX_GROUP_DEPTH:
            for member in group.members:
                add(member, depth + 1)
        else:
            sized += group.size if group.size is not None else 1

    for rcpt in rcpts:
        add(rcpt, 0)
    return Reach(len(people) + sized, tuple(flagged))


def internal_sender(message: Message, directory: Directory) -> str | None:
    """The internal sender: the local From address (what recipients see), else the local envelope sender."""
    for _, address in message.from_addresses:
        if address and directory.is_local(address):
            return address
    mail_from = normalise_address(message.envelope.mail_from)
    return mail_from if mail_from and directory.is_local(mail_from) else None


class Broadcast(Policy):
    name = "broadcast"
    description = (
        "Messages to all employees or large groups, and charity requests to many colleagues, "
        "wait for the sender's department head's approval."
    )
    Settings = BroadcastSettings
    hold_queue = "approval"

    @cached_property
    def charity_phrases(self) -> PhraseList:
        settings: BroadcastSettings = self.settings  # type: ignore[assignment]
        return load_phrases(settings.charity.path)

    def check(self, message: Message) -> list[Finding]:
        settings: BroadcastSettings = self.settings  # type: ignore[assignment]
        if not message.envelope.inside:
            return []
        reach = reach_of(message.envelope.rcpt_to, self.directory)  # dictionary lookups: the cheap filter first
        if (
            not reach.broadcast_groups
            and reach.count <= settings.threshold
            and reach.count < settings.charity.min_recipients
        ):
            return []
        sender = internal_sender(message, self.directory)
        if sender is None or self._exempt(message, sender):
            return []
        if reach.broadcast_groups:
            what = f"goes to {reach.describe()}, a list for all employees or a large group"
            evidence = [
                f"broadcast group: {g.address}" + (f" ({g.size} people)" if g.size else "")
                for g in reach.broadcast_groups
            ]
        elif reach.count > settings.threshold:
            what = f"goes to {reach.count} people inside the agency (more than {settings.threshold})"
            evidence = [f"internal recipients: {reach.count} (threshold {settings.threshold})"]
        else:
            hits = self.charity_phrases.find(Text(f"{message.subject}\n\n{message.body_text}"))
            if len(hits) < settings.charity.min_cues:
                return []
            quotes = ", ".join(f'"{hit.quote}"' for hit in hits[:MAX_QUOTES])
            what = f"asks {reach.count} colleagues to support a charitable cause ({quotes})"
            evidence = [f"internal recipients: {reach.count}"] + [
                f'charity: "{hit.quote}" (list entry: {hit.entry})' for hit in hits
            ]
        reason = (
            f"This message {what}. Agency policy: such messages need the prior approval of the sender's "
            f"department head (rule {self.name}). It is held until {self._approver_words(sender)} approves it "
            "(it is then delivered with the approval noted at the end) or rejects it; the sender is told either way "
            "and does not need to send it again."
        )
        return [self.finding(reason, evidence)]

    def _exempt(self, message: Message, sender: str) -> bool:
        """Every identity the message claims must be allowed to broadcast: a forged From gains nothing."""
        settings: BroadcastSettings = self.settings  # type: ignore[assignment]
        identities = {sender, *(a for _, a in message.from_addresses if a and self.directory.is_local(a))}
        for claimed in (message.envelope.mail_from, message.envelope.auth_user or ""):
            address = normalise_address(claimed)
            if "@" in address and self.directory.is_local(address):
                identities.add(address)
        return all(self._may_broadcast(address, settings) for address in identities)

    def _may_broadcast(self, address: str, settings: BroadcastSettings) -> bool:
        if listed(address, settings.exempt_senders):
            return True
        person = self.directory.person(address)
        return person is not None and bool(person.roles & set(settings.allowed_roles))

    def _approver_words(self, sender: str) -> str:
        department = self.directory.department_of(sender)
        head = self.directory.person(department.head) if department and department.head else None
        if department is None or head is None:
            return "the agency's fallback approver (no department head is on file for the sender)"
        if head.address == normalise_address(sender):
            return "a delegate of the sender's department or the agency's fallback approver"
        title = f" ({head.title})" if head.title else ""
        return f"{head.name}{title} or a delegate"
