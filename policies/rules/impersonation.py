"""Mail from outside that passes itself off as staff: display names, lookalike domains, Reply-To.

- A display name that is a person's name in the directory, ignoring case,
  accents, punctuation, look-alike letters (UTS #39) and common nickname
  forms ("Mike" for Michael, "Whitfield, Dana"), on an address outside the
  agency: "Dana Whitfield <dana.whitfield.director@gmail.com>". A display
  name that carries an agency address counts too.
- A From, Sender, Reply-To or envelope domain that imitates one of the
  agency's domains (policies/auth/lookalike.py).
- A Reply-To outside the agency on a message whose From claims a staff name.

The directory is indexed once per configuration: every (first name form,
last name) pair maps to its people, so a message costs a few dictionary
lookups, not a pass over the directory. The default action tags: the subject
gets a warning tag and the text and HTML bodies a warning banner at the top
(the archive keeps the message as received and as delivered).
"""

from __future__ import annotations

import html
import itertools
import re
import unicodedata
from collections import defaultdict
from dataclasses import replace
from functools import cached_property, partial
from typing import Literal

import nicknames
from pydantic import Field, FilePath, field_validator, model_validator

from milter.kernel.directory import Directory, Person, domain_of, listed, normalise_address
from milter.mail.edit import edit_text, prepend_to_html, prepend_to_text, set_subject
from milter.mail.message import Direction, Message
from policies.auth.lookalike import Lookalike, find_lookalike, skeleton
from policies.base import Finding, Policy, PolicySettings, SettingsTable
from policies.text.conduct import CATEGORY_ACTION_FIX, CategoryAction, effective
from policies.text.wordlists import list_path, read_list

Kind = Literal["display_name", "lookalike_domain", "reply_to"]
MAX_TOKENS = 12  # display names longer than this are cut: pairs grow with the square
# Words that are part of how names are written, not of the name.
NOT_NAMES = frozenset(
    {
        "mr",
        "mrs",
        "ms",
        "miss",
        "mx",
        "dr",
        "prof",
        "sir",
        "jr",
        "sr",
        "ii",
        "iii",
        "iv",
        "phd",
        "md",
        "esq",
        "the",
        "via",
        "from",
        "on",
        "behalf",
        "of",
        "and",
    }
)
_ADDRESS_IN_NAME = re.compile(r"[\w.+'-]+@[\w-]+(?:\.[\w-]+)+")


def plain_words(text: str) -> list[str]:
    """A name's words: NFKC, no accents, case folded, no punctuation, titles left out ("Dr", "Jr")."""
    text = unicodedata.normalize("NFKD", unicodedata.normalize("NFKC", text))
    text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    return [w for w in re.split(r"[^\w]+|_", text) if len(w) > 1 and w not in NOT_NAMES]


def name_tokens(text: str) -> list[str]:
    """A name as comparable words: plain_words with look-alike letters mapped to one form (UTS #39 skeleton).

    "Dаna" with a Cyrillic "а" and "Whitfie1d" become "dana" and "whitfield";
    the skeleton also writes "m" as "rn", the same on both sides of a comparison.
    """
    return [w for w in (skeleton(word) for word in plain_words(text)) if len(w) > 1]


class NameIndex:
    """(first-name form, last name) -> the people with that name; built once per configuration."""

    def __init__(self, directory: Directory, extra_forms: list[list[str]]) -> None:
        namer = nicknames.NickNamer()
        groups: dict[str, set[str]] = defaultdict(set)
        for group in extra_forms:
            for form in group:
                groups[form] |= set(group)
        self.pairs: dict[frozenset[str], list[Person]] = defaultdict(list)
        people = {p.address: p for p in directory.people.values()}
        for person in people.values():
            words = plain_words(person.name)
            if len(words) < 2:
                continue  # "Postmaster" is a role, not a name anyone copies
            first, last = words[0], name_tokens(words[-1])[-1]
            forms = {first, *groups.get(first, ())}
            for form in list(forms):
                forms |= namer.nicknames_of(form) | namer.canonicals_of(form)
            for form in forms:
                for token in name_tokens(form):
                    if token != last and person not in self.pairs[frozenset((token, last))]:
                        self.pairs[frozenset((token, last))].append(person)

    def match(self, display_name: str) -> list[Person]:
        tokens = list(dict.fromkeys(name_tokens(display_name)))[:MAX_TOKENS]
        found: list[Person] = []
        for a, b in itertools.combinations(tokens, 2):
            for person in self.pairs.get(frozenset((a, b)), ()):
                if person not in found:
                    found.append(person)
        return found


# -- settings ----------------------------------------------------------------


class ImpersonationActions(SettingsTable):
    display_name: CategoryAction = Field(
        default="tag", json_schema_extra={"fix": CATEGORY_ACTION_FIX + ": a staff name on an outside address"}
    )
    lookalike_domain: CategoryAction = Field(
        default="tag", json_schema_extra={"fix": CATEGORY_ACTION_FIX + ": a domain that imitates the agency's"}
    )
    reply_to: CategoryAction = Field(
        default="tag",
        json_schema_extra={"fix": CATEGORY_ACTION_FIX + ": replies sent outside when From claims a staff name"},
    )


