"""Word and phrase lists that admins edit: one entry a line, `#` starts a comment.

The shipped lists live in `config/wordlists/`; a rule's settings may name
another file instead. A list is read again when its file changes (the rule
is rebuilt on every config reload, so SIGHUP picks up edits).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import config

SHIPPED = Path(config.__file__).resolve().parent / "wordlists"


def list_path(override: Path | None, shipped_name: str) -> Path:
    """The file a rule reads: the one its settings name, else the shipped one."""
    return override if override is not None else SHIPPED / shipped_name


def read_list(path: Path) -> tuple[str, ...]:
    """The entries of a list file, comments and blank lines left out."""
    stat = path.stat()
    return _read(path.resolve(), stat.st_mtime_ns, stat.st_size)


@lru_cache(maxsize=64)
def _read(path: Path, mtime_ns: int, size: int) -> tuple[str, ...]:  # mtime and size make an edited file a new key
    entries = []
    for line in path.read_text(encoding="utf-8").splitlines():
        entry = line.split("#", 1)[0].strip()
        if entry:
            entries.append(entry)
    return tuple(dict.fromkeys(entries))
