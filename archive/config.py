"""The `[archive]` configuration: the search index, exports, and the FOIA deadline rule.

Kept beside the archive (milter/kernel/settings.py includes it as one field) so the
archive's keys, their defaults and their fixes live in one place.
"""

from __future__ import annotations

import zoneinfo
from datetime import date
from pathlib import Path

from pydantic import Field, field_validator

from archive.exemptions import CONNECTICUT
from milter.kernel.settings import Section, fix


class FoiaSettings(Section):
    """FOIA requests: when a response is due and which exemptions may be cited."""

    due_business_days: int = Field(
        4,
        ge=0,
        le=365,
        json_schema_extra=fix("the business days after receipt a response is due, 0 to 365 (Connecticut: 4)"),
    )
    holiday_calendar: str | None = Field(
        "US-CT",
        json_schema_extra=fix('a country and optional subdivision such as "US-CT" or "US", or leave it out for none'),
    )
    holidays: list[date] = Field(
        default_factory=list, json_schema_extra=fix("extra closed days as TOML dates, such as [2026-12-24]")
    )
    exemptions: dict[str, str] = Field(
        default_factory=lambda: dict(CONNECTICUT),
        json_schema_extra=fix(
            'a table of code = "description", such as { "1-210(b)(2)" = "Personnel or medical files" }'
        ),
    )

    @field_validator("holiday_calendar")
    @classmethod
    def _check_calendar(cls, value: str | None) -> str | None:
        if value is None:
            return None
        import holidays

        country, _, subdivision = value.partition("-")
        try:
            holidays.country_holidays(country, subdiv=subdivision or None, years=2026)
        except NotImplementedError:
            raise ValueError(f"{value!r} is not a holiday calendar the holidays package knows") from None
        return value


class ArchiveSettings(Section):
    timezone: str = Field(
        "UTC",
        json_schema_extra=fix(
            'an IANA time zone such as "America/New_York": days in searches and reports start at its midnight'
        ),
    )
    indexer: bool = Field(
        True,
        json_schema_extra=fix(
            "true: the gateway keeps the search index current in a background process; false: run `aup-milter archive index` yourself"
        ),
    )
    index_batch: int = Field(
        200, ge=1, le=5000, json_schema_extra=fix("archive records indexed per transaction, 1 to 5000")
    )
    index_max_chars: int = Field(
        1_000_000,
        ge=10_000,
        json_schema_extra=fix("the most characters of one message's text put in the search index (at least 10000)"),
    )
    exports: Path = Field(
        Path("var/exports"), json_schema_extra=fix("the folder where FOIA export packages are written")
    )
    foia: FoiaSettings = FoiaSettings()

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            zoneinfo.ZoneInfo(value)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{value!r} is not a time zone name") from None
        return value

    @property
    def zone(self) -> zoneinfo.ZoneInfo:
        return zoneinfo.ZoneInfo(self.timezone)
