"""Configuration machinery every package uses, and the kernel's own sections.

Every error names the file, the key, what is wrong and how to fix it
(`ConfigError`, `config_error_from`). Each package defines the sections it
owns as `Section` models; `milter/config.py` composes them into the file's
`Settings` and loads it.
"""

from __future__ import annotations

import difflib
import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from milter.kernel.units import Duration


class ConfigError(Exception):
    """A configuration problem a person can fix: file, key, problem, fix."""

    def __init__(self, file: str | Path, key: str, problem: str, fix: str) -> None:
        self.file, self.key, self.problem, self.fix = str(file), key, problem, fix
        self.also: list[ConfigError] = []  # the file's other problems, so an admin fixes them in one pass
        super().__init__(f"{file}: [{key}] {problem}. Fix: {fix}")

    @property
    def every(self) -> list[ConfigError]:
        return [self, *self.also]

    @staticmethod
    def combined(errors: list[ConfigError]) -> ConfigError:
        flat = [e for error in errors for e in error.every]
        flat[0].also = flat[1:]
        return flat[0]


def fix(text: str) -> Any:
    return {"fix": text}


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not (0 <= int(port) <= 65535):
        raise ValueError(f"{value!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


class StorageSettings(Section):
    database: str = Field(
        "sqlite:///var/aup-milter.kernel.db",
        json_schema_extra=fix(
            'an SQLAlchemy URL: "sqlite:///var/aup-milter.kernel.db" or "postgresql+psycopg://user:pass@host/db"'
        ),
    )
    blobs: Path = Field(Path("var/blobs"), json_schema_extra=fix("a folder for the message store"))

    @field_validator("database")
    @classmethod
    def _check_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError(f"{value!r} is not a SQLite or PostgreSQL URL")
        return value


class LdapAttributes(Section):
    """Which LDAP attribute holds what; the preset fills what is left out."""

    mail: str | None = Field(None, json_schema_extra=fix("the primary address attribute, such as mail"))
    aliases: str | None = Field(
        None, json_schema_extra=fix('proxyAddresses (AD: "smtp:" entries), mailAlternateAddress, or "" for none')
    )
    name: str | None = Field(None, json_schema_extra=fix("the display name attribute, such as displayName"))
    title: str | None = Field(None, json_schema_extra=fix("the job title attribute, such as title"))
    department: str | None = Field(
        None, json_schema_extra=fix("the department attribute: department (AD), departmentNumber or ou (OpenLDAP)")
    )
    manager: str | None = Field(None, json_schema_extra=fix("the attribute with the manager's DN, such as manager"))


class LdapSettings(Section):
    """Sync the directory's people and groups from LDAP or Active Directory (the TOML file adds to it)."""

    url: str = Field(json_schema_extra=fix("ldaps://dc1.example.gov or ldap://ldap.example.gov:389"))
    preset: Literal["active-directory", "openldap"] = Field(
        "active-directory", json_schema_extra=fix('"active-directory" or "openldap"')
    )
    base_dn: str = Field(json_schema_extra=fix('where people and groups live, such as "dc=example,dc=gov"'))
    bind_dn: str = Field("", json_schema_extra=fix("a read-only service account's DN; empty for an anonymous bind"))
    password_file: Path | None = Field(
        None, json_schema_extra=fix("a file holding the bind password (one line), readable only by the gateway")
    )
    start_tls: bool = Field(False, json_schema_extra=fix("true to upgrade ldap:// with StartTLS"))
    ca_file: Path | None = Field(
        None, json_schema_extra=fix("the CA certificate (PEM) that signed the server's; omit for the system store")
    )
    timeout: Duration = Field(10.0, gt=0, le=300, json_schema_extra=fix("a duration such as 10s"))
    every: Duration = Field(900.0, ge=60, json_schema_extra=fix("how often to sync, such as 15m"))
    min_ratio: float = Field(
        0.9,
        gt=0,
        le=1,
        json_schema_extra=fix("refuse a sync that finds fewer than this share of the last sync's people, such as 0.9"),
    )
    cache: Path = Field(
        Path("var/directory-ldap.json"),
        json_schema_extra=fix("where the last good copy is kept, relative to this config file"),
    )
    people_filter: str | None = Field(None, json_schema_extra=fix("an LDAP filter; the preset's is used if omitted"))
    group_filter: str | None = Field(None, json_schema_extra=fix("an LDAP filter; the preset's is used if omitted"))
    attributes: LdapAttributes = LdapAttributes()
    broadcast_groups: tuple[str, ...] = Field(
        (), json_schema_extra=fix('all-employee lists, by cn, DN or address: ["All Staff"]')
    )
    role_groups: dict[str, tuple[str, ...]] = Field(
        default_factory=dict,
        json_schema_extra=fix('role = [groups], such as "department-head" = ["Department Heads"]'),
    )

    @field_validator("url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        if not value.startswith(("ldap://", "ldaps://")):
            raise ValueError(f"{value!r} is not an ldap:// or ldaps:// URL")
        return value

    @field_validator("role_groups")
    @classmethod
    def _check_roles(cls, value: dict[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        from milter.kernel.directory import ROLES

        for role in value:
            if role not in ROLES:
                raise ValueError(f"unknown role {role!r}; the roles are {', '.join(ROLES)}")
        return value


class DirectorySettings(Section):
    path: Path = Field(
        Path("directory.toml"), json_schema_extra=fix("the directory file, relative to this config file")
    )
    ldap: LdapSettings | None = None


class DnsSettings(Section):
    """The resolver the sender checks (SPF, DKIM, DMARC) use; answers are cached with their TTL."""

    nameservers: tuple[str, ...] = Field(
        (),
        json_schema_extra=fix(
            'addresses such as ["192.0.2.53", "[2001:db8::53]:5353"], or leave it out for the system resolver (resolv.conf)'
        ),
    )
    timeout: Duration = Field(
        5.0,
        gt=0,
        le=60,
        json_schema_extra=fix(
            'how long one lookup may take before it counts as a temporary error, such as "5s" (keep it well under [pipeline] rule_timeout)'
        ),
    )
    cache_size: int = Field(10_000, ge=0, json_schema_extra=fix("how many answers the cache keeps (0 turns it off)"))
    max_ttl: int = Field(86_400, ge=0, json_schema_extra=fix("the longest a positive answer is kept, in seconds"))
    negative_ttl: int = Field(
        300,
        ge=0,
        json_schema_extra=fix(
            "how long a 'no such record' answer is kept when the zone's SOA does not say, in seconds"
        ),
    )
    max_negative_ttl: int = Field(
        3_600, ge=0, json_schema_extra=fix("the longest a 'no such record' answer is kept, in seconds")
    )

    @field_validator("nameservers")
    @classmethod
    def _check_nameservers(cls, values: tuple[str, ...]) -> tuple[str, ...]:
        for value in values:
            host = value.strip()
            if host.startswith("["):
                host = host[1:].partition("]")[0]
            elif host.count(":") == 1:
                host, _, port = host.partition(":")
                if not port.isdigit() or not 0 < int(port) < 65536:
                    raise ValueError(f"{value!r} has no valid port")
            try:
                ipaddress.ip_address(host)
            except ValueError:
                raise ValueError(f"{value!r} is not an IP address (a name would need DNS to find DNS)") from None
        return values


def did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def config_error_from(path: Path, model: type[BaseModel], exc: ValidationError, prefix: tuple[str, ...]) -> ConfigError:
    """The first problem pydantic found, with every other one in `.also`."""
    return ConfigError.combined([_one_error(path, model, error, prefix) for error in exc.errors()])


def _one_error(path: Path, model: type[BaseModel], error: Any, prefix: tuple[str, ...]) -> ConfigError:
    # pydantic adds validator names to the location for unions; keep only keys and indexes
    loc = tuple(str(part) for part in error["loc"] if isinstance(part, int) or str(part).isidentifier())
    key = ".".join(prefix + loc) or "-"
    owner, field = _field_at(model, loc)
    if error["type"] == "extra_forbidden" and owner is not None:
        hint = did_you_mean(loc[-1], owner.model_fields)
        return ConfigError(
            path, key, "unknown key", f"{hint}remove it; the keys here are: {', '.join(owner.model_fields)}"
        )
    problem = error["msg"].removeprefix("Value error, ")
    if "input" in error and error["type"] != "missing" and not isinstance(error["input"], dict):
        problem = f"{error['input']!r}: {problem}"
    extra = getattr(field, "json_schema_extra", None) if field is not None else None
    fix = extra.get("fix") if isinstance(extra, dict) else None
    return ConfigError(path, key, problem, str(fix or "see config/aup-milter.toml for the documented keys"))


def _field_at(model: type[BaseModel], loc: tuple[str, ...]) -> tuple[type[BaseModel] | None, Any]:
    """Walk the models along an error location to the field and its owner."""
    owner: type[BaseModel] | None = model
    field = None
    for part in loc:
        if owner is None or part not in owner.model_fields:
            return owner, field
        field = owner.model_fields[part]
        annotation = field.annotation
        owner = annotation if isinstance(annotation, type) and issubclass(annotation, BaseModel) else None
    return owner, field
