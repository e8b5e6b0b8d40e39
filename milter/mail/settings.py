"""The mail room's settings: how far a message is inspected."""

from __future__ import annotations

from pydantic import Field

from milter.kernel.settings import Section, fix
from milter.kernel.units import Duration, Size


class LimitSettings(Section):
    """Inspection caps, like Postfix's mime_nesting_limit: bounded time and memory."""

    mime_nesting: int = Field(20, ge=1, json_schema_extra=fix("the deepest MIME nesting inspected"))
    mime_parts: int = Field(1000, ge=1, json_schema_extra=fix("the most MIME parts inspected"))
    archive_depth: int = Field(5, ge=1, json_schema_extra=fix("how deep archives inside archives are opened"))
    archive_members: int = Field(
        1000, ge=1, json_schema_extra=fix("the most members listed in one archive (ten times this across one message)")
    )
    archive_expanded: Size = Field(
        200 * 1024**2, json_schema_extra=fix('the most bytes unpacked from one message\'s archives, such as "200MiB"')
    )
    archive_ratio: int = Field(100, ge=2, json_schema_extra=fix("the largest expansion ratio of an archive member"))
    extract_chars: int = Field(
        2_000_000, ge=1000, json_schema_extra=fix("the most characters of text extracted from one attachment")
    )
    extract_time: Duration = Field(
        5.0,
        gt=0,
        json_schema_extra=fix(
            'the time budget for unpacking archives and for text extraction of one attachment (twice this per message), such as "5s"'
        ),
    )
