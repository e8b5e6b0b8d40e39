"""No redirecting agency mail to personal webmail: automatic forwards to Gmail, Yahoo, ... are rejected.

A message counts as forwarded automatically when it carries one of these signs:
- `Auto-Submitted: auto-forwarded` (RFC 3834);
- `Auto-Submitted: auto-generated` on a message that is itself a forward
  ("FW:" subject or a forwarded-message block) — alone it is also what the
  agency's own systems put on notices to residents, which must go through;
- an Outlook or Exchange inbox rule: `X-MS-Exchange-Inbox-Rules-Loop`, or
  `X-MS-Exchange-Generated-Message-Source: Mailbox Rules Agent`;
- a redirect: `Resent-From`, `Resent-Sender` or `Resent-To` (RFC 5322 3.6.6);
- `X-Forwarded-To` or `X-Forwarded-For` (Gmail, Sieve and others);
- an agency envelope sender with a From of an outside party and no mailing
  list headers: a server-side redirect without SRS.
An ordinary message a person writes to a Gmail address is not affected.
"""

from __future__ import annotations

from functools import cached_property
from typing import Literal

import regex
from pydantic import Field, FilePath, field_validator, model_validator

from milter.kernel.directory import domain_of, normalise_address
from milter.mail.message import Direction, Message
from policies.base import Finding, Policy, PolicySettings
from policies.text.wordlists import list_path, read_list

_FORWARD_SUBJECT = regex.compile(r"^\s*(?:\[[^\]]*\]\s*)?(?:fwd?|fw)\s*:", regex.IGNORECASE)
_FORWARD_BLOCK = regex.compile(
    r"^[>\s]*(?:-+\s*forwarded message\s*-+|begin forwarded message\s*:|-+\s*original message\s*-+)",
    regex.IGNORECASE | regex.MULTILINE,
)
RESENT = ("Resent-From", "Resent-Sender", "Resent-To")
FORWARDED = ("X-Forwarded-To", "X-Forwarded-For")
LIST_HEADERS = ("List-Id", "List-Post", "List-Unsubscribe")
TIMEOUT = 2.0


class WebmailForwardingSettings(PolicySettings):
    directions: list[Direction] = Field(
        default=["outbound"],
        json_schema_extra={"fix": 'a list from "inbound", "outbound", "internal"; forwards leave as "outbound"'},
    )
    action: Literal["tag", "hold", "reject"] = Field(
        default="reject", json_schema_extra={"fix": '"tag", "hold" or "reject"'}
    )
    domains: FilePath | None = Field(
        default=None,
        json_schema_extra={
            "fix": "a file of personal webmail domains, one a line; leave out for config/wordlists/webmail_domains.txt"
        },
    )
    exempt_senders: list[str] = Field(
        default=[],
        json_schema_extra={
            "fix": "mailboxes allowed to forward automatically (an approved exception), lower-case addresses"
        },
    )
    advice: str = Field(
        default="Remove the forwarding rule from your mailbox (Outlook: Settings, Mail, Forwarding and Rules); "
        "if you need your mail away from the office, ask IT for approved remote access.",
        json_schema_extra={"fix": "a sentence telling the sender what to do next"},
    )

    @field_validator("exempt_senders")
    @classmethod
    def _lower(cls, values: list[str]) -> list[str]:
        return [normalise_address(v) for v in values]

    @model_validator(mode="after")
    def _list_reads(self) -> WebmailForwardingSettings:
        read_list(list_path(self.domains, "webmail_domains.txt"))
        return self


class WebmailForwarding(Policy):
    name = "webmail_forwarding"
    description = (
        "Mail forwarded automatically to a personal webmail address (Gmail, Yahoo, Outlook.com ...) is rejected."
    )
    Settings = WebmailForwardingSettings

    @cached_property
    def domains(self) -> frozenset[str]:
        settings: WebmailForwardingSettings = self.settings  # type: ignore[assignment]
        return frozenset(d.lower().lstrip("@") for d in read_list(list_path(settings.domains, "webmail_domains.txt")))

    def check(self, message: Message) -> list[Finding]:
        settings: WebmailForwardingSettings = self.settings  # type: ignore[assignment]
        webmail = [r for r in message.envelope.rcpt_to if self.is_webmail(r)]
        if not webmail:
            return []
        signs = self.forwarding_signs(message)
        if not signs:
            return []
        forwarders = {
            normalise_address(message.envelope.mail_from),
            *self._header_addresses(message, ("Resent-From", "Resent-Sender", "X-MS-Exchange-Inbox-Rules-Loop")),
        }
        if forwarders & set(settings.exempt_senders):
            return []
        reason = (
            f"This message was forwarded automatically to personal webmail ({', '.join(webmail)}), which the agency's "
            f"e-mail policy forbids: agency mail may not be redirected to personal accounts (rule {self.name}). "
            f"Signs of automatic forwarding: {'; '.join(signs)}. {settings.advice}"
        )
        return [self.finding(reason, [*signs, *(f"webmail recipient: {r}" for r in webmail)], reply="550 5.7.1")]

    def is_webmail(self, address: str) -> bool:
        domain = domain_of(address)
        parts = domain.split(".")
        return any(".".join(parts[i:]) in self.domains for i in range(len(parts) - 1))

    def forwarding_signs(self, message: Message) -> list[str]:
        """Each sign that the message was forwarded by a rule or a server, quoting the header it is in."""
        signs = []
        auto = (message.header("Auto-Submitted") or "").strip()
        if auto.lower().startswith("auto-forwarded"):
            signs.append(f'"Auto-Submitted: {auto}"')
        elif auto.lower().startswith("auto-generated") and self._is_a_forward(message):
            signs.append(f'"Auto-Submitted: {auto}" on a forwarded message')
        loop = message.header("X-MS-Exchange-Inbox-Rules-Loop")
        if loop is not None:
            signs.append(f'"X-MS-Exchange-Inbox-Rules-Loop: {loop.strip()}" (an Outlook inbox rule)')
        source = message.header("X-MS-Exchange-Generated-Message-Source") or ""
        if "mailbox rules agent" in source.lower():
            signs.append(f'"X-MS-Exchange-Generated-Message-Source: {source.strip()}"')
        for name in (*RESENT, *FORWARDED):
            value = message.header(name)
            if value is not None:
                signs.append(f'"{name}: {value.strip()[:200]}"')
        redirect = self._redirect(message)
        if redirect:
            signs.append(redirect)
        return signs

    def _is_a_forward(self, message: Message) -> bool:
        return bool(
            _FORWARD_SUBJECT.search(message.subject, timeout=TIMEOUT)
            or _FORWARD_BLOCK.search(message.body_text[:100_000], timeout=TIMEOUT)
        )

    def _redirect(self, message: Message) -> str | None:
        """An agency envelope sender passing on an outsider's message unchanged (no SRS, not a mailing list)."""
        mail_from = message.envelope.mail_from
        if not mail_from or not self.directory.is_local(mail_from) or any(message.header(h) for h in LIST_HEADERS):
            return None
        authors = [address for _, address in message.from_addresses if address]
        if authors and not any(self.directory.is_local(a) for a in authors):
            return f"envelope sender <{normalise_address(mail_from)}> is in the agency but From is {authors[0]} (redirected without SRS)"
        return None

    def _header_addresses(self, message: Message, names: tuple[str, ...]) -> set[str]:
        return {address for name in names for _, address in message.addresses(name) if address}