class ImpersonationSettings(PolicySettings):
    directions: list[Direction] = Field(
        default=["inbound"],
        json_schema_extra={"fix": 'a list from "inbound", "outbound", "internal"; impersonation comes "inbound"'},
    )
    action: Literal["tag", "hold", "reject"] = Field(
        default="reject", json_schema_extra={"fix": '"tag", "hold" or "reject": the most any kind asks'}
    )
    actions: ImpersonationActions = Field(
        default=ImpersonationActions(),
        json_schema_extra={
            "fix": 'a table such as { display_name = "tag", lookalike_domain = "hold", reply_to = "tag" }'
        },
    )
    exempt_senders: list[str] = Field(
        default=[],
        json_schema_extra={
            "fix": 'outside addresses (or "@domain") allowed to use a staff name, such as a director\'s known personal address'
        },
    )
    trusted_domains: list[str] = Field(
        default=[],
        json_schema_extra={
            "fix": "outside domains that are never lookalikes (a partner agency with a similar name), lower-case"
        },
    )
    nicknames: FilePath | None = Field(
        default=None,
        json_schema_extra={
            "fix": "a file of name forms (NAME: FORM, FORM); leave out for config/wordlists/impersonation_nicknames.txt"
        },
    )
    subject_tag: str = Field(
        default="[Caution: check the sender]", json_schema_extra={"fix": "the tag put in front of the subject"}
    )
    advice: str = Field(
        default="Do not reply, open attachments or follow links until you are sure it is genuine: check with the person "
        "at a phone number or address you already know, or forward the message to IT.",
        json_schema_extra={"fix": "what the reader should do, at the end of the warning banner"},
    )

    @field_validator("exempt_senders", "trusted_domains")
    @classmethod
    def _lower(cls, values: list[str]) -> list[str]:
        return [normalise_address(v) for v in values]

    @model_validator(mode="after")
    def _list_reads(self) -> ImpersonationSettings:
        _forms(self)  # a bad line is a config error now, not a failure per message
        return self


def _forms(settings: ImpersonationSettings) -> list[list[str]]:
    groups = []
    for number, line in enumerate(read_list(list_path(settings.nicknames, "impersonation_nicknames.txt")), 1):
        name, sep, rest = line.partition(":")
        if not sep or not name.strip():
            raise ValueError(f"nicknames entry {number} ({line!r}) is not NAME: FORM, FORM")
        groups.append([f.strip().lower() for f in [name, *rest.split(",")] if f.strip()])
    return groups


# -- the rule ----------------------------------------------------------------


