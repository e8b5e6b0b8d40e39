"""`aup-milter config diff OLD NEW`: what a reload from OLD to NEW would change.

Both files are loaded and validated the way a reload loads them, then
compared key by key on their validated values (so a key left out and a key
set to its default are the same). Rule mode changes come first, since they
are what an admin reviews before a reload; then each rule's other keys, then
the other sections. A key that names a file (a word list, the directory)
whose file differs is shown entry by entry, as the rule would read it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from milter.config import Config
from milter.runtime import RESTART_KEYS
from policies.text.wordlists import read_list


@dataclass(frozen=True)
class Change:
    key: str  # dotted, as in the file: policies.language.mode, smtp.workers
    old: Any  # None when the key has no value on that side
    new: Any
    restart: bool = False  # takes effect only after a restart, not on reload
    added: tuple[str, ...] = ()  # for a file: entries NEW has and OLD does not
    removed: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())

    @property
    def is_mode(self) -> bool:
        return self.key.startswith("policies.") and self.key.endswith(".mode") and self.key.count(".") == 2

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "old": _plain(self.old),
            "new": _plain(self.new),
            "restart": self.restart,
            "added": list(self.added),
            "removed": list(self.removed),
            "notes": list(self.notes),
        }


def diff(old: Config, new: Config) -> list[Change]:
    """Every change from OLD to NEW: rule modes first, then each rule's keys, then the other sections."""
    changes: list[Change] = []
    for name in sorted(set(old.policies) | set(new.policies)):
        before = _flatten(old.policies[name].model_dump(), f"policies.{name}") if name in old.policies else {}
        after = _flatten(new.policies[name].model_dump(), f"policies.{name}") if name in new.policies else {}
        changes += _compare(before, after)
    restart = {f"{section}.{key}" for section, key in RESTART_KEYS}
    sections = [name for name in type(old.settings).model_fields if name != "policies"]
    for section in sections:
        before = _flatten(getattr(old.settings, section).model_dump(), section)
        after = _flatten(getattr(new.settings, section).model_dump(), section)
        changes += [
            Change(c.key, c.old, c.new, c.key in restart, c.added, c.removed, c.notes) for c in _compare(before, after)
        ]
    return sorted(changes, key=lambda c: (not c.is_mode, not c.key.startswith("policies.")))  # stable: keeps order


def render(changes: list[Change], old: Path, new: Path) -> str:
    if not changes:
        return f"no changes: a reload from {old} to {new} would change nothing"
    lines = [f"a reload from {old} to {new} would change:"]
    heading = None
    for change in changes:
        group = (
            "rule modes"
            if change.is_mode
            else "rule settings"
            if change.key.startswith("policies.")
            else "other settings"
        )
        if group != heading:
            lines += ["", f"{group}:"]
            heading = group
        lines.append(f"  {change.key}: {_shown(change.old)} -> {_shown(change.new)}")
        if change.restart:
            lines.append("      takes effect after a restart, not on reload")
        lines += [f"      {note}" for note in change.notes]
        lines += [f"      + {entry}" for entry in change.added]
        lines += [f"      - {entry}" for entry in change.removed]
    return "\n".join(lines)


def as_json(changes: list[Change], old: Path, new: Path) -> str:
    return json.dumps({"old": str(old), "new": str(new), "changes": [c.as_dict() for c in changes]}, indent=2)


def _flatten(value: Any, prefix: str) -> dict[str, Any]:
    if isinstance(value, dict) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}"))
        return flat
    return {prefix: value}


def _compare(before: dict[str, Any], after: dict[str, Any]) -> list[Change]:
    changes = []
    for key in list(before) + [k for k in after if k not in before]:
        old, new = before.get(key), after.get(key)
        if isinstance(old, Path) or isinstance(new, Path):
            change = _file_change(key, old, new)
            if change is not None:
                changes.append(change)
        elif old != new:
            changes.append(Change(key, old, new))
    return changes


def _file_change(key: str, old: Path | None, new: Path | None) -> Change | None:
    """A file key changes when it names another file whose entries differ, or when it is set or left out."""
    same_file = old is not None and new is not None and old.resolve() == new.resolve()
    if same_file:
        return None
    if old is None or new is None:
        note = "left out on the new side: the rule reads its shipped list" if new is None else ""
        note = note or "left out on the old side: the rule read its shipped list"
        return Change(key, old, new, notes=(note,))
    if old.suffix != ".txt" or new.suffix != ".txt":  # not a word list (the directory, a password file): path only
        return Change(key, old, new)
    before, after = _entries(old), _entries(new)
    if before is None or after is None:
        return Change(key, old, new, notes=("one of the files cannot be read",))
    added = tuple(e for e in after if e not in set(before))
    removed = tuple(e for e in before if e not in set(after))
    note = "same entries in both files" if not added and not removed else f"+{len(added)} -{len(removed)} entries"
    return Change(key, old, new, added=added, removed=removed, notes=(note,))


def _entries(path: Path) -> tuple[str, ...] | None:
    try:
        return read_list(path)
    except (OSError, UnicodeDecodeError):
        return None


def _plain(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)


def _shown(value: Any) -> str:
    return "(not set)" if value is None else json.dumps(_plain(value), ensure_ascii=False)
