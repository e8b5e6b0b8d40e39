"""Confidential data leaves the agency only encrypted, as the agency's policy defines encryption.

Detectors (policies/detectors) find validated SSNs, card, bank and driver's
license numbers, and health, student, personnel and criminal justice records
in every text the gateway can read: the subject, the bodies, attachments and
archive members. What the gateway can read is by definition not encrypted.
What it cannot read because of acceptable encryption (an encrypted ZIP or 7z,
S/MIME, PGP) is what the policy asks for. A password-protected Word, Excel,
PowerPoint or PDF file is not: the policy says so, and it gets its own finding.

Each detector family has thresholds per direction ("one high-confidence SSN
outbound; ten internally") and an action per direction; "monitor" records
the finding without acting on it.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, FilePath, field_validator, model_validator

from milter.kernel.units import Duration
from milter.mail.message import Direction, Message
from policies.base import Finding, Policy, PolicySettings, SettingsTable
from policies.detectors import FAMILIES, Confidence, Hit, Wordlists, encryption, scan
from policies.detectors.sources import texts_of
from policies.detectors.wordlists import NAMES as LIST_NAMES

DirectionAction = Literal["reject", "hold", "tag", "monitor"]
ACTION_ORDER: tuple[DirectionAction, ...] = ("reject", "hold", "tag", "monitor")
MAX_PLACES = 6  # places named in one reason; the evidence lists every hit
MAX_EXAMPLES = 3  # masked values shown per place
POLICY_QUOTE = (
    "Password protection in Word documents, Excel spreadsheets and PDFs is readily broken "
    "and therefore is not acceptable protection."
)
ADVICE = (
    "Put the files in an AES-encrypted ZIP (in 7-Zip: archive format zip, encryption method AES-256), "
    "take the numbers out of the message text, and give the password to the recipient another way, such as by phone."
)

# Per family and direction: the action (None: the rule's default for the direction) and
# the fewest distinct values at each confidence (or above) that make the rule act; 0 is never.
NUMBERS: dict[str, dict[str, Any]] = {
    "outbound": {"high": 1, "medium": 3, "low": 0},
    "internal": {"high": 10, "medium": 10, "low": 0},
}
RECORDS: dict[str, dict[str, Any]] = {
    "outbound": {"action": "hold", "high": 1, "medium": 1, "low": 0},
    "internal": {"high": 1, "medium": 0, "low": 0},
}
DEFAULT_RULES: dict[str, dict[str, dict[str, Any]]] = {
    "ssn": NUMBERS,
    "card": NUMBERS,
    "bank": NUMBERS,
    "drivers_license": {
        "outbound": {"high": 1, "medium": 0, "low": 0},
        "internal": {"high": 10, "medium": 0, "low": 0},
    },
    "health": RECORDS,
    "student": RECORDS,
    "personnel": RECORDS,
    "cjis": RECORDS,
}


class Threshold(SettingsTable):
    # Plain defaults (Annotated) so every field visibly has one.
    action: Annotated[
        DirectionAction | None,
        Field(
            json_schema_extra={
                "fix": '"reject", "hold", "tag" or "monitor" (record only); leave it out for the rule\'s default for this direction'
            }
        ),
    ] = None
    high: Annotated[
        int,
        Field(
            ge=0,
            json_schema_extra={"fix": "the fewest distinct high-confidence values that make the rule act; 0 for never"},
        ),
    ] = 1
    medium: Annotated[
        int,
        Field(
            ge=0,
            json_schema_extra={
                "fix": "the fewest distinct values of medium confidence or above that make the rule act; 0 for never"
            },
        ),
    ] = 0
    low: Annotated[
        int,
        Field(
            ge=0,
            json_schema_extra={
                "fix": "the fewest distinct values of any confidence that make the rule act; 0 for never"
            },
        ),
    ] = 0

    def counted(self, hits: list[Hit]) -> list[Hit]:
        """The hits that count when the threshold is met (at or above the lowest level in use), else none."""
        best: dict[str, Confidence] = {}
        for hit in hits:
            best[hit.key] = max(best.get(hit.key, hit.confidence), hit.confidence)
        levels = [
            (level, need)
            for level, need in (
                (Confidence.HIGH, self.high),
                (Confidence.MEDIUM, self.medium),
                (Confidence.LOW, self.low),
            )
            if need
        ]
        if not any(sum(1 for c in best.values() if c >= level) >= need for level, need in levels):
            return []
        floor = min(level for level, _ in levels)
        return [hit for hit in hits if hit.confidence >= floor]


class FamilyRules(SettingsTable):
    outbound: Annotated[
        Threshold, Field(json_schema_extra={"fix": 'a table such as { action = "reject", high = 1, medium = 3 }'})
    ] = Threshold()
    internal: Annotated[
        Threshold, Field(json_schema_extra={"fix": 'a table such as { action = "monitor", high = 10, medium = 10 }'})
    ] = Threshold()


class PasswordProtected(SettingsTable):
    outbound: Annotated[DirectionAction, Field(json_schema_extra={"fix": '"reject", "hold", "tag" or "monitor"'})] = (
        "reject"
    )
    internal: Annotated[DirectionAction, Field(json_schema_extra={"fix": '"reject", "hold", "tag" or "monitor"'})] = (
        "monitor"
    )


def _merge(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    merged = dict(defaults)
    for key, value in given.items():
        merged[key] = (
            _merge(merged[key], value) if isinstance(value, dict) and isinstance(merged.get(key), dict) else value
        )
    return merged


class ConfidentialSettings(PolicySettings):
    directions: list[Direction] = Field(
        ["outbound", "internal"], json_schema_extra={"fix": 'a list from "outbound", "internal"'}
    )
    action: Literal["tag", "hold", "reject"] = Field(
        "reject",
        json_schema_extra={
            "fix": 'what outbound hits ask for when a family names no action: "tag", "hold" or "reject"'
        },
    )
    internal_action: DirectionAction = Field(
        "monitor",
        json_schema_extra={
            "fix": 'what internal hits ask for when a family names no action: "reject", "hold", "tag" or "monitor"'
        },
    )
    # Each family's defaults are DEFAULT_RULES, filled in by _family_defaults below.
    ssn: FamilyRules = Field(default_factory=FamilyRules)
    card: FamilyRules = Field(default_factory=FamilyRules)
    bank: FamilyRules = Field(default_factory=FamilyRules)
    drivers_license: FamilyRules = Field(default_factory=FamilyRules)
    health: FamilyRules = Field(default_factory=FamilyRules)
    student: FamilyRules = Field(default_factory=FamilyRules)
    personnel: FamilyRules = Field(default_factory=FamilyRules)
    cjis: FamilyRules = Field(default_factory=FamilyRules)
    password_protected: PasswordProtected = Field(
        PasswordProtected(), json_schema_extra={"fix": 'a table such as { outbound = "reject", internal = "monitor" }'}
    )
    accept_zipcrypto: bool = Field(
        True, json_schema_extra={"fix": "true (the policy accepts any password-protected ZIP) or false (only AES)"}
    )
    advice: str = Field(ADVICE, json_schema_extra={"fix": "a sentence telling the sender how to send it safely"})
    policy_quote: str = Field(
        POLICY_QUOTE, json_schema_extra={"fix": "the policy's words on password-protected documents"}
    )
    keyword_window: int = Field(
        60,
        ge=10,
        le=1000,
        json_schema_extra={"fix": "characters either side of a number in which a keyword counts as near, 10 to 1000"},
    )
    regex_timeout: Duration = Field(
        10.0,
        gt=0,
        json_schema_extra={"fix": 'the longest one search may take, such as "10s"; past it the message is tempfailed'},
    )
    max_evidence: int = Field(100, ge=1, json_schema_extra={"fix": "the most hits listed as evidence in one finding"})
    wordlists: dict[str, FilePath] = Field(
        {},
        json_schema_extra={
            "fix": 'a table of list name = "/path/to/file.txt", replacing config/wordlists/confidential_NAME.txt'
        },
    )

    @model_validator(mode="before")
    @classmethod
    def _family_defaults(cls, data: Any) -> Any:
        # Each family has its own defaults; a config that sets one key keeps the others.
        if not isinstance(data, dict):
            return data
        merged = dict(data)
        for family, defaults in DEFAULT_RULES.items():
            given = data.get(family, {})
            merged[family] = _merge(defaults, given) if isinstance(given, dict) else given
        return merged

    @field_validator("directions")
    @classmethod
    def _no_inbound(cls, value: list[Direction]) -> list[Direction]:
        if "inbound" in value:
            raise ValueError(
                "this rule guards mail leaving the agency and mail within it; inbound is not one of its directions"
            )
        return value

    @field_validator("wordlists")
    @classmethod
    def _known_lists(cls, value: dict[str, Path]) -> dict[str, Path]:
        unknown = sorted(set(value) - set(LIST_NAMES))
        if unknown:
            raise ValueError(f"no word list named {', '.join(unknown)}; the lists are: {', '.join(LIST_NAMES)}")
        return value

    def rules(self, family: str, direction: Direction) -> tuple[DirectionAction, Threshold]:
        threshold: Threshold = getattr(getattr(self, family), direction)
        return threshold.action or self.default_action(direction), threshold

    def default_action(self, direction: Direction) -> DirectionAction:
        return self.action if direction == "outbound" else self.internal_action


class Confidential(Policy):
    name = "confidential"
    description = (
        "Confidential data (SSNs, card and bank numbers, driver's licenses, health, student, personnel and "
        "criminal justice records) leaves the agency only with acceptable encryption; password-protected "
        "Office and PDF files do not count."
    )
    Settings = ConfidentialSettings

    @cached_property
    def words(self) -> Wordlists:
        settings: ConfidentialSettings = self.settings  # type: ignore[assignment]
        return Wordlists(settings.wordlists)

    def check(self, message: Message) -> list[Finding]:
        settings: ConfidentialSettings = self.settings  # type: ignore[assignment]
        direction = message.direction
        hits = scan(texts_of(message, self.words, settings.regex_timeout, settings.keyword_window))
        protections = encryption.protections(message)
        return self._data_findings(settings, direction, hits, protections) + self._protection_findings(
            settings, direction, protections
        )

    def _data_findings(
        self,
        settings: ConfidentialSettings,
        direction: Direction,
        hits: list[Hit],
        protections: list[encryption.Protection],
    ) -> list[Finding]:
        by_action: dict[DirectionAction, list[tuple[str, list[Hit]]]] = defaultdict(list)
        for family in FAMILIES:
            action, threshold = settings.rules(family, direction)
            counted = threshold.counted([hit for hit in hits if hit.family == family])
            if counted:
                by_action[action].append((family, counted))
        findings = []
        for action in ACTION_ORDER:
            if action not in by_action:
                continue
            groups = by_action[action]
            opening = (
                "This message would send confidential information outside the agency without acceptable encryption"
                if direction == "outbound"
                else "This message carries confidential information without acceptable encryption"
            )
            reason = f"{opening}: {describe(groups)}. {settings.advice}"
            if action == "monitor":
                reason = f"Recorded only, no action taken ({direction} mail): {reason}"
            evidence = _evidence([hit for _, group in groups for hit in group], settings.max_evidence)
            evidence += [
                f"encryption: {p.name} is {p.description} (acceptable; not inspected)"
                for p in protections
                if p.acceptable
            ]
            findings.append(self.finding(reason, evidence, action="deliver" if action == "monitor" else action))
        return findings

    def _protection_findings(
        self, settings: ConfidentialSettings, direction: Direction, protections: list[encryption.Protection]
    ) -> list[Finding]:
        action: DirectionAction = getattr(settings.password_protected, direction)
        findings = []
        for protection in protections:
            if protection.kind == "zip-zipcrypto" and not settings.accept_zipcrypto:
                reason = (
                    f"{protection.name} is {protection.description}, which is readily broken; the agency accepts only "
                    f"AES-encrypted ZIP files. {settings.advice}"
                )
            elif not protection.acceptable:
                reason = (
                    f"{protection.name} is {protection.description}, which agency policy does not accept as protection: "
                    f'"{settings.policy_quote}" Remove its password and send it in an AES-encrypted ZIP instead, '
                    "giving the ZIP's password to the recipient another way, such as by phone."
                )
            else:
                continue
            if action == "monitor":
                reason = f"Recorded only, no action taken ({direction} mail): {reason}"
            evidence = [
                f"password_protected kind={protection.kind} location=part {protection.where}: {protection.name}"
            ]
            findings.append(self.finding(reason, evidence, action="deliver" if action == "monitor" else action))
        return findings


def describe(groups: list[tuple[str, list[Hit]]]) -> str:
    """ "3 Social Security numbers (***-**-1234, ...) in budget.xlsx, sheet Payroll; ..." """
    places: list[str] = []
    for family, hits in groups:
        by_place: dict[str, dict[str, Hit]] = defaultdict(dict)
        for hit in hits:
            by_place[hit.location].setdefault(hit.key, hit)
        one, many = FAMILIES[family]
        for location, distinct in by_place.items():
            shown = [hit.masked for hit in list(distinct.values())[:MAX_EXAMPLES]]
            more = ", ..." if len(distinct) > MAX_EXAMPLES else ""
            noun = one if len(distinct) == 1 else many
            places.append(f"{len(distinct)} {noun} ({', '.join(shown)}{more}) in {location}")
    if len(places) > MAX_PLACES:
        places = [*places[:MAX_PLACES], f"and more in {len(places) - MAX_PLACES} other places"]
    return "; ".join(places)


def _evidence(hits: list[Hit], limit: int) -> list[str]:
    seen: set[tuple[str, str, str]] = set()
    lines = []
    for hit in hits:  # each value once per place
        if (hit.key, hit.part, hit.location) not in seen:
            seen.add((hit.key, hit.part, hit.location))
            lines.append(hit.evidence())
    if len(lines) > limit:
        return [*lines[:limit], f"... and {len(lines) - limit} more hits"]
    return lines
