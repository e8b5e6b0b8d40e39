"""Deciding several items with one form: each item on its own, audited on its own, its failure its own.

A bulk POST (CSRF-checked like any other) lists item ids. Each item is
decided by the same function the one-item page uses, in its own transaction,
so the rules (roles, departments, single-use decisions) live in one place and
one item refused (decided a moment ago by someone else, say) neither stops
nor undoes the others. Each decided item gets its own audit entry naming the
person; the request itself gets one more (@action) listing what was done.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from archive import audit
from console.access import Act, source_of
from console.render import flash

MAX_ITEMS = 200  # one page of any list


@dataclass
class Outcome:
    """What happened to each item of one bulk request, as the person and the audit log are told."""

    done: list[str] = field(default_factory=list)
    refused: dict[str, str] = field(default_factory=dict)

    def tell(self, act: Act, verb: str) -> None:
        act.details.update({"bulk": verb, "done": self.done, "refused": self.refused})
        if self.done:
            flash(act.request, f"{verb.capitalize()}: {len(self.done)} of {len(self.done) + len(self.refused)}.", "ok")
        for label, why in self.refused.items():
            flash(act.request, f"Not done for {label}: {why}", "error")


def chosen(values: list[str]) -> list[str]:
    """The ticked items, in order, each once."""
    return list(dict.fromkeys(value.strip() for value in values if value.strip()))[:MAX_ITEMS]


def audit_item(connection: Connection, act: Act, action: str, target: str, details: dict[str, Any]) -> None:
    """The audit entry of one item of a bulk decision, in that item's transaction."""
    audit.record(
        connection,
        act.user["login"],
        action,
        target,
        source=source_of(act.request),
        details={"path": act.request.url.path, "bulk": True, **details},
    )


def each(
    items: list[str], decide: Callable[[str], None], refusals: tuple[type[Exception], ...], label: Callable[[str], str]
) -> Outcome:
    """Decide every item; a refusal is noted against that item and the rest go on."""
    outcome = Outcome()
    for item in items:
        try:
            decide(item)
        except refusals as exc:
            outcome.refused[label(item)] = str(exc)
        else:
            outcome.done.append(label(item))
    return outcome
