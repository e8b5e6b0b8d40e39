"""The intake room's settings: the SMTP listener and the rule pipeline."""

from __future__ import annotations

import ipaddress
import socket
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from milter.kernel.settings import Section, fix, host_port
from milter.kernel.units import Duration, Network, Size


class SmtpSettings(Section):
    listen: str = Field("127.0.0.1:10025", json_schema_extra=fix('write HOST:PORT, for example "0.0.0.0:25"'))
    hostname: str = Field(
        default_factory=socket.getfqdn,
        json_schema_extra=fix("the gateway's own host name, used in the banner and Received headers"),
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        json_schema_extra=fix("a number of SMTP worker processes from 1 to 64, usually the number of cores"),
    )
    max_message_size: Size = Field(
        25 * 1024 * 1024, ge=1024, json_schema_extra=fix('a size such as "25MiB" (at least 1KiB)')
    )
    line_length_limit: Size = Field(
        1024 * 1024,
        ge=998,
        le=64 * 1024 * 1024,
        json_schema_extra=fix(
            'the longest line accepted, without its CRLF: a size from 998 to "64MiB", such as "1MiB"'
        ),
    )
    max_recipients: int = Field(
        1000, ge=1, json_schema_extra=fix("the most recipients one message may have, at least 1")
    )
    timeout: Duration = Field(300.0, gt=0, json_schema_extra=fix('an idle timeout such as "5m"'))
    trusted_networks: list[Network] = Field(
        default_factory=lambda: [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")],
        json_schema_extra=fix('a list of networks such as ["10.1.0.0/16", "192.0.2.25/32"]'),
    )
    tls_cert: Path | None = Field(None, json_schema_extra=fix("the path of a PEM certificate chain, or leave it out"))
    tls_key: Path | None = Field(None, json_schema_extra=fix("the path of the PEM private key for tls_cert"))
    require_tls: bool = Field(False, json_schema_extra=fix("true or false"))
    auth_passwords: Path | None = Field(
        None, json_schema_extra=fix("a file of LOGIN:ARGON2-HASH lines (see `aup-milter smtp-passwd`), or leave it out")
    )
    min_free_space: Size = Field(
        100 * 1000**2, json_schema_extra=fix('the free space below which new mail is refused with 452, such as "100MB"')
    )
    max_hops: int = Field(
        50, ge=5, json_schema_extra=fix("the most Received headers before a message is treated as a loop")
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host_port(value)
        return value

    @model_validator(mode="after")
    def _cert_and_key(self) -> SmtpSettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key go together: set both or neither")
        return self

    @property
    def address(self) -> tuple[str, int]:
        return host_port(self.listen)


class PipelineSettings(Section):
    rule_timeout: Duration = Field(
        30.0, gt=0, json_schema_extra=fix('how long one rule may take before the message is tempfailed, such as "10s"')
    )
    scan_threads: int = Field(8, ge=1, le=256, json_schema_extra=fix("threads that run the rules, 1 to 256"))


class MilterSettings(Section):
    """The milter listener: Postfix smtpd_milters / Sendmail INPUT_MAIL_FILTER talk to it."""

    enabled: bool = Field(False, json_schema_extra=fix("true or false"))
    listen: str = Field(
        "inet:127.0.0.1:11332",
        json_schema_extra=fix('write "inet:HOST:PORT" (such as "inet:127.0.0.1:11332") or "unix:/PATH/TO/SOCKET"'),
    )
    timeout: Duration = Field(
        300.0, gt=0, json_schema_extra=fix('how long the MTA may stay silent mid-conversation, such as "5m"')
    )
    progress_interval: Duration = Field(
        5.0,
        gt=0,
        json_schema_extra=fix(
            'how often to tell the MTA the rules are still running, such as "5s" (well under its milter_content_timeout)'
        ),
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        milter_address(value)
        return value

    @property
    def address(self) -> tuple[str, int] | Path:
        return milter_address(self.listen)


def milter_address(value: str) -> tuple[str, int] | Path:
    """ "inet:HOST:PORT" -> (host, port); "unix:/path" or "local:/path" -> the socket's path."""
    kind, _, rest = value.partition(":")
    if kind in ("unix", "local") and rest.startswith("/"):
        return Path(rest)
    if kind == "inet":
        return host_port(rest)
    raise ValueError(f'{value!r} is neither "inet:HOST:PORT" nor "unix:/PATH"')
