"""Turning LDAP / Active Directory entries into the directory's people, departments and groups.

Pure functions over (DN, attributes) pairs, so the mapping is tested without a
server; milter/kernel/ldapsync.py does the searching. What the mapping reads:

- people: the primary address (AD: the `SMTP:` entry of proxyAddresses, else
  `mail`), aliases (AD: every `smtp:` entry), name, title, department and
  manager. Skipped, and said why: no address, a disabled account (AD
  userAccountControl bit 2), an address another person already has.
- groups: members are expanded through nested groups here, with a cycle
  guard (so it works the same on OpenLDAP and AD, in one search of the
  groups instead of one LDAP_MATCHING_RULE_IN_CHAIN query per group).
  A group with an address becomes a directory group (its size = the enabled
  people it reaches); any group, with or without an address, can give a role.
- departments: one per distinct department value, its id the value in
  lower-case-with-dashes. The head is the member of the department-head role
  group whose department it is; failing that, the top of the manager chain
  inside the department (the person there whose manager is outside it, with
  the most people under them). AD has both in most agencies; neither needs
  an extra attribute.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from milter.kernel.directory import Department, Group, Person, _address
from milter.kernel.settings import LdapSettings

Attributes = dict[str, list[str]]  # lower-cased attribute name -> values
Entry = tuple[str, Attributes]  # DN and attributes

UAC_ACCOUNTDISABLE = 0x2


@dataclass(frozen=True)
class Preset:
    people_filter: str
    group_filter: str
    attributes: dict[str, str]
    member: tuple[str, ...]
    account_control: bool  # AD: userAccountControl marks disabled accounts


PRESETS = {
    "active-directory": Preset(
        "(&(objectCategory=person)(objectClass=user))",
        "(objectClass=group)",
        {
            "mail": "mail",
            "aliases": "proxyAddresses",
            "name": "displayName",
            "title": "title",
            "department": "department",
            "manager": "manager",
        },
        ("member",),
        True,
    ),
    "openldap": Preset(
        "(objectClass=inetOrgPerson)",
        "(|(objectClass=groupOfNames)(objectClass=groupOfUniqueNames))",
        {
            "mail": "mail",
            "aliases": "",
            "name": "displayName",
            "title": "title",
            "department": "departmentNumber",
            "manager": "manager",
        },
        ("member", "uniqueMember"),
        False,
    ),
}


def attribute_names(settings: LdapSettings) -> dict[str, str]:
    """The preset's attribute names with the admin's overrides."""
    names = dict(PRESETS[settings.preset].attributes)
    names.update({key: value for key, value in settings.attributes.model_dump().items() if value is not None})
    return names


def people_filter(settings: LdapSettings) -> str:
    return settings.people_filter or PRESETS[settings.preset].people_filter


def group_filter(settings: LdapSettings) -> str:
    return settings.group_filter or PRESETS[settings.preset].group_filter


def requested_attributes(settings: LdapSettings) -> tuple[list[str], list[str]]:
    """The attributes to ask for: (people, groups)."""
    preset = PRESETS[settings.preset]
    people = [name for name in attribute_names(settings).values() if name] + ["cn"]
    if preset.account_control:
        people.append("userAccountControl")
    groups = ["cn", "mail", *preset.member] + (["proxyAddresses"] if preset.account_control else [])
    return people, groups


def normalise_dn(dn: str) -> str:
    return ",".join(part.strip() for part in dn.lower().split(","))


def department_id(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


@dataclass(frozen=True)
class Skipped:
    dn: str
    reason: str


@dataclass
class Snapshot:
    """What one sync read: the directory's parts and what was left out, and why."""

    people: list[Person] = field(default_factory=list)
    departments: list[Department] = field(default_factory=list)
    groups: list[Group] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # heads found by manager chain, missing configured groups


def _first(attributes: Attributes, name: str) -> str:
    values = attributes.get(name.lower()) if name else None
    return values[0].strip() if values else ""


def _addresses(attributes: Attributes, names: dict[str, str]) -> tuple[str, list[str]]:
    """The primary address and the aliases: AD's "SMTP:" is primary, "smtp:" an alias; other values are plain addresses."""
    mail = _first(attributes, names["mail"])
    primary, aliases = "", []
    for value in attributes.get(names["aliases"].lower(), []) if names["aliases"] else []:
        kind, colon, address = value.partition(":")
        if not colon:
            aliases.append(value)
        elif kind == "SMTP":
            primary = address
        elif kind.lower() == "smtp":
            aliases.append(address)
    primary = primary or mail
    if mail and mail.lower() != primary.lower():
        aliases.append(mail)
    return primary, aliases


def _disabled(attributes: Attributes) -> bool:
    control = _first(attributes, "userAccountControl")
    return control.isdigit() and bool(int(control) & UAC_ACCOUNTDISABLE)


def _matches(selector: str, dn: str, attributes: Attributes) -> bool:
    selector = selector.strip().lower()
    return (
        normalise_dn(selector) == normalise_dn(dn)
        or selector in (v.lower() for v in attributes.get("cn", []))
        or selector in (v.lower() for v in attributes.get("mail", []))
    )


