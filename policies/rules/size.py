"""Messages larger than the agency allows, per direction."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from milter.kernel.units import Size
from milter.mail.message import Message
from policies.base import Finding, Policy, PolicySettings


class PerDirection(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    inbound: Size = 25 * 1024 * 1024
    outbound: Size = 25 * 1024 * 1024
    internal: Size = 25 * 1024 * 1024


class SizeSettings(PolicySettings):
    action: Literal["tag", "hold", "reject"] = Field("reject", json_schema_extra={"fix": '"tag", "hold" or "reject"'})
    max_bytes: PerDirection = Field(
        PerDirection(),
        json_schema_extra={"fix": 'a table such as { inbound = "25MiB", outbound = "20MiB", internal = "50MiB" }'},
    )
    advice: str = Field(
        "Share large files through the agency's file-sharing service instead, or split them over several messages.",
        json_schema_extra={"fix": "a sentence telling the sender what to do instead"},
    )


def megabytes(size: int) -> str:
    return f"{size / 1024 / 1024:.1f} MB"


def sizes(size: int, limit: int) -> tuple[str, str]:
    """Both sizes in MB, or in bytes when rounding would show a message just over as equal to its limit."""
    if megabytes(size) == megabytes(limit):
        return f"{size:,} bytes", f"{limit:,} bytes"
    return megabytes(size), megabytes(limit)


class SizeLimit(Policy):
    name = "size"
    description = "A message larger than the limit for its direction is refused."
    Settings = SizeSettings

    def check(self, message: Message) -> list[Finding]:
        settings: SizeSettings = self.settings  # type: ignore[assignment]
        limit = getattr(settings.max_bytes, message.direction)
        if message.size <= limit:
            return []
        where = {
            "inbound": "mail into the agency",
            "outbound": "mail leaving the agency",
            "internal": "mail within the agency",
        }[message.direction]
        shown, allowed = sizes(message.size, limit)
        reason = f"The message is {shown}; the limit for {where} is {allowed}. {settings.advice}"
        return [self.finding(reason, [f"size={message.size}", f"limit={limit}"], reply="552 5.3.4")]
