"""Staff must not send as someone else: the SMTP AUTH user may use only the addresses the directory gives them.

A message submitted with SMTP AUTH must name, in every From address, in the
Sender (when there is one) and in the envelope sender, an address the
logged-in person may send as (milter/kernel/directory.py `send_as_addresses`): their own
address and aliases, their `send_as` delegations (an assistant for a
director), and the shared mailboxes that list them. Anything else is refused
with a reason that names the login and the identity claimed. The login is an
address, or a local part in one of the agency's domains.

Mail from the trusted mail server (no AUTH) whose From is in an agency domain
but names nobody the directory knows gets `unknown_local_sender`'s action:
off until set, because a directory that does not yet list every shared and
system mailbox would make it hold good mail.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from milter.kernel.directory import normalise_address
from milter.mail.message import Direction, Message
from policies.base import Finding, Policy, PolicySettings
from policies.text.conduct import CATEGORY_ACTION_FIX, NEXT_STEP, CategoryAction, effective


class SenderIdentitySettings(PolicySettings):
    directions: list[Direction] = Field(
        default=["internal", "outbound"],
        json_schema_extra={"fix": 'a list from "internal", "outbound" (mail from inside; "inbound" has no AUTH user)'},
    )
    action: Literal["tag", "hold", "reject"] = Field(
        default="reject", json_schema_extra={"fix": '"tag", "hold" or "reject": what a From the login may not use asks'}
    )
    unknown_login: CategoryAction = Field(
        default="reject", json_schema_extra={"fix": CATEGORY_ACTION_FIX + ": an AUTH login the directory does not list"}
    )
    unknown_local_sender: CategoryAction = Field(
        default="off",
        json_schema_extra={
            "fix": CATEGORY_ACTION_FIX
            + ": mail from the trusted server whose From is in an agency domain but not in the directory"
        },
    )
    check_envelope: bool = Field(
        default=True,
        json_schema_extra={
            "fix": "true to hold the envelope sender (MAIL FROM) to the same rule as From; the null sender is always allowed"
        },
    )
    advice: str = Field(
        default="To send for someone else, ask IT to add a delegation (send_as) or a shared mailbox for you in the directory.",
        json_schema_extra={"fix": "a sentence telling the sender what to do next"},
    )


class SenderIdentity(Policy):
    name = "sender_identity"
    description = "A user logged in with SMTP AUTH may send only as their own addresses and the delegations and shared mailboxes the directory gives them."
    Settings = SenderIdentitySettings

    def check(self, message: Message) -> list[Finding]:
        if message.envelope.auth_user is not None:
            return self._authenticated(message, message.envelope.auth_user)
        if message.envelope.trusted:
            return self._from_trusted_server(message)
        return []

    def login_identity(self, login: str) -> tuple[str, list[str]] | None:
        """Who a login is (a name) and every address it may send as; None when the directory does not know it.

        A login is a person's address or alias, or a local part in one of the
        agency's domains; a shared mailbox that logs in itself (a scanner, a
        ticket system) may send as that mailbox only.
        """
        login = normalise_address(login)
        candidates = [login] if "@" in login else [f"{login}@{d}" for d in sorted(self.directory.domains)]
        for address in candidates:
            person = self.directory.person(address)
            if person is not None:
                return (
                    f"{person.name}, {person.address}" if address != person.address else person.name,
                    self.directory.send_as_addresses(person),
                )
            mailbox = self.directory.mailboxes.get(address)
            if mailbox is not None:
                return f"shared mailbox {mailbox.name or mailbox.address}", [mailbox.address]
        return None

    def _authenticated(self, message: Message, login: str) -> list[Finding]:
        settings: SenderIdentitySettings = self.settings  # type: ignore[assignment]
        identity = self.login_identity(login)
        if identity is None:
            action = effective(settings.unknown_login, settings.action)
            if action is None:
                return []
            reason = (
                f"You are logged in as {login}, which is not in the agency directory, so the gateway cannot tell which "
                f"addresses you may send as (rule {self.name}). {NEXT_STEP[action]} Ask IT to add your login to the directory."
            )
            return [self.finding(reason, [f"login: {login}"], action=action, reply="550 5.7.1")]
        who, may_use = identity
        claims = [("From", address) for _, address in message.from_addresses if address]
        claims += [("Sender", address) for _, address in message.addresses("Sender") if address]
        mail_from = normalise_address(message.envelope.mail_from)
        if settings.check_envelope and mail_from:
            claims.append(("envelope sender", mail_from))
        refused = [(where, address) for where, address in dict.fromkeys(claims) if address not in may_use]
        if not refused:
            return []
        claimed = " and ".join(f"{where} {address}{self._who(address)}" for where, address in refused)
        allowed = ", ".join(may_use)
        reason = (
            f"You are logged in as {login} ({who}) but the message's {claimed} is an identity you may not send as. "
            f"The agency's e-mail policy forbids mail that appears to come from another person or hides who sent it "
            f"(rule {self.name}). You may send as: {allowed}. {settings.advice}"
        )
        evidence = [
            f"login: {login} ({who})",
            *(f"{where}: {address}" for where, address in refused),
            f"may send as: {allowed}",
        ]
        return [self.finding(reason, evidence, reply="550 5.7.1")]

    def _who(self, address: str) -> str:
        someone = self.directory.person(address)
        if someone is not None:
            return f" ({someone.name})"
        mailbox = self.directory.mailboxes.get(normalise_address(address))
        return f" (shared mailbox {mailbox.name or mailbox.address})" if mailbox is not None else ""

    def _from_trusted_server(self, message: Message) -> list[Finding]:
        settings: SenderIdentitySettings = self.settings  # type: ignore[assignment]
        action = effective(settings.unknown_local_sender, settings.action)
        if action is None:
            return []
        unknown = [
            a
            for _, a in message.from_addresses
            if a and self.directory.is_local(a) and not self.directory.knows_recipient(a)
        ]
        if not unknown:
            return []
        reason = (
            f"The message came from the agency's mail server with a From in the agency's domain that the directory "
            f"does not list ({', '.join(unknown)}), so nobody can tell who sent it (rule {self.name}). {NEXT_STEP[action]} "
            "If this is a real mailbox or a system that sends mail, ask IT to add it to the directory."
        )
        return [self.finding(reason, [f"From: {a}" for a in unknown], action=action, reply="550 5.7.1")]
