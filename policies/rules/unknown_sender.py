"""A file from a sender the recipient does not know goes to IT first.

The agencies' policies: "any user who receives a file via Electronic Mail
from a source with whom he or she is not familiar MUST contact MHIS [IT] for
assistance before attempting to run, open, or move the file". The gateway
does it for them: an inbound message with files, from a sender unknown to a
recipient, is held in the IT quarantine for that recipient; the recipients
who know the sender get it at once.

A sender is known to a recipient when:
- the recipient has written to the sender through the gateway (the
  correspondence graph, policies/rules/correspondents.py), or IT trusted the pair;
- the sender's address or domain is on the allowlist for everyone, or for the
  recipient's department (`[policies.unknown_sender]`);
- the sender is in one of the agency's own domains and the message is
  authenticated (DMARC, or DKIM/SPF aligned with From).
And in every case only when the sender's identity holds
(`sender_identity_doubt`): a forged partner address counts for nothing.
Inline images under a size (logos in signatures) and signatures, calendar
invitations and delivery reports are not files.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from milter.kernel.directory import domain_of, normalise_address
from milter.kernel.units import Size
from milter.mail.message import Direction, Message
from policies.base import Finding, Mode, Policy, PolicySettings
from policies.rules.authentication import from_authenticated, results
from policies.rules.software import File, files_of, format_size

MAX_FILES_LISTED = 20
# Parts that are not files a person opens: signatures, invitations, reports about delivery.
NOT_FILES = [
    "application/pkcs7-signature",
    "application/x-pkcs7-signature",
    "application/pgp-signature",
    "application/pgp-encrypted",
    "text/calendar",
    "message/delivery-status",
    "message/disposition-notification",
    "text/rfc822-headers",
    "message/feedback-report",
]


def _addresses(values: list[str]) -> list[str]:
    found = []
    for value in values:
        value = normalise_address(value)
        if not value or (not value.startswith("@") and "@" not in value and "." not in value):
            raise ValueError(f"{value!r} is neither an address (name@domain), a domain (domain.org) nor @domain")
        found.append(value.lstrip("@"))
    return found


class Allowlist(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    senders: list[str] = Field(
        [], json_schema_extra={"fix": 'addresses and domains, such as ["billing@vendor.com", "county.org"]'}
    )

    @field_validator("senders")
    @classmethod
    def _check(cls, values: list[str]) -> list[str]:
        return _addresses(values)

    def allows(self, sender: str) -> bool:
        """An address, its domain, or a parent domain of it is listed."""
        domain = domain_of(sender)
        labels = domain.split(".")
        return sender in self.senders or any(".".join(labels[i:]) in self.senders for i in range(len(labels) - 1))


class UnknownSenderSettings(PolicySettings):
    # Monitor until the graph knows the agency's correspondents (`aup-milter known-senders rebuild`, or some weeks
    # of outbound mail): enforcing on an empty graph would quarantine every partner's attachments.
    mode: Mode = Field(
        "monitor",
        json_schema_extra={"fix": '"enforce" once `aup-milter known-senders rebuild` has run, "monitor" or "off"'},
    )
    directions: list[Direction] = Field(
        ["inbound"],
        json_schema_extra={"fix": 'a list from "inbound", "outbound", "internal"; files from outside arrive "inbound"'},
    )
    action: Literal["tag", "hold", "reject"] = Field(
        "hold", json_schema_extra={"fix": '"hold" (the IT quarantine), "tag" or "reject"'}
    )
    partners: Allowlist = Field(
        Allowlist(),
        json_schema_extra={
            "fix": 'a table such as { senders = ["county.org", "billing@vendor.com"] }: known to everyone'
        },
    )
    departments: dict[str, Allowlist] = Field(
        {},
        json_schema_extra={
            "fix": 'a table of department ids, such as { public-works = { senders = ["paving-co.com"] } }'
        },
    )
    inline_image_max: Size = Field(
        128 * 1024,
        json_schema_extra={
            "fix": 'inline images up to this size (logos) are not files, such as "128KiB"; 0 counts every image'
        },
    )
    not_files: list[str] = Field(
        NOT_FILES, json_schema_extra={"fix": "MIME types of parts that are not files a person opens"}
    )
    advice: str = Field(
        "If you know the sender and expected these files, reply to this notice or call IT and they will release the "
        "message to you. Do not ask the sender to send the files again by another route before IT has looked at them.",
        json_schema_extra={"fix": "a sentence telling the recipient what to do next"},
    )


def sender_identity_doubt(message: Message) -> str | None:
    """Why the From address cannot be believed, or None when knowing it means something.

    Authenticated (the authentication rule's results: DMARC pass, or DKIM or
    SPF aligned with From) is believed. A domain that publishes DMARC and
    failed it is not. Otherwise (no DMARC record, or the authentication rule
    off) the envelope sender and the From address must be the same address,
    which at least stops the cheapest forgery (a partner's name in From over
    someone else's envelope).
    """
    author = message.author
    checked = results(message)
    if checked is not None and checked.from_authenticated:
        return None
    if checked is not None and checked.dmarc.result == "fail":
        return f"the sender's domain publishes DMARC and this copy failed it, so it may not be from {author}"
    envelope = normalise_address(message.envelope.mail_from)
    if author == envelope:
        return None
    return (
        f"the sender's identity could not be confirmed (the envelope sender {envelope or '<>'} "
        f"is not the From address {author})"
    )


def is_file(part_file: File, part: Any, settings: UnknownSenderSettings) -> bool:
    if part.content_type in settings.not_files and not part.filename:
        return False
    if part.is_inline_image and part.size <= settings.inline_image_max:
        # An image by content too: a program labelled image/png is a file whatever its header says.
        return not (part_file.true_type is not None and part_file.true_type.mime.startswith("image/"))
    return True


class UnknownSender(Policy):
    name = "unknown_sender"
    description = (
        "An inbound message with files from a sender a recipient does not know is held in the IT quarantine "
        "for that recipient; recipients who know the sender get it."
    )
    Settings = UnknownSenderSettings
    requires = ("authentication",)  # whether the From address is authenticated decides whether it is known

    def check(self, message: Message) -> list[Finding]:
        if not message.attachments:  # the cheap test that ends the work for most mail
            return []
        settings: UnknownSenderSettings = self.settings  # type: ignore[assignment]
        by_path = {part.path: part for part in message.attachments}
        files = [f for f in files_of(message) if f.depth == 0 and is_file(f, by_path[f.path], settings)]
        if not files:
            return []
        unknown, why = self.unknown_recipients(message)
        if not unknown:
            return []
        return [self._finding(message, files, unknown, why)]

    def unknown_recipients(self, message: Message) -> tuple[list[str], str]:
        """The envelope recipients who do not know the sender (as the pipeline keys them), and why."""
        settings: UnknownSenderSettings = self.settings  # type: ignore[assignment]
        recipients = {normalise_address(r): self.person_key(r) for r in message.envelope.rcpt_to}
        sender = message.author
        if sender is None:
            return sorted(recipients), "the message does not name one sender in From"
        if self.directory.is_local(sender):  # known to everyone, if it really is the agency's
            if from_authenticated(message):
                return [], ""
            return sorted(
                recipients
            ), f"{sender} is an agency address, but this copy came from outside without authentication"
        doubt = sender_identity_doubt(message)
        if doubt is not None:
            return sorted(recipients), doubt
        if settings.partners.allows(sender):
            return [], ""
        unknown = {rcpt for rcpt, person in recipients.items() if not self._department_allows(person, sender)}
        if unknown:
            known = self._known(sender, {recipients[r] for r in unknown})
            unknown = {rcpt for rcpt in unknown if recipients[rcpt] not in known}
        return sorted(unknown), (
            f"{', '.join(sorted(unknown))} {'has' if len(unknown) == 1 else 'have'} not written to "
            f"{sender} through the agency's mail system before"
        )

    def person_key(self, address: str) -> str:
        person = self.directory.person(address)
        return person.address if person else normalise_address(address)

    def _department_allows(self, person: str, sender: str) -> bool:
        settings: UnknownSenderSettings = self.settings  # type: ignore[assignment]
        department = self.directory.department_of(person)
        allowlist = settings.departments.get(department.id) if department else None
        return allowlist is not None and allowlist.allows(sender)

    def _known(self, sender: str, people: set[str]) -> set[str]:
        database = self.services.database
        if database is None:  # `aup-milter check` without a database: no one is known, as on a new installation
            return set()
        from policies.rules import correspondents

        with database.read() as connection:
            return correspondents.known_to(connection, sender, people)

    def _finding(self, message: Message, files: list[File], unknown: list[str], why: str) -> Finding:
        settings: UnknownSenderSettings = self.settings  # type: ignore[assignment]
        sender = message.sender or "an unnamed sender"
        listed = [_describe(f, message) for f in files[:MAX_FILES_LISTED]]
        more = f" and {len(files) - MAX_FILES_LISTED} more" if len(files) > MAX_FILES_LISTED else ""
        reason = (
            f"A message from {sender} with {len(files)} file{'s' if len(files) != 1 else ''} ({'; '.join(listed)}{more}) "
            f"is held for IT to check before it reaches {', '.join(unknown)}: {why}, and the agency's policy asks "
            f"that files from unfamiliar senders are checked by IT first (rule {self.name}). {settings.advice}"
        )
        evidence = [f"sender: {sender}", *(f"not known to: {r}" for r in unknown), *(f"file: {d}" for d in listed)]
        return self.finding(reason, evidence, recipients=frozenset(unknown))


def _describe(file: File, message: Message) -> str:
    """A file as the recipient would see it, and what it really is; encrypted archives say so."""
    words = f"{file.name}, {file.true_type.description.split(',')[0] if file.true_type else 'unknown type'}, {format_size(file.size)}"
    inside = [m for m in message.archive_members if m.path.startswith(file.path + "/")]
    locked = [m for m in inside if m.encrypted]
    unlisted = [
        p
        for p in message.problems
        if p.kind == "encrypted" and p.where.startswith(file.path + "/") and not any(m.path == p.where for m in locked)
    ]
    if unlisted:
        words += ", encrypted: its member list cannot be read, so it could not be checked for software or viruses"
    elif locked:
        words += f", encrypted: {len(locked)} file{'s' if len(locked) != 1 else ''} inside could not be checked for software or viruses"
    return words
