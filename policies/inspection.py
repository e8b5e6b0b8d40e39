"""What the gateway could not inspect is held for IT, never delivered unread.

Other rules and the Message views record problems (malformed MIME, a cap hit,
a corrupt part); this rule runs last and turns them into one finding. It also
parses the MIME structure itself, so a malformed message is caught even when
no other rule looked inside.
"""

from __future__ import annotations

from pydantic import Field

from milter.message import Message
from policies.base import Finding, Policy, PolicySettings


class InspectionSettings(PolicySettings):
    kinds: list[str] = Field(["malformed", "cap", "corrupt", "unsupported"],
                             json_schema_extra={"fix": 'problem kinds that hold a message: "malformed", "cap", "corrupt", "unsupported", "encrypted"'})


class Inspection(Policy):
    name = "inspection"
    description = "A message the gateway could not fully inspect (malformed MIME, a size or depth cap, a corrupt part) is held for IT."
    Settings = InspectionSettings

    def check(self, message: Message) -> list[Finding]:
        settings: InspectionSettings = self.settings  # type: ignore[assignment]
        message.parts  # noqa: B018 - parse the structure so its problems are known
        problems = [p for p in message.problems if p.kind in settings.kinds]
        if not problems:
            return []
        reason = ("The gateway could not fully inspect this message, so IT will look at it before it is delivered: "
                  + "; ".join(str(p) for p in problems[:3]) + ("" if len(problems) <= 3 else f"; and {len(problems) - 3} more"))
        return [self.finding(reason, [f"{p.kind}: {p}" for p in problems])]
