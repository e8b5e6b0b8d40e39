"""The `[approvals]` section: who approves when no department head can, and the approval clock.

Detection (what counts as a broadcast, who may send one without approval)
belongs to the rule and lives under `[policies.broadcast]`. This section is
about what happens to a held broadcast: the fallback approvers, reminders,
escalation and expiry in business days, and how long an emailed link works.
Composed into the file's Settings by milter/config.py.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo

from pydantic import Field, field_validator, model_validator

from milter.kernel.settings import Section, fix
from milter.kernel.units import Duration


class ApprovalSettings(Section):
    fallback_approvers: list[str] = Field(
        default_factory=list,
        json_schema_extra=fix(
            "addresses of people who approve when the sender has no department head, and after escalation, "
            'such as ["cio@city.gov"]; leave empty and only console admins can'
        ),
    )
    remind_after: int = Field(
        1, ge=1, le=60, json_schema_extra=fix("business days before the approvers get a reminder, 1 to 60")
    )
    escalate_after: int = Field(
        2, ge=1, le=60, json_schema_extra=fix("business days before the fallback approvers are asked too, 1 to 60")
    )
    expire_after: int = Field(
        10,
        ge=1,
        le=365,
        json_schema_extra=fix(
            "business days after which an undecided message is rejected and its sender told, 1 to 365"
        ),
    )
    token_lifetime: Duration = Field(
        21 * 86400.0,
        ge=3600,
        json_schema_extra=fix('how long an emailed approve/reject link works, such as "21d" (at least "1h")'),
    )
    timezone: str | None = Field(
        None,
        json_schema_extra=fix(
            'an IANA time zone such as "America/New_York" (where business days are counted); leave out for the server\'s'
        ),
    )
    holidays: list[dt.date] = Field(
        default_factory=list,
        json_schema_extra=fix("dates that are not business days, such as [2026-12-25, 2027-01-01]"),
    )

    @field_validator("fallback_approvers")
    @classmethod
    def _addresses(cls, values: list[str]) -> list[str]:
        cleaned = []
        for value in values:
            address = value.strip().strip("<>").lower()
            local, at, domain = address.rpartition("@")
            if not at or not local or "." not in domain:
                raise ValueError(f"{value!r} is not an email address")
            cleaned.append(address)
        return cleaned

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                zoneinfo.ZoneInfo(value)
            except (zoneinfo.ZoneInfoNotFoundError, ValueError):
                raise ValueError(f"{value!r} is not a known time zone") from None
        return value

    @model_validator(mode="after")
    def _in_order(self) -> ApprovalSettings:
        if not self.remind_after < self.expire_after or not self.escalate_after < self.expire_after:
            raise ValueError("remind_after and escalate_after must be fewer business days than expire_after")
        return self

    @property
    def zone(self) -> dt.tzinfo:
        if self.timezone:
            return zoneinfo.ZoneInfo(self.timezone)
        local = dt.datetime.now().astimezone().tzinfo
        return local or dt.UTC


class NoticeSettings(Section):
    """How the gateway signs the notices it sends (held, released, rejected, approval requests)."""

    sender: str = Field(
        "AUP Mail Gateway <postmaster@example.gov>",
        json_schema_extra=fix('the From of every notice, such as "Mail Gateway <postmaster@city.gov>"'),
    )
    bounce_address: str = Field(
        "postmaster@example.gov",
        json_schema_extra=fix("the envelope sender of notices: where undeliverable notices go back to"),
    )
    it_contact: str = Field(
        "the IT help desk (helpdesk@example.gov, extension 4357)",
        json_schema_extra=fix("how people reach IT, quoted in notices"),
    )
