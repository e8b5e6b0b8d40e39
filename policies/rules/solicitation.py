"""Solicitation: political campaigning, selling, fundraising for outside organisations, union business.

Each category has its own editable phrase list (`config/wordlists/solicitation_*.txt`),
counts when at least `min_cues` different phrases are found, and has its own
action (the rule ships in monitor mode). Exceptions name who may do what: a
union official writing to Human Resources (senders and recipients), an
approved charity drive (phrases in the subject or body).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, FilePath, field_validator, model_validator

from milter.kernel.directory import listed, normalise_address
from milter.mail.message import Direction, Message
from policies.base import Finding, Mode, Policy, PolicySettings, SettingsTable
from policies.text.conduct import CATEGORY_ACTION_FIX, NEXT_STEP, CategoryAction, effective, text_of
from policies.text.phrases import PhraseList, Text, load_phrases, reduce_word
from policies.text.wordlists import list_path

Category = Literal["political", "commercial", "fundraising", "union"]
CATEGORIES: tuple[Category, ...] = ("political", "commercial", "fundraising", "union")
WHAT = {
    "political": ("political campaigning", "use of agency e-mail for any political purpose"),
    "commercial": ("selling or commercial advertising", "use of agency e-mail for any commercial purpose"),
    "fundraising": (
        "fundraising or solicitation for an outside organisation",
        "fundraising or solicitation for outside organisations, except approved drives",
    ),
    "union": ("union business", "union business, except as the agency allows"),
}
MAX_QUOTES = 5


class Actions(SettingsTable):
    political: CategoryAction = Field(default="hold", json_schema_extra={"fix": CATEGORY_ACTION_FIX})
    commercial: CategoryAction = Field(default="hold", json_schema_extra={"fix": CATEGORY_ACTION_FIX})
    fundraising: CategoryAction = Field(default="hold", json_schema_extra={"fix": CATEGORY_ACTION_FIX})
    union: CategoryAction = Field(default="hold", json_schema_extra={"fix": CATEGORY_ACTION_FIX})


class Lists(SettingsTable):
    political: FilePath | None = Field(
        default=None,
        json_schema_extra={"fix": "a phrase list file; leave out for config/wordlists/solicitation_political.txt"},
    )
    commercial: FilePath | None = Field(
        default=None,
        json_schema_extra={"fix": "a phrase list file; leave out for config/wordlists/solicitation_commercial.txt"},
    )
    fundraising: FilePath | None = Field(
        default=None,
        json_schema_extra={"fix": "a phrase list file; leave out for config/wordlists/solicitation_fundraising.txt"},
    )
    union: FilePath | None = Field(
        default=None,
        json_schema_extra={"fix": "a phrase list file; leave out for config/wordlists/solicitation_union.txt"},
    )

    def path(self, category: str) -> Path:
        return list_path(getattr(self, category), f"solicitation_{category}.txt")


class Exception_(SettingsTable):
    """Who may do what: every condition given must hold."""

    categories: list[Category] = Field(
        default=list(CATEGORIES),
        json_schema_extra={"fix": 'a list from "political", "commercial", "fundraising", "union"'},
    )
    senders: list[str] = Field(
        default=[], json_schema_extra={"fix": 'sender addresses, or "@domain" for a whole domain'}
    )
    recipients: list[str] = Field(
        default=[], json_schema_extra={"fix": 'addresses every recipient must be among, or "@domain"'}
    )
    phrases: list[str] = Field(
        default=[],
        json_schema_extra={
            "fix": "words one of which the subject or body must contain, such as an approved drive's name"
        },
    )
    note: str = Field(default="", json_schema_extra={"fix": "why this is allowed, shown in the finding"})

    @field_validator("senders", "recipients")
    @classmethod
    def _lower(cls, values: list[str]) -> list[str]:
        return [normalise_address(v) for v in values]

    @model_validator(mode="after")
    def _has_a_condition(self) -> Exception_:
        if not (self.senders or self.recipients or self.phrases):
            raise ValueError(
                "an exception needs senders, recipients or phrases; without them it would allow everything"
            )
        return self

    def allows(self, category: str, sender: str, recipients: list[str], text: Text) -> bool:
        if category not in self.categories:
            return False
        if self.senders and not listed(sender, self.senders):
            return False
        if self.recipients and not all(listed(r, self.recipients) for r in recipients):
            return False
        if self.phrases:
            normal = f" {text.normal} "
            return any(f" {' '.join(reduce_word(w) for w in phrase.split())} " in normal for phrase in self.phrases)
        return True


class SolicitationSettings(PolicySettings):
    mode: Mode = Field(
        default="monitor",
        json_schema_extra={"fix": '"monitor" (record only, the default: watch it first), "enforce" or "off"'},
    )
    directions: list[Direction] = Field(
        default=["internal", "outbound"], json_schema_extra={"fix": 'a list from "inbound", "outbound", "internal"'}
    )
    action: Literal["tag", "hold", "reject"] = Field(
        default="hold", json_schema_extra={"fix": '"tag", "hold" or "reject": the most any category asks'}
    )
    actions: Actions = Field(
        default=Actions(),
        json_schema_extra={
            "fix": 'a table such as { political = "hold", commercial = "monitor", fundraising = "hold", union = "hold" }'
        },
    )
    lists: Lists = Field(
        default=Lists(),
        json_schema_extra={"fix": 'a table of phrase list files, such as { union = "/etc/aup-milter/union.txt" }'},
    )
    min_cues: int = Field(
        default=2, ge=1, json_schema_extra={"fix": "how many different phrases of one category must be found"}
    )
    exceptions: list[Exception_] = Field(
        default=[],
        json_schema_extra={
            "fix": 'a list of tables such as { categories = ["union"], senders = ["steward@example.gov"], recipients = ["@hr.example.gov"] }'
        },
    )
    advice: str = Field(
        default="Use a personal account for this; if it is allowed (an approved drive, union business with Human Resources), ask IT to add an exception.",
        json_schema_extra={"fix": "a sentence telling the sender what to do next"},
    )

    @model_validator(mode="after")
    def _lists_compile(self) -> SolicitationSettings:
        for category in CATEGORIES:
            load_phrases(self.lists.path(category))  # a bad line is a config error now, not a failure per message
        return self


class Solicitation(Policy):
    name = "solicitation"
    description = "Political campaigning, selling, fundraising for outside organisations and union business, with configured exceptions."
    Settings = SolicitationSettings

    @cached_property
    def lists(self) -> dict[str, PhraseList]:
        settings: SolicitationSettings = self.settings  # type: ignore[assignment]
        return {category: load_phrases(settings.lists.path(category)) for category in CATEGORIES}

    def check(self, message: Message) -> list[Finding]:
        settings: SolicitationSettings = self.settings  # type: ignore[assignment]
        text = text_of(message)
        findings = []
        for category in CATEGORIES:
            action = effective(getattr(settings.actions, category), settings.action)
            if action is None:
                continue
            hits = self.lists[category].find(text)
            if len(hits) < settings.min_cues:
                continue
            label, forbidden = WHAT[category]
            quotes = ", ".join(f'"{hit.quote}"' for hit in hits[:MAX_QUOTES]) + (
                f" and {len(hits) - MAX_QUOTES} more" if len(hits) > MAX_QUOTES else ""
            )
            allowed = next(
                (
                    rule
                    for rule in settings.exceptions
                    if rule.allows(category, message.sender, _recipients(message), text)
                ),
                None,
            )
            if allowed is not None:  # recorded, so admins can see what their exceptions let through
                reason = (
                    f"The message looks like {label} (rule {self.name}, {category}): {quotes}; it is allowed by an "
                    f"exception ({allowed.note or 'no note given'}). The message was delivered."
                )
                findings.append(self.finding(reason, [f'{category}: "{hit.quote}"' for hit in hits], action="deliver"))
                continue
            reason = (
                f"The message looks like {label} (rule {self.name}, {category}): {quotes}. The agency's e-mail policy "
                f"forbids {forbidden}. {NEXT_STEP[action]} {settings.advice}"
            )
            evidence = [f'{category}: "{hit.quote}" (list entry: {hit.entry})' for hit in hits]
            findings.append(self.finding(reason, evidence, action=action, reply="550 5.7.1"))
        return findings


def _recipients(message: Message) -> list[str]:
    return [normalise_address(r) for r in message.envelope.rcpt_to]