def map_entries(people_entries: Iterable[Entry], group_entries: Iterable[Entry], settings: LdapSettings) -> Snapshot:
    preset = PRESETS[settings.preset]
    names = attribute_names(settings)
    snapshot = Snapshot()
    taken: dict[str, str] = {}  # address -> the DN that has it
    by_dn: dict[str, dict[str, object]] = {}
    for dn, attributes in sorted(people_entries, key=lambda entry: normalise_dn(entry[0])):
        if preset.account_control and _disabled(attributes):
            snapshot.skipped.append(Skipped(dn, "disabled account (userAccountControl)"))
            continue
        primary, aliases = _addresses(attributes, names)
        if not primary:
            snapshot.skipped.append(Skipped(dn, f"no {names['mail']} attribute"))
            continue
        try:
            primary = _address(primary)
        except ValueError as exc:
            snapshot.skipped.append(Skipped(dn, str(exc)))
            continue
        if primary in taken:
            snapshot.skipped.append(Skipped(dn, f"{primary} is also the address of {taken[primary]}"))
            continue
        taken[primary] = dn
        kept: list[str] = []
        for alias in aliases:
            try:
                alias = _address(alias)
            except ValueError:
                continue
            if alias == primary or alias in kept:
                continue
            if alias in taken:
                snapshot.skipped.append(Skipped(dn, f"alias {alias} left out: it is also {taken[alias]}'s"))
                continue
            taken[alias] = dn
            kept.append(alias)
        by_dn[normalise_dn(dn)] = {
            "address": primary,
            "aliases": kept,
            "name": _first(attributes, names["name"]) or _first(attributes, "cn") or primary,
            "title": _first(attributes, names["title"]),
            "department": _first(attributes, names["department"]),
            "manager_dn": normalise_dn(_first(attributes, names["manager"])),
        }

    groups = {normalise_dn(dn): (dn, attributes) for dn, attributes in group_entries}

    def reach(dn: str) -> set[str]:
        """The people (normalised DNs) a group reaches through nested groups; `seen` stops cycles."""
        found: set[str] = set()
        seen: set[str] = set()
        stack = [dn]
        while stack:
            current = stack.pop()
            if current in seen:
                continue
            seen.add(current)
            for member_attribute in preset.member:
                for member in groups[current][1].get(member_attribute.lower(), []):
                    member = normalise_dn(member)
                    if member in groups:
                        stack.append(member)
                    elif member in by_dn:
                        found.add(member)
        return found

    reached = {dn: reach(dn) for dn in groups}

    def selected(selectors: Iterable[str], what: str) -> set[str]:
        chosen: set[str] = set()
        for selector in selectors:
            hits = {dn for dn, (raw_dn, attributes) in groups.items() if _matches(selector, raw_dn, attributes)}
            if not hits:
                snapshot.notes.append(f"{what} group {selector!r} was not found under {settings.base_dn}")
            chosen |= hits
        return chosen

    roles: dict[str, set[str]] = {dn: set() for dn in by_dn}
    for role, selectors in settings.role_groups.items():
        for group_dn in selected(selectors, role):
            for person_dn in reached[group_dn]:
                roles[person_dn].add(role)
    broadcast = selected(settings.broadcast_groups, "broadcast")

    departments: dict[str, list[str]] = {}
    for dn, person in by_dn.items():
        if person["department"]:
            departments.setdefault(str(person["department"]), []).append(dn)
    heads: dict[str, str] = {}
    for name, members in sorted(departments.items()):
        candidates = sorted(dn for dn in members if "department-head" in roles[dn])
        if not candidates:
            candidates = _top_of_chain(members, by_dn)
            if candidates:
                snapshot.notes.append(f"{name}: head {by_dn[candidates[0]]['address']} found by the manager chain")
        if len(candidates) > 1:
            snapshot.notes.append(f"{name}: {len(candidates)} heads found; {by_dn[candidates[0]]['address']} is used")
        if candidates:
            heads[name] = candidates[0]
        snapshot.departments.append(
            Department(department_id(name), name, str(by_dn[candidates[0]]["address"]) if candidates else None, ())
        )

    for dn, person in by_dn.items():
        manager = by_dn.get(str(person["manager_dn"]))
        department = str(person["department"])
        snapshot.people.append(
            Person(
                address=str(person["address"]),
                name=str(person["name"]),
                title=str(person["title"]),
                department=department_id(department) if department else None,
                roles=frozenset(roles[dn]),
                aliases=frozenset(person["aliases"]),  # type: ignore[call-overload]
                send_as=frozenset(),
                manager=str(manager["address"]) if manager else None,
            )
        )
    for dn, (raw_dn, attributes) in sorted(groups.items()):
        primary, _ = _addresses(attributes, {"mail": "mail", "aliases": "proxyAddresses"})
        if not primary:
            continue
        members = sorted(str(by_dn[p]["address"]) for p in reached[dn])
        try:
            address = _address(primary)
        except ValueError as exc:
            snapshot.skipped.append(Skipped(raw_dn, str(exc)))
            continue
        if address in taken:
            snapshot.skipped.append(Skipped(raw_dn, f"group address {address} is also {taken[address]}'s"))
            continue
        taken[address] = raw_dn
        name = _first(attributes, "cn")
        snapshot.groups.append(Group(address, name, dn in broadcast, len(members), tuple(members)))
    return snapshot


def _top_of_chain(members: list[str], by_dn: dict[str, dict[str, object]]) -> list[str]:
    """The people in a department whose manager is not in it, the one with most people under them first."""
    inside = set(members)
    tops = [dn for dn in members if by_dn[dn]["manager_dn"] not in inside]

    def under(top: str) -> int:
        count, frontier, seen = 0, [top], {top}
        while frontier:
            boss = frontier.pop()
            for dn in members:
                if dn not in seen and by_dn[dn]["manager_dn"] == boss:
                    seen.add(dn)
                    frontier.append(dn)
                    count += 1
        return count

    return sorted(tops, key=lambda dn: (-under(dn), dn))