class Impersonation(Policy):
    name = "impersonation"
    description = (
        "Outside mail that uses a staff member's name, a domain that imitates the agency's, or a Reply-To "
        "outside the agency under a staff name is flagged; by default the subject is tagged and a warning banner added."
    )
    Settings = ImpersonationSettings

    @cached_property
    def index(self) -> NameIndex:
        return NameIndex(self.directory, _forms(self.settings))  # type: ignore[arg-type]

    def check(self, message: Message) -> list[Finding]:
        found: list[tuple[Kind, str, list[str], str]] = []  # kind, reason, evidence, banner sentence
        claimed = self._display_names(message)
        for display, address, people in claimed:
            names = " or ".join(f"{p.name} ({p.address})" for p in people) if people else display
            who = people[0].name if people else display
            found.append(
                (
                    "display_name",
                    (
                        f'The sender\'s name "{display}" is the name of {names} in the agency directory, but the message '
                        f"came from {address}, an address outside the agency"
                    ),
                    [f"From: {display} <{address}>", *(f"directory: {p.name} <{p.address}>" for p in people)],
                    f"This message claims to be from {who}, but it was sent from {address}, an address outside the agency.",
                )
            )
        for places, lookalike in self._lookalikes(message):
            where = " and ".join(f"{w} {a}" for w, a in places)
            found.append(
                (
                    "lookalike_domain",
                    f"The domain {lookalike.domain} ({where}) {lookalike.how}",
                    [*(f"{w}: {a}" for w, a in places), f"imitates: {lookalike.own} ({lookalike.how})"],
                    f"The sender's domain {lookalike.domain} is made to look like {lookalike.own}, the agency's own.",
                )
            )
        staff_claim = bool(claimed) or any(self._is_agency(domain_of(a)) for _, a in message.from_addresses if a)
        if staff_claim:
            from_addresses = {a for _, a in message.from_addresses}
            for _, reply in message.addresses("Reply-To"):
                if (
                    reply
                    and not self._is_agency(domain_of(reply))
                    and reply not in from_addresses
                    and not self._exempt(reply)
                ):
                    found.append(
                        (
                            "reply_to",
                            f"The message claims to be from agency staff but replies would go to {reply}, outside the agency",
                            [f"Reply-To: {reply}", *(f"From: {a}" for _, a in message.from_addresses)],
                            f"Replies to this message would go to {reply}, outside the agency, not to the person it claims to be from.",
                        )
                    )
        return self._findings(message, found) if found else []

    def _display_names(self, message: Message) -> list[tuple[str, str, list[Person]]]:
        """(display name, address, people) for each From or Sender that uses a staff name on an outside address."""
        claims: list[tuple[str, str, list[Person]]] = []
        for display, address in [*message.from_addresses, *message.addresses("Sender")]:
            if not display or not address or self._is_agency(domain_of(address)) or self._exempt(address):
                continue
            if self.directory.person(address) is not None:
                continue  # an outside address the directory gives to this person
            people = self.index.match(display)
            shown_addresses = [a.lower() for a in _ADDRESS_IN_NAME.findall(display)]
            if not people and any(self._is_agency(domain_of(a)) and a != address for a in shown_addresses):
                people = [p for a in shown_addresses if (p := self.directory.person(a)) is not None]
                if not people:  # an agency address nobody has: still a claim to be the agency
                    claims.append((display, address, []))
                    continue
            if people:
                claims.append((display, address, people))
        return claims

    def _lookalikes(self, message: Message) -> list[tuple[list[tuple[str, str]], Lookalike]]:
        """Each lookalike domain once, with every place (From, Sender, Reply-To, envelope) that uses it."""
        settings: ImpersonationSettings = self.settings  # type: ignore[assignment]
        places = [("From", a) for _, a in message.from_addresses] + [
            ("Sender", a) for _, a in message.addresses("Sender")
        ]
        places += [("Reply-To", a) for _, a in message.addresses("Reply-To")]
        places.append(("envelope sender", normalise_address(message.envelope.mail_from)))
        found: dict[str, tuple[list[tuple[str, str]], Lookalike]] = {}
        for where, address in places:
            if "@" not in address:
                continue
            lookalike = find_lookalike(domain_of(address), self.directory.domains, settings.trusted_domains)
            if lookalike is not None:
                entry = found.setdefault(lookalike.domain, ([], lookalike))
                if (where, address) not in entry[0]:
                    entry[0].append((where, address))
        return list(found.values())

    def _is_agency(self, domain: str) -> bool:
        return any(domain == d or domain.endswith(f".{d}") for d in self.directory.domains)

    def _exempt(self, address: str) -> bool:
        settings: ImpersonationSettings = self.settings  # type: ignore[assignment]
        return listed(address, settings.exempt_senders)

    def _findings(self, message: Message, found: list[tuple[Kind, str, list[str], str]]) -> list[Finding]:
        settings: ImpersonationSettings = self.settings  # type: ignore[assignment]
        findings: list[Finding] = []
        warnings: list[str] = []
        for kind, reason, evidence, banner in found:
            action = effective(getattr(settings.actions, kind), settings.action)
            if action is None:
                continue
            if action != "deliver":
                warnings.append(banner)
            text = (
                f"{reason} (rule {self.name}, {kind.replace('_', ' ')}). This is how impersonation and payment fraud "
                f"usually start. {_next_step(action)}"
            )
            findings.append(self.finding(text, evidence, action=action, reply="550 5.7.1"))
        if warnings:
            # One banner and one subject tag for the message, carried by the finding that asks the most.
            strongest = max(range(len(findings)), key=lambda i: findings[i].action)
            edit = partial(warn, list(dict.fromkeys(warnings)), settings.advice, settings.subject_tag, message.subject)
            findings[strongest] = replace(findings[strongest], edit=edit)
        return findings


def _next_step(action: str) -> str:
    return {
        "deliver": "The message was delivered; this is only recorded for the mail administrators.",
        "tag": "The message was delivered with a warning at the top and in the subject.",
        "hold": "The message is held until IT reviews it.",
        "reject": "The message was not delivered.",
    }[action]


def warn(warnings: list[str], advice: str, tag: str, subject: str, raw: bytes) -> bytes:
    """The delivered version: a warning banner at the top of the text and HTML bodies, and the subject tagged."""
    plain = "\n".join(["CAUTION: " + " ".join(warnings), advice, "-" * 60])
    block = (
        '<div style="border:2px solid #b00020;background:#fff4f4;color:#1a1a1a;padding:8px 12px;margin:0 0 12px 0;'
        'font-family:Arial,Helvetica,sans-serif;font-size:14px;line-height:1.4">'
        f"<strong>Caution:</strong> {html.escape(' '.join(warnings))}<br>{html.escape(advice)}</div>"
    )
    raw = edit_text(
        raw, lambda text: prepend_to_text(text, plain), lambda text: prepend_to_html(text, block), which="first"
    )
    if tag and not subject.startswith(tag):
        raw = set_subject(raw, f"{tag} {subject}".strip())
    return raw
