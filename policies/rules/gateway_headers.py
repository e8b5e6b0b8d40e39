"""Headers only the gateway writes are removed from the mail it receives.

A recipient trusts `X-AUP-Approved-By` to mean a department head approved a
broadcast, and `X-AUP-Notice` to mean the gateway wrote the message. A sender
who writes them himself must not be believed: the delivered copy loses them
(the archive keeps the message as it came).
"""

from __future__ import annotations

from functools import reduce

from pydantic import Field

from milter.mail import edit
from milter.mail.message import Message
from policies.base import Action, Finding, Policy, PolicySettings


class GatewayHeaderSettings(PolicySettings):
    headers: list[str] = Field(
        ["X-AUP-Approved-By", "X-AUP-Notice", "X-AUP-Milter-Tag"],
        json_schema_extra={"fix": "the header names only the gateway may write"},
    )


class GatewayHeaders(Policy):
    name = "gateway_headers"
    description = "Headers only the gateway writes (approvals, notices, tags) are removed from incoming mail."
    Settings = GatewayHeaderSettings

    def check(self, message: Message) -> list[Finding]:
        settings: GatewayHeaderSettings = self.settings  # type: ignore[assignment]
        present = [name for name in settings.headers if message.header_count(name)]
        if not present:
            return []
        evidence = [f"{name}: {message.header(name)}" for name in present]
        return [
            Finding(
                self.name,
                Action.DELIVER,
                f"The message carried headers only the gateway writes ({', '.join(present)}); they were removed "
                "from the delivered copy so that nobody mistakes them for the gateway's word.",
                tuple(evidence),
                edit=lambda raw: reduce(edit.remove_headers, present, raw),
            )
        ]
