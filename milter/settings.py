"""The gateway's configuration: a TOML file validated at start.

Every error names the file, the key, what is wrong and how to fix it. Paths to
files the config refers to (the directory, word lists) are relative to the
config file's folder; data paths (database, blobs, outbox) are relative to the
working directory the gateway starts in, so `make run` keeps them under `var/`.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from archive.config import ArchiveSettings
from milter.units import Duration, Network, Size
from quarantine.approval_settings import ApprovalSettings

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "aup-milter.toml"
CONFIG_ENV = "AUP_MILTER_CONFIG"


class ConfigError(Exception):
    """A configuration problem a person can fix: file, key, problem, fix."""

    def __init__(self, file: str | Path, key: str, problem: str, fix: str) -> None:
        self.file, self.key, self.problem, self.fix = str(file), key, problem, fix
        super().__init__(f"{file}: [{key}] {problem}. Fix: {fix}")


def _fix(text: str) -> Any:
    return {"fix": text}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _host_port(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not (0 <= int(port) <= 65535):
        raise ValueError(f"{value!r} is not HOST:PORT")
    return host.strip("[]") or "0.0.0.0", int(port)


class SmtpSettings(_Section):
    listen: str = Field("127.0.0.1:10025", json_schema_extra=_fix('write HOST:PORT, for example "0.0.0.0:25"'))
    hostname: str = Field(default_factory=socket.getfqdn, json_schema_extra=_fix("the gateway's own host name, used in the banner and Received headers"))
    workers: int = Field(1, ge=1, le=64, json_schema_extra=_fix("a number of SMTP worker processes from 1 to 64, usually the number of cores"))
    max_message_size: Size = Field(25 * 1024 * 1024, ge=1024, json_schema_extra=_fix('a size such as "25MiB" (at least 1KiB)'))
    max_recipients: int = Field(1000, ge=1, json_schema_extra=_fix("the most recipients one message may have, at least 1"))
    timeout: Duration = Field(300.0, gt=0, json_schema_extra=_fix('an idle timeout such as "5m"'))
    trusted_networks: list[Network] = Field(
        default_factory=lambda: [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")],
        json_schema_extra=_fix('a list of networks such as ["10.1.0.0/16", "192.0.2.25/32"]'),
    )
    tls_cert: Path | None = Field(None, json_schema_extra=_fix("the path of a PEM certificate chain, or leave it out"))
    tls_key: Path | None = Field(None, json_schema_extra=_fix("the path of the PEM private key for tls_cert"))
    require_tls: bool = Field(False, json_schema_extra=_fix("true or false"))
    auth_passwords: Path | None = Field(None, json_schema_extra=_fix("a file of LOGIN:ARGON2-HASH lines (see `aup-milter smtp-passwd`), or leave it out"))
    min_free_space: Size = Field(100 * 1000**2, json_schema_extra=_fix('the free space below which new mail is refused with 452, such as "100MB"'))
    max_hops: int = Field(50, ge=5, json_schema_extra=_fix("the most Received headers before a message is treated as a loop"))

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        _host_port(value)
        return value

    @model_validator(mode="after")
    def _cert_and_key(self) -> SmtpSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        return self

    @property
    def address(self) -> tuple[str, int]:
        return _host_port(self.listen)


class ConsoleSettings(_Section):
    enabled: bool = Field(True, json_schema_extra=_fix("true or false"))
    listen: str = Field("127.0.0.1:8025", json_schema_extra=_fix('write HOST:PORT, for example "127.0.0.1:8025"'))
    base_url: str = Field("http://127.0.0.1:8025", json_schema_extra=_fix("the address people use to reach the console, used in links in notices"))
    secret_key_file: Path = Field(Path("var/console-secret"), json_schema_extra=_fix("a file path; the gateway creates it with a random key if missing"))
    session_lifetime: Duration = Field(8 * 3600.0, gt=0, json_schema_extra=_fix('a duration such as "8h"'))
    metrics_networks: list[Network] = Field(
        default_factory=lambda: [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")],
        json_schema_extra=_fix("the networks allowed to read /metrics"),
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        _host_port(value)
        return value

    @property
    def address(self) -> tuple[str, int]:
        return _host_port(self.listen)


class StorageSettings(_Section):
    database: str = Field("sqlite:///var/aup-milter.db", json_schema_extra=_fix('an SQLAlchemy URL: "sqlite:///var/aup-milter.db" or "postgresql+psycopg://user:pass@host/db"'))
    blobs: Path = Field(Path("var/blobs"), json_schema_extra=_fix("a folder for the message store"))

    @field_validator("database")
    @classmethod
    def _check_database(cls, value: str) -> str:
        if not value.startswith(("sqlite:", "postgresql")):
            raise ValueError(f"{value!r} is not a SQLite or PostgreSQL URL")
        return value


class DeliverSettings(_Section):
    url: str = Field("maildir:var/outbox", json_schema_extra=_fix('"smtp://HOST:PORT" for the agency mail server, or "maildir:PATH"'))
    relay_url: str | None = Field(None, json_schema_extra=_fix('"smtp://HOST:PORT" of the relay for recipients outside the local domains, or leave it out to use url'))
    tls: Literal["may", "encrypt", "none"] = Field("may", json_schema_extra=_fix('"may" (STARTTLS when offered), "encrypt" (required) or "none"'))
    tls_verify: bool = Field(False, json_schema_extra=_fix("true to check the downstream certificate"))
    concurrency: int = Field(20, ge=1, le=1000, json_schema_extra=_fix("how many deliveries run at once, 1 to 1000"))
    timeout: Duration = Field(120.0, gt=0, json_schema_extra=_fix('a duration such as "2m"'))
    min_backoff: Duration = Field(300.0, gt=0, json_schema_extra=_fix('the first retry delay, such as "5m"'))
    max_backoff: Duration = Field(4000.0, gt=0, json_schema_extra=_fix('the longest retry delay, such as "1h"'))
    max_lifetime: Duration = Field(5 * 86400.0, gt=0, json_schema_extra=_fix('how long to keep retrying before a bounce, such as "5d"'))
    poll_interval: Duration = Field(1.0, gt=0, json_schema_extra=_fix('how often the queue looks for due work, such as "1s"'))

    @field_validator("url", "relay_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("smtp://", "maildir:")):
            raise ValueError(f"{value!r} is neither smtp://HOST:PORT nor maildir:PATH")
        if value is not None and value.startswith("smtp://"):
            _host_port(value.removeprefix("smtp://").rstrip("/"))
        return value


class DirectorySettings(_Section):
    path: Path = Field(Path("directory.toml"), json_schema_extra=_fix("the directory file, relative to this config file"))


class NoticeSettings(_Section):
    """How the gateway signs the notices it sends (held, released, rejected, approval requests)."""

    sender: str = Field("AUP Mail Gateway <postmaster@example.gov>", json_schema_extra=_fix('the From of every notice, such as "Mail Gateway <postmaster@city.gov>"'))
    bounce_address: str = Field("postmaster@example.gov", json_schema_extra=_fix("the envelope sender of notices: where undeliverable notices go back to"))
    it_contact: str = Field("the IT help desk (helpdesk@example.gov, extension 4357)", json_schema_extra=_fix("how people reach IT, quoted in notices"))


class PipelineSettings(_Section):
    rule_timeout: Duration = Field(30.0, gt=0, json_schema_extra=_fix('how long one rule may take before the message is tempfailed, such as "10s"'))
    scan_threads: int = Field(8, ge=1, le=256, json_schema_extra=_fix("threads that run the rules, 1 to 256"))


class LimitSettings(_Section):
    """Inspection caps, like Postfix's mime_nesting_limit: bounded time and memory."""

    mime_nesting: int = Field(20, ge=1, json_schema_extra=_fix("the deepest MIME nesting inspected"))
    mime_parts: int = Field(1000, ge=1, json_schema_extra=_fix("the most MIME parts inspected"))
    archive_depth: int = Field(5, ge=1, json_schema_extra=_fix("how deep archives inside archives are opened"))
    archive_members: int = Field(1000, ge=1, json_schema_extra=_fix("the most members listed in one archive (ten times this across one message)"))
    archive_expanded: Size = Field(200 * 1024**2, json_schema_extra=_fix('the most bytes unpacked from one message\'s archives, such as "200MiB"'))
    archive_ratio: int = Field(100, ge=2, json_schema_extra=_fix("the largest expansion ratio of an archive member"))
    extract_chars: int = Field(2_000_000, ge=1000, json_schema_extra=_fix("the most characters of text extracted from one attachment"))
    extract_time: Duration = Field(5.0, gt=0, json_schema_extra=_fix('the time budget for unpacking archives and for text extraction of one attachment (twice this per message), such as "5s"'))


