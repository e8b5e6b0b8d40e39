"""No anonymous mail: a From that is missing, empty, or hides who sent it."""

from __future__ import annotations

from pydantic import Field

from milter.mail.message import Message
from policies.base import Finding, Policy, PolicySettings

RESERVED_DOMAINS = ("invalid", "localhost", "local", "example", "test")


class AnonymousSenderSettings(PolicySettings):
    anonymous_names: list[str] = Field(
        ["anonymous", "anon", "nobody", "unknown", "undisclosed", "hidden", "noname", "no-name", "anonymous-sender"],
        json_schema_extra={"fix": "local parts that hide the sender, lower-case"},
    )


class AnonymousSender(Policy):
    name = "anonymous_sender"
    description = (
        "A message must say who sent it: a From header with a real address, and a Sender when there are several."
    )
    Settings = AnonymousSenderSettings

    def check(self, message: Message) -> list[Finding]:
        settings: AnonymousSenderSettings = self.settings  # type: ignore[assignment]
        fix = "Send it again from your own mailbox so the recipient can see who wrote it."
        count = message.header_count("From")
        if count == 0:
            return [
                self.finding(
                    f"The message has no From header, so nobody can tell who sent it. {fix}", ["From: (missing)"]
                )
            ]
        raw = (message.header("From") or "").strip()
        evidence = [f"From: {raw[:200] or '(empty)'}"]
        if count > 1:
            return [self.finding(f"The message has {count} From headers; it must have exactly one. {fix}", evidence)]
        addresses = [addr for _, addr in message.from_addresses if addr]
        if not addresses:  # empty, a bare name, or a group such as "undisclosed-recipients:;"
            return [self.finding(f"The From header names no address, so nobody can tell who sent it. {fix}", evidence)]
        if len(addresses) > 1 and not message.header("Sender"):
            return [
                self.finding(
                    f"The From header lists {len(addresses)} authors but no Sender header says which one sent it. {fix}",
                    evidence,
                )
            ]
        for address in addresses:
            local, _, domain = address.rpartition("@")
            top = domain.rsplit(".", 1)[-1]
            if not local or not domain or ("." not in domain and top not in RESERVED_DOMAINS):
                return [self.finding(f"The From address {address!r} is not a complete address. {fix}", evidence)]
            if top in RESERVED_DOMAINS:
                return [
                    self.finding(
                        f"The From address {address} uses a domain that cannot receive mail ({domain}), which hides the sender. {fix}",
                        evidence,
                    )
                ]
            if local.split("+", 1)[0] in settings.anonymous_names:
                return [self.finding(f"The From address {address} hides who sent the message. {fix}", evidence)]
        return []
