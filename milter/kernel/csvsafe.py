"""CSV that a spreadsheet opens as text: every CSV the project writes goes through here.

A cell that begins with = + - @, a tab or a carriage return is a formula to
Excel, LibreOffice and Google Sheets (`=HYPERLINK(...)`, `=cmd|...`), and FOIA
files are opened by the public. OWASP's advice is followed: such a cell gets a
leading single quote, which the spreadsheet shows as text and a reader of the
file sees plainly. Only text is changed; numbers are written as they are.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def neutralise(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def table(fields: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> bytes:
    """A UTF-8 CSV file with a header row, CRLF line ends, and every text cell neutralised."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=list(fields), extrasaction="ignore", lineterminator="\r\n")
    writer.writeheader()
    writer.writerows({name: neutralise(row.get(name, "")) for name in fields} for row in rows)
    return out.getvalue().encode("utf-8")