class DnsSettings(_Section):
    """The resolver the sender checks (SPF, DKIM, DMARC) use; answers are cached with their TTL."""

    nameservers: tuple[str, ...] = Field((), json_schema_extra=_fix('addresses such as ["192.0.2.53", "[2001:db8::53]:5353"], or leave it out for the system resolver (resolv.conf)'))
    timeout: Duration = Field(5.0, gt=0, le=60, json_schema_extra=_fix('how long one lookup may take before it counts as a temporary error, such as "5s" (keep it well under [pipeline] rule_timeout)'))
    cache_size: int = Field(10_000, ge=0, json_schema_extra=_fix("how many answers the cache keeps (0 turns it off)"))
    max_ttl: int = Field(86_400, ge=0, json_schema_extra=_fix("the longest a positive answer is kept, in seconds"))
    negative_ttl: int = Field(300, ge=0, json_schema_extra=_fix("how long a 'no such record' answer is kept when the zone's SOA does not say, in seconds"))
    max_negative_ttl: int = Field(3_600, ge=0, json_schema_extra=_fix("the longest a 'no such record' answer is kept, in seconds"))

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


class Settings(_Section):
    smtp: SmtpSettings = SmtpSettings()
    console: ConsoleSettings = ConsoleSettings()
    storage: StorageSettings = StorageSettings()
    deliver: DeliverSettings = DeliverSettings()
    directory: DirectorySettings = DirectorySettings()
    pipeline: PipelineSettings = PipelineSettings()
    limits: LimitSettings = LimitSettings()
    notices: NoticeSettings = NoticeSettings()
    approvals: ApprovalSettings = ApprovalSettings()
    archive: ArchiveSettings = ArchiveSettings()
    dns: DnsSettings = DnsSettings()
    policies: dict[str, dict[str, Any]] = Field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    """Validated settings plus where they came from and each rule's settings."""

    path: Path
    settings: Settings
    policies: dict[str, Any]  # policy name -> its validated settings model

    @property
    def directory_path(self) -> Path:
        return self.settings.directory.path


