"""The delivery room's settings: where mail goes and how hard it is retried."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from milter.kernel.settings import Section, fix, host_port
from milter.kernel.units import Duration


class DeliverSettings(Section):
    url: str = Field(
        "maildir:var/outbox", json_schema_extra=fix('"smtp://HOST:PORT" for the agency mail server, or "maildir:PATH"')
    )
    relay_url: str | None = Field(
        None,
        json_schema_extra=fix(
            '"smtp://HOST:PORT" of the relay for recipients outside the local domains, or leave it out to use url'
        ),
    )
    tls: Literal["may", "encrypt", "none"] = Field(
        "may", json_schema_extra=fix('"may" (STARTTLS when offered), "encrypt" (required) or "none"')
    )
    tls_verify: bool = Field(False, json_schema_extra=fix("true to check the downstream certificate"))
    concurrency: int = Field(20, ge=1, le=1000, json_schema_extra=fix("how many deliveries run at once, 1 to 1000"))
    timeout: Duration = Field(120.0, gt=0, json_schema_extra=fix('a duration such as "2m"'))
    min_backoff: Duration = Field(300.0, gt=0, json_schema_extra=fix('the first retry delay, such as "5m"'))
    max_backoff: Duration = Field(4000.0, gt=0, json_schema_extra=fix('the longest retry delay, such as "1h"'))
    max_lifetime: Duration = Field(
        5 * 86400.0, gt=0, json_schema_extra=fix('how long to keep retrying before a bounce, such as "5d"')
    )
    poll_interval: Duration = Field(
        1.0, gt=0, json_schema_extra=fix('how often the queue looks for due work, such as "1s"')
    )

    @field_validator("url", "relay_url")
    @classmethod
    def _check_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("smtp://", "maildir:")):
            raise ValueError(f"{value!r} is neither smtp://HOST:PORT nor maildir:PATH")
        if value is not None and value.startswith("smtp://"):
            host_port(value.removeprefix("smtp://").rstrip("/"))
        return value
