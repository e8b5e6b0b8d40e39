"""What the gateway could not inspect is held for IT, never delivered unread.

Other rules and the Message views record problems (malformed MIME, a cap hit,
a corrupt part); this rule runs last and turns them into one finding. It
computes every content view itself (parts, bodies, archive members, extracted
text), so what could not be inspected is caught even when no other rule
looked that far. Cosmetic defects ("defect") never hold a message.
"""

from __future__ import annotations

from pydantic import Field

from milter.mail.message import Message, ProblemKind
from policies.base import Finding, Policy, PolicySettings

MAX_EVIDENCE = 50


class InspectionSettings(PolicySettings):
    kinds: list[ProblemKind] = Field(
        ["malformed", "cap", "corrupt", "unsupported"],
        json_schema_extra={
            "fix": 'problem kinds that hold a message: "malformed", "cap", "corrupt", "unsupported", "encrypted"'
        },
    )


class Inspection(Policy):
    name = "inspection"
    description = "A message the gateway could not fully inspect (malformed MIME, a size or depth cap, a corrupt part) is held for IT."
    Settings = InspectionSettings

    def check(self, message: Message) -> list[Finding]:
        settings: InspectionSettings = self.settings  # type: ignore[assignment]
        # Compute every view so its problems are known; each is computed once and shared.
        message.text_bodies  # noqa: B018
        message.archive_members  # noqa: B018
        message.attachment_texts  # noqa: B018
        problems = [p for p in message.problems if p.kind in settings.kinds]
        if not problems:
            return []
        reason = (
            "The gateway could not fully inspect this message, so IT will look at it before it is delivered: "
            + "; ".join(str(p) for p in problems[:3])
            + ("" if len(problems) <= 3 else f"; and {len(problems) - 3} more")
        )
        return [self.finding(reason, [f"{p.kind}: {p}" for p in problems[:MAX_EVIDENCE]])]
