"""The agency directory: local domains, people, departments, groups and shared mailboxes.

Loaded from a TOML file the admin keeps (see config/directory.toml); with
[directory.ldap] the people and groups come from LDAP or Active Directory
(milter/kernel/ldapsync.py) and the file adds to them. Addresses are
compared lower-cased.
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from milter.kernel.settings import ConfigError, config_error_from

ROLES = ("department-head", "leadership", "it-staff", "records-officer", "admin")


def normalise_address(address: str) -> str:
    return address.strip().strip("<>").lower()


def domain_of(address: str) -> str:
    return normalise_address(address).rpartition("@")[2]


def listed(address: str, entries: Iterable[str]) -> bool:
    """Whether an address is on a list of addresses and "@domain" entries (that domain exactly, not subdomains)."""
    address = normalise_address(address)
    at_domain = "@" + address.rpartition("@")[2]
    return any(entry.lower() in (address, at_domain) for entry in entries)


class _Entry(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _address(value: str) -> str:
    value = normalise_address(value)
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain:
        raise ValueError(f"{value!r} is not an email address")
    return value


class PersonEntry(_Entry):
    address: str = Field(json_schema_extra={"fix": "the person's primary address, such as sortiz@example.gov"})
    name: str = Field(json_schema_extra={"fix": "the person's display name"})
    title: str = Field("", json_schema_extra={"fix": "the job title, as used in approval notes"})
    department: str | None = Field(None, json_schema_extra={"fix": "the id of a department in [[departments]]"})
    roles: list[str] = Field(
        default_factory=list, json_schema_extra={"fix": f"a list of roles from: {', '.join(ROLES)}"}
    )
    aliases: list[str] = Field(
        default_factory=list, json_schema_extra={"fix": "other addresses that deliver to this person"}
    )
    send_as: list[str] = Field(
        default_factory=list,
        json_schema_extra={"fix": "addresses this person may send as (shared mailboxes, delegations)"},
    )

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        return _address(value)

    @field_validator("aliases", "send_as")
    @classmethod
    def _check_addresses(cls, values: list[str]) -> list[str]:
        return [_address(v) for v in values]

    @field_validator("roles")
    @classmethod
    def _check_roles(cls, values: list[str]) -> list[str]:
        for role in values:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}")
        return values


class DepartmentEntry(_Entry):
    id: str = Field(json_schema_extra={"fix": "a short id such as public-works"})
    name: str = Field(json_schema_extra={"fix": "the department's name"})
    head: str | None = Field(None, json_schema_extra={"fix": "the head's address, a person in [[people]]"})
    delegates: list[str] = Field(
        default_factory=list, json_schema_extra={"fix": "addresses of people who may approve for the head"}
    )

    @field_validator("head")
    @classmethod
    def _check_head(cls, value: str | None) -> str | None:
        return None if value is None else _address(value)

    @field_validator("delegates")
    @classmethod
    def _check_delegates(cls, values: list[str]) -> list[str]:
        return [_address(v) for v in values]


class GroupEntry(_Entry):
    address: str = Field(json_schema_extra={"fix": "the group's address, such as all-staff@example.gov"})
    name: str = Field("", json_schema_extra={"fix": "the group's name"})
    broadcast: bool = Field(False, json_schema_extra={"fix": "true for all-employee or large broadcast lists"})
    size: int | None = Field(None, ge=0, json_schema_extra={"fix": "how many people the group reaches, if known"})
    members: list[str] = Field(default_factory=list, json_schema_extra={"fix": "member addresses, if known"})

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        return _address(value)


class MailboxEntry(_Entry):
    address: str = Field(json_schema_extra={"fix": "the shared mailbox's address, such as permits@example.gov"})
    name: str = Field("", json_schema_extra={"fix": "the mailbox's name, such as Permits Office"})
    senders: list[str] = Field(
        default_factory=list, json_schema_extra={"fix": "addresses of the people who may send as this mailbox"}
    )

    @field_validator("address")
    @classmethod
    def _check_address(cls, value: str) -> str:
        return _address(value)

    @field_validator("senders")
    @classmethod
    def _check_senders(cls, values: list[str]) -> list[str]:
        return [_address(v) for v in values]


class DirectoryFile(_Entry):
    domains: list[str] = Field(json_schema_extra={"fix": 'the agency\'s own mail domains, such as ["example.gov"]'})
    check_recipients: bool = Field(
        True, json_schema_extra={"fix": "true to refuse unknown local recipients at RCPT time"}
    )
    people: list[PersonEntry] = Field(default_factory=list)
    departments: list[DepartmentEntry] = Field(default_factory=list)
    groups: list[GroupEntry] = Field(default_factory=list)
    mailboxes: list[MailboxEntry] = Field(default_factory=list)

    @field_validator("domains")
    @classmethod
    def _check_domains(cls, values: list[str]) -> list[str]:
        if not values:
            raise ValueError("at least one local domain is needed")
        return [v.strip().lower() for v in values]


@dataclass(frozen=True)
class Person:
    address: str
    name: str
    title: str
    department: str | None
    roles: frozenset[str]
    aliases: frozenset[str]
    send_as: frozenset[str]
    manager: str | None = None  # the manager's address, when the directory came from LDAP


@dataclass(frozen=True)
class Department:
    id: str
    name: str
    head: str | None
    delegates: tuple[str, ...]


@dataclass(frozen=True)
class Group:
    address: str
    name: str
    broadcast: bool
    size: int | None
    members: tuple[str, ...]


@dataclass(frozen=True)
class Mailbox:
    """A shared mailbox: not a person, but people may send as it."""

    address: str
    name: str
    senders: frozenset[str]


@dataclass(frozen=True)
class Directory:
    domains: frozenset[str]
    check_recipients: bool = True
    people: dict[str, Person] = field(default_factory=dict)  # every address and alias -> person
    departments: dict[str, Department] = field(default_factory=dict)
    groups: dict[str, Group] = field(default_factory=dict)
    mailboxes: dict[str, Mailbox] = field(default_factory=dict)

    def is_local(self, address: str) -> bool:
        return domain_of(address) in self.domains

    def person(self, address: str) -> Person | None:
        return self.people.get(normalise_address(address))

    def group(self, address: str) -> Group | None:
        return self.groups.get(normalise_address(address))

    def department_of(self, address: str) -> Department | None:
        person = self.person(address)
        if person is None or person.department is None:
            return None
        return self.departments.get(person.department)

    def knows_recipient(self, address: str) -> bool:
        """Whether a local address exists: a person, an alias or a group."""
        address = normalise_address(address)
        return address in self.people or address in self.groups or address in self.mailboxes

    @property
    def lists_people(self) -> bool:
        return self.check_recipients and bool(self.people or self.groups or self.mailboxes)

    def send_as_addresses(self, person: Person) -> list[str]:
        """Every address a person may put in From or Sender, their own first: their address and aliases,
        their send_as delegations, and the shared mailboxes that list them as a sender."""
        shared = [m.address for m in self.mailboxes.values() if m.senders & {person.address, *person.aliases}]
        return list(dict.fromkeys([person.address, *sorted(person.aliases), *sorted(person.send_as), *sorted(shared)]))


def load_directory(path: Path) -> Directory:
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(
            path,
            "-",
            "the directory file does not exist",
            "create it (see config/directory.toml) or set [directory] path",
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "-", f"not valid TOML: {exc}", "correct the syntax at that line") from None
    try:
        parsed = DirectoryFile.model_validate(raw)
    except ValidationError as exc:
        raise config_error_from(path, DirectoryFile, exc, ()) from None
    return _build(path, parsed)


def _build(path: Path, parsed: DirectoryFile) -> Directory:
    departments = {d.id: Department(d.id, d.name, d.head, tuple(d.delegates)) for d in parsed.departments}
    people: dict[str, Person] = {}
    for index, entry in enumerate(parsed.people):
        if entry.department is not None and entry.department not in departments:
            raise ConfigError(
                path,
                f"people.{index}.department",
                f"no department has id {entry.department!r}",
                f"use one of: {', '.join(departments) or '(add a [[departments]] entry)'}",
            )
        person = Person(
            entry.address,
            entry.name,
            entry.title,
            entry.department,
            frozenset(entry.roles),
            frozenset(entry.aliases),
            frozenset(entry.send_as),
        )
        for address in (entry.address, *entry.aliases):
            if address in people:
                raise ConfigError(
                    path, f"people.{index}", f"{address} is listed twice", "give each address to one person"
                )
            people[address] = person
    for index, dept in enumerate(parsed.departments):
        for address in filter(None, (dept.head, *dept.delegates)):
            if address not in people:
                raise ConfigError(
                    path,
                    f"departments.{index}",
                    f"{address} is not in [[people]]",
                    "add the person or correct the address",
                )
    groups = {g.address: Group(g.address, g.name, g.broadcast, g.size, tuple(g.members)) for g in parsed.groups}
    mailboxes: dict[str, Mailbox] = {}
    for index, box in enumerate(parsed.mailboxes):
        if box.address in people or box.address in groups or box.address in mailboxes:
            raise ConfigError(
                path,
                f"mailboxes.{index}.address",
                f"{box.address} is also a person, a group or another mailbox",
                "give each address one entry",
            )
        for sender in box.senders:
            if sender not in people:
                raise ConfigError(
                    path,
                    f"mailboxes.{index}.senders",
                    f"{sender} is not in [[people]]",
                    "add the person or correct the address",
                )
        mailboxes[box.address] = Mailbox(box.address, box.name, frozenset(people[s].address for s in box.senders))
    return Directory(frozenset(parsed.domains), parsed.check_recipients, people, departments, groups, mailboxes)
