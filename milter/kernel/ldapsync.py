"""Syncing the directory from LDAP / Active Directory, and keeping the last good copy on disk.

The library is ldap3: pure Python, so it installs from a wheel on Python 3.11
with nothing to compile (python-ldap is a C extension over libldap and builds
from source: it needs libldap2-dev, libsasl2-dev and a compiler). python-ldap
is the more active project, ldap3's last release is 2.9.1 (2021), but ldap3
is stable, has paged search, StartTLS and timeouts, and is what a pip
install gets working anywhere.

A sync reads every person and group in one paged search each, maps them
(milter/kernel/ldapmap.py) and writes the result to the cache file (atomic
write and fsync) only when it is whole: any LDAP error, a server that stops
mid-search, a size or time limit, or far fewer people than the last good
copy (`min_ratio`) leaves the cache as it was. Every process loads the cache
and layers the TOML directory on it (its domains, and people, departments,
groups and mailboxes LDAP does not have). The outcome of each attempt is
written beside it, for the logs, `directory check` and /metrics.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import ssl
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from milter.kernel.directory import Department, Directory, Group, Person, load_directory
from milter.kernel.durable import fsync_dir, write_file
from milter.kernel.ldapmap import (
    Entry,
    Skipped,
    Snapshot,
    group_filter,
    map_entries,
    people_filter,
    requested_attributes,
)
from milter.kernel.settings import ConfigError, DirectorySettings, LdapSettings

log = logging.getLogger(__name__)

PAGE_SIZE = 500


class SyncFailed(Exception):
    """A sync that did not produce a directory to use; the last good copy stays."""


@dataclass(frozen=True)
class Status:
    """The last sync attempt: when, whether it worked, what it said."""

    attempted_at: float
    ok: bool
    message: str
    synced_at: float | None  # the last good copy's time, None when there is none
    people: int


def status_path(settings: LdapSettings) -> Path:
    return settings.cache.with_name(settings.cache.name + ".status")


def read_status(settings: LdapSettings) -> Status | None:
    try:
        return Status(**json.loads(status_path(settings).read_text()))
    except (FileNotFoundError, ValueError, TypeError):
        return None


def _write_json(target: Path, data: object) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    write_file(temporary, target, json.dumps(data, indent=1, sort_keys=True).encode(), mode=0o640)
    fsync_dir(target.parent)


def _password(settings: LdapSettings) -> str | None:
    if settings.password_file is None:
        return None
    try:
        return settings.password_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            "[directory.ldap]",
            "password_file",
            f"cannot read {settings.password_file}: {exc.strerror}",
            "check the path and its permissions",
        ) from None


def search(settings: LdapSettings) -> tuple[list[Entry], list[Entry]]:
    """Every person and every group under base_dn; raises SyncFailed on any error or incomplete result."""
    import ldap3
    from ldap3.core.exceptions import LDAPException

    tls = ldap3.Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=str(settings.ca_file) if settings.ca_file else None)
    server = ldap3.Server(
        settings.url,
        use_ssl=settings.url.startswith("ldaps://"),
        tls=tls,
        connect_timeout=max(1, round(settings.timeout)),
        get_info=ldap3.NONE,
    )
    people_attributes, group_attributes = requested_attributes(settings)
    try:
        connection = ldap3.Connection(
            server,
            user=settings.bind_dn or None,
            password=_password(settings),
            receive_timeout=max(1, round(settings.timeout)),
            raise_exceptions=True,
            read_only=True,
        )
        try:
            connection.open()
            if settings.start_tls:
                connection.start_tls()
            connection.bind()
            people = list(_paged(connection, settings, people_filter(settings), people_attributes))
            groups = list(_paged(connection, settings, group_filter(settings), group_attributes))
        finally:
            connection.unbind()
    except LDAPException as exc:
        raise SyncFailed(f"{settings.url}: {type(exc).__name__}: {exc}") from None
    except OSError as exc:
        raise SyncFailed(f"{settings.url}: {exc}") from None
    return people, groups


def _paged(connection: Any, settings: LdapSettings, search_filter: str, attributes: list[str]) -> Iterator[Entry]:
    """One search, page by page; raise_exceptions makes a size/time limit or a lost server raise, not truncate."""
    cookie: bytes | None = None
    while True:
        connection.search(
            settings.base_dn,
            search_filter,
            attributes=attributes,
            paged_size=PAGE_SIZE,
            paged_cookie=cookie,
            time_limit=int(settings.timeout),
        )
        for item in connection.response:
            if item.get("type") == "searchResEntry":
                raw = item["raw_attributes"]
                yield (
                    item["dn"],
                    {name.lower(): [v.decode("utf-8", "replace") for v in values] for name, values in raw.items()},
                )
        control = connection.result.get("controls", {}).get("1.2.840.113556.1.4.319", {})
        cookie = control.get("value", {}).get("cookie")
        if not cookie:
            return


def _encode(snapshot: Snapshot) -> dict[str, Any]:
    def plain(item: object) -> dict[str, Any]:
        return {
            key: sorted(value) if isinstance(value, frozenset) else value
            for key, value in dataclasses.asdict(item).items()  # type: ignore[call-overload]
        }

    return {
        "people": [plain(p) for p in snapshot.people],
        "departments": [plain(d) for d in snapshot.departments],
        "groups": [plain(g) for g in snapshot.groups],
        "skipped": [plain(s) for s in snapshot.skipped],
        "notes": snapshot.notes,
    }


def _decode(data: dict[str, Any]) -> Snapshot:
    return Snapshot(
        people=[
            Person(
                **{
                    **p,
                    "roles": frozenset(p["roles"]),
                    "aliases": frozenset(p["aliases"]),
                    "send_as": frozenset(p["send_as"]),
                }
            )
            for p in data["people"]
        ],
        departments=[Department(**{**d, "delegates": tuple(d["delegates"])}) for d in data["departments"]],
        groups=[Group(**{**g, "members": tuple(g["members"])}) for g in data["groups"]],
        skipped=[Skipped(**s) for s in data["skipped"]],
        notes=list(data["notes"]),
    )


def read_cache(settings: LdapSettings) -> tuple[float, Snapshot] | None:
    try:
        data = json.loads(settings.cache.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except ValueError as exc:
        raise ConfigError(
            settings.cache,
            "-",
            f"the LDAP cache is not valid JSON: {exc}",
            "delete it and run `aup-milter directory sync`",
        ) from None
    return float(data["synced_at"]), _decode(data)


def sync(settings: LdapSettings) -> Snapshot:
    """Search, map, check, and keep the result as the last good copy; raises SyncFailed (cache untouched)."""
    started = time.time()
    previous = read_cache(settings)
    try:
        snapshot = map_entries(*search(settings), settings)
        before = len(previous[1].people) if previous else 0
        if not snapshot.people:
            raise SyncFailed(f"the search under {settings.base_dn} found no people; keeping the last good copy")
        if before and len(snapshot.people) < settings.min_ratio * before:
            raise SyncFailed(
                f"found {len(snapshot.people)} people, fewer than {settings.min_ratio:g} of the last sync's {before};"
                " refused, keeping the last good copy (lower [directory.ldap] min_ratio if the drop is real)"
            )
    except SyncFailed as exc:
        _write_json(
            status_path(settings),
            dataclasses.asdict(
                Status(
                    started,
                    False,
                    str(exc),
                    previous[0] if previous else None,
                    len(previous[1].people) if previous else 0,
                )
            ),
        )
        log.error("directory sync from LDAP failed: %s", exc)
        raise
    _write_json(settings.cache, {"synced_at": started, **_encode(snapshot)})
    message = f"{len(snapshot.people)} people, {len(snapshot.groups)} groups, {len(snapshot.skipped)} skipped"
    _write_json(
        status_path(settings), dataclasses.asdict(Status(started, True, message, started, len(snapshot.people)))
    )
    log.info("directory synced from %s: %s", settings.url, message)
    return snapshot


def combine(base: Directory, snapshot: Snapshot) -> Directory:
    """LDAP's people, departments and groups, with the TOML file's domains and its entries LDAP does not have."""
    people: dict[str, Person] = {}
    for person in snapshot.people:
        for address in (person.address, *person.aliases):
            people[address] = person
    for address, person in base.people.items():
        people.setdefault(address, person)
    departments = {d.id: d for d in snapshot.departments}
    for key, department in base.departments.items():  # the file may name delegates or a head LDAP lacks
        ldap_side = departments.get(key)
        departments[key] = (
            dataclasses.replace(ldap_side, head=department.head or ldap_side.head, delegates=department.delegates)
            if ldap_side
            else department
        )
    groups = {g.address: g for g in snapshot.groups}
    for address, group in base.groups.items():
        groups.setdefault(address, group)
    return Directory(base.domains, base.check_recipients, people, departments, groups, dict(base.mailboxes))


def load(settings: DirectorySettings, *, sync_if_missing: bool = True) -> Directory:
    """The directory every process uses: the TOML file, or with [directory.ldap] the cached LDAP copy on top of it."""
    base = load_directory(settings.path)
    if settings.ldap is None:
        return base
    cached = read_cache(settings.ldap)
    if cached is None:
        if not sync_if_missing:
            raise ConfigError(settings.ldap.cache, "-", "no LDAP copy yet", "run `aup-milter directory sync`")
        try:
            return combine(base, sync(settings.ldap))
        except SyncFailed as exc:
            raise ConfigError(
                "[directory.ldap]",
                "url",
                f"LDAP could not be read and there is no cached copy at {settings.ldap.cache} ({exc})",
                "check url, bind_dn and password_file with `aup-milter directory sync`, or start once while LDAP is up",
            ) from None
    return combine(base, cached[1])
