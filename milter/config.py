"""The gateway's configuration file: every package's sections, composed and loaded.

Paths to files the config refers to (the directory, word lists) are relative
to the config file's folder; data paths (database, blobs, outbox) are relative
to the working directory the gateway starts in, so `make run` keeps them
under `var/`. Each package owns its sections; this module is where the app
registers them.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError

from archive.config import ArchiveSettings
from console.settings import ConsoleSettings
from milter.delivery.settings import DeliverSettings
from milter.intake.settings import MilterSettings, PipelineSettings, SmtpSettings
from milter.kernel.settings import (
    ConfigError,
    DirectorySettings,
    DnsSettings,
    Section,
    StorageSettings,
    config_error_from,
    did_you_mean,
)
from milter.mail.settings import LimitSettings
from quarantine.settings import ApprovalSettings, NoticeSettings

DEFAULT_CONFIG = Path(__file__).resolve().parent.parent / "config" / "aup-milter.toml"
CONFIG_ENV = "AUP_MILTER_CONFIG"


class Settings(Section):
    smtp: SmtpSettings = SmtpSettings()
    milter: MilterSettings = MilterSettings()
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
        raise ConfigError(
            path, "-", "the file does not exist", f"create it, or point --config or ${CONFIG_ENV} at an existing file"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "-", f"not valid TOML: {exc}", "correct the syntax at that line") from None
    errors: list[ConfigError] = []  # every problem in the file, not just the first
    try:
        settings = Settings.model_validate(raw)
    except ValidationError as exc:
        errors.append(config_error_from(path, Settings, exc, ()))
    sections = raw.get("policies", {})
    try:
        policies = _validate_policies(path, sections if isinstance(sections, dict) else {})
    except ConfigError as exc:
        errors.append(exc)
    if errors:
        raise ConfigError.combined(errors)
    return Config(path=path, settings=_resolve_paths(settings, path), policies=policies)


def _validate_policies(path: Path, sections: dict[str, dict[str, Any]]) -> dict[str, Any]:
    # Imported here, not at the top: the rules import the Message, which imports this module.
    from policies.registry import POLICIES

    known = {policy.name: policy for policy in POLICIES}
    errors = [
        ConfigError(
            path,
            f"policies.{name}",
            "no rule has this name",
            f"{did_you_mean(name, known)}the rules are: {', '.join(sorted(known))}",
        )
        for name in sections
        if name not in known
    ]
    validated: dict[str, Any] = {}
    for name, policy in known.items():
        try:
            validated[name] = policy.Settings.model_validate(sections.get(name, {}))
        except ValidationError as exc:
            errors.append(config_error_from(path, policy.Settings, exc, ("policies", name)))
    if errors:
        raise ConfigError.combined(errors)
    return validated


def _resolve_paths(settings: Settings, path: Path) -> Settings:
    here = path.resolve().parent
    directory = settings.directory.path
    if not directory.is_absolute():
        directory = here / directory
    ldap = settings.directory.ldap
    if ldap is not None:
        ldap = ldap.model_copy(
            update={key: here / value for key in ("cache", "password_file", "ca_file") if (value := getattr(ldap, key))}
        )
    return settings.model_copy(update={"directory": DirectorySettings(path=directory, ldap=ldap)})