def config_path(explicit: str | Path | None = None) -> Path:
    """--config wins, then $AUP_MILTER_CONFIG, then the embedded default."""
    if explicit:
        return Path(explicit)
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV])
    return DEFAULT_CONFIG


def load_config(path: str | Path | None = None) -> Config:
    path = config_path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "-", "the file does not exist", f"create it, or point --config or ${CONFIG_ENV} at an existing file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "-", f"not valid TOML: {exc}", "correct the syntax at that line") from None
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        raise config_error_from(path, Settings, exc, ()) from None
    settings = _resolve_paths(settings, path)
    return Config(path=path, settings=settings, policies=_validate_policies(path, settings.policies))


def _validate_policies(path: Path, sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    # Imported here, not at the top: the rules import the Message, which imports this module.
    from policies.registry import POLICIES

    known = {policy.name: policy for policy in POLICIES}
    for name in sections:
        if name not in known:
            hint = _did_you_mean(name, known)
            raise ConfigError(path, f"policies.{name}", "no rule has this name", f"{hint}the rules are: {', '.join(sorted(known))}")
    validated: dict[str, Any] = {}
    for name, policy in known.items():
        try:
            validated[name] = policy.Settings.model_validate(sections.get(name, {}))
        except ValidationError as exc:
            raise config_error_from(path, policy.Settings, exc, ("policies", name)) from None
    return validated


def _resolve_paths(settings: Settings, path: Path) -> Settings:
    here = path.resolve().parent
    directory = settings.directory.path
    if not directory.is_absolute():
        directory = here / directory
    return settings.model_copy(update={"directory": DirectorySettings(path=directory)})


def _did_you_mean(word: str, choices: Any) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"did you mean '{close[0]}'? " if close else ""


def config_error_from(path: Path, model: type[BaseModel], exc: ValidationError, prefix: tuple[str, ...]) -> ConfigError:
    error = exc.errors()[0]
    # pydantic adds validator names to the location for unions; keep only keys and indexes
    loc = tuple(str(part) for part in error["loc"] if isinstance(part, int) or str(part).isidentifier())
    key = ".".join(prefix + loc) or "-"
    owner, field = _field_at(model, loc)
    if error["type"] == "extra_forbidden" and owner is not None:
        hint = _did_you_mean(loc[-1], owner.model_fields)
        return ConfigError(path, key, "unknown key", f"{hint}remove it; the keys here are: {', '.join(owner.model_fields)}")
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
