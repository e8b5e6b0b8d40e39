"""The console's settings: where it listens and how its sessions last."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, ValidationInfo, field_validator

from milter.kernel.settings import Section, fix, host_port
from milter.kernel.units import Duration, Network


class ConsoleSettings(Section):
    enabled: bool = Field(True, json_schema_extra=fix("true or false"))
    listen: str = Field("127.0.0.1:8025", json_schema_extra=fix('write HOST:PORT, for example "127.0.0.1:8025"'))
    base_url: str = Field(
        "http://127.0.0.1:8025",
        json_schema_extra=fix("the address people use to reach the console, used in links in notices"),
    )
    secret_key_file: Path = Field(
        Path("var/console-secret"),
        json_schema_extra=fix("a file path; the gateway creates it with a random key if missing"),
    )
    secure_cookie: bool = Field(
        True,
        json_schema_extra=fix(
            "serve the console over TLS and remove secure_cookie; false is only for plain-http testing on a loopback listen"
        ),
    )
    session_lifetime: Duration = Field(8 * 3600.0, gt=0, json_schema_extra=fix('a duration such as "8h"'))
    metrics_networks: list[Network] = Field(
        default_factory=lambda: [ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128")],
        json_schema_extra=fix("the networks allowed to read /metrics"),
    )

    @field_validator("listen")
    @classmethod
    def _check_listen(cls, value: str) -> str:
        host_port(value)
        return value

    @field_validator("secure_cookie")
    @classmethod
    def _plain_http_only_on_loopback(cls, value: bool, info: ValidationInfo) -> bool:
        listen = info.data.get("listen")
        if not value and listen is not None and not _is_loopback(host_port(listen)[0]):
            raise ValueError(f"sends the session cookie in clear text, and listen = {listen!r} is not loopback")
        return value

    @property
    def address(self) -> tuple[str, int]:
        return host_port(self.listen)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
