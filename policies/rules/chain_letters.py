"""Chain letters: a score built from cues, each one quoted, so the finding explains itself.

Cues, each adding the points the config gives its kind:
- phrases from the lists in `config/wordlists/chain_*.txt`: demands to pass
  it on, luck or threats, deadlines, claims that it is true, money for
  forwarding and pyramid wording; a cue inside quotation marks is a mention
  (a news story quoting a chain letter) and does not count;
- counter-cues (the message warns about hoaxes or discusses chain letters)
  take points away;
- many levels of forwarding, and a long list of earlier recipients in the body;
- the same text (a fuzzy fingerprint, see policies/rules/fingerprints.py) sent by
  many senders to many recipients within a time window.
The total picks the action: tag, hold or reject at the configured
thresholds, never more severe than the rule's `action`.
"""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Literal

import regex
from pydantic import Field, FilePath, model_validator

from milter.kernel.directory import normalise_address
from milter.kernel.units import Duration
from milter.mail.message import Message
from policies.base import Action, Finding, Policy, PolicySettings, SettingsTable
from policies.rules import fingerprints
from policies.text.conduct import text_of
from policies.text.phrases import SEARCH_TIMEOUT, Hit, PhraseList, Text, load_phrases
from policies.text.wordlists import list_path

PHRASE_KINDS = ("forward", "luck", "deadline", "authority", "money")
LABELS = {
    "forward": "demands to pass it on",
    "luck": "promises of luck or threats of misfortune",
    "deadline": "deadlines and pressure",
    "authority": "claims that it is true or vouched for",
    "money": "money for forwarding or pyramid wording",
    "nesting": "forwarded many times over",
    "recipients": "a long list of earlier recipients",
    "spread": "the same text sent by many people",
    "counter": "signs that it warns about chain letters rather than being one",
}
_FORWARD_SUBJECT = regex.compile(r"\b(?:fwd?|fw)\s*:", regex.IGNORECASE)
_FORWARD_MARKER = regex.compile(
    r"^[>\s]*(?:-+\s*forwarded message\s*-+|begin forwarded message\s*:|-+\s*forwarded by\b|"
    r"subject\s*:\s*(?:(?:re|aw)\s*:\s*)*(?:fwd?|fw)\s*:)",
    regex.IGNORECASE | regex.MULTILINE,
)
_FORWARD_MARKER_WORDS = ("forwarded", "subject")  # one of these is in every forward marker: without them, no search
_ADDRESS = regex.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")


class Thresholds(SettingsTable):
    tag: int = Field(default=4, json_schema_extra={"fix": "the score from which the message is tagged, a whole number"})
    hold: int = Field(default=6, json_schema_extra={"fix": "the score from which the message is held, at least `tag`"})
    reject: int = Field(
        default=9, json_schema_extra={"fix": "the score from which the message is rejected, at least `hold`"}
    )

    @model_validator(mode="after")
    def _ordered(self) -> Thresholds:
        if not self.tag <= self.hold <= self.reject:
            raise ValueError("thresholds must satisfy tag <= hold <= reject")
        return self


class Points(SettingsTable):
    forward: int = Field(default=3, ge=0, json_schema_extra={"fix": "points for each demand to pass it on"})
    luck: int = Field(default=2, ge=0, json_schema_extra={"fix": "points for each promise of luck or threat"})
    deadline: int = Field(default=1, ge=0, json_schema_extra={"fix": "points for each deadline or pressure phrase"})
    authority: int = Field(default=2, ge=0, json_schema_extra={"fix": "points for each claim that it is true"})
    money: int = Field(
        default=3, ge=0, json_schema_extra={"fix": "points for each money-for-forwarding or pyramid phrase"}
    )
    nesting: int = Field(
        default=1, ge=0, json_schema_extra={"fix": "points for each level of forwarding past `free_forward_levels`"}
    )
    recipients: int = Field(
        default=2, ge=0, json_schema_extra={"fix": "points for a long list of earlier recipients in the body"}
    )
    spread: int = Field(default=4, ge=0, json_schema_extra={"fix": "points when the same text came from many senders"})
    counter: int = Field(default=3, ge=0, json_schema_extra={"fix": "points taken away for each counter-cue"})


class Lists(SettingsTable):
    forward: FilePath | None = Field(
        default=None, json_schema_extra={"fix": "a phrase list file; leave out for config/wordlists/chain_forward.txt"}
    )
    luck: FilePath | None = Field(
        default=None, json_schema_extra={"fix": "a phrase list file; leave out for config/wordlists/chain_luck.txt"}
    )
    deadline: FilePath | None = Field(
        default=None, json_schema_extra={"fix": "a phrase list file; leave out for config/wordlists/chain_deadline.txt"}
    )
    authority: FilePath | None = Field(
        default=None,
        json_schema_extra={"fix": "a phrase list file; leave out for config/wordlists/chain_authority.txt"},
    )
    money: FilePath | None = Field(
        default=None, json_schema_extra={"fix": "a phrase list file; leave out for config/wordlists/chain_money.txt"}
    )
    counter: FilePath | None = Field(
        default=None, json_schema_extra={"fix": "a phrase list file; leave out for config/wordlists/chain_counter.txt"}
    )

    def path(self, kind: str) -> Path:
        return list_path(getattr(self, kind), f"chain_{kind}.txt")


class Spread(SettingsTable):
    window: Duration = Field(
        default=7 * 86400.0,
        gt=0,
        le=fingerprints.KEEP.total_seconds(),
        json_schema_extra={"fix": 'how far back copies are counted, such as "7d" (at most 90d)'},
    )
    min_senders: int = Field(
        default=3, ge=2, json_schema_extra={"fix": "how many different senders (this one included) make it spread"}
    )
    min_recipients: int = Field(
        default=10, ge=1, json_schema_extra={"fix": "how many local recipients, all copies together, make it spread"}
    )
    max_distance: int = Field(
        default=5,
        ge=0,
        le=fingerprints.BANDS - 1,
        json_schema_extra={"fix": f"how many of the 64 fingerprint bits may differ, 0 to {fingerprints.BANDS - 1}"},
    )


class ChainLettersSettings(PolicySettings):
    action: Literal["tag", "hold", "reject"] = Field(
        default="reject",
        json_schema_extra={"fix": '"tag", "hold" or "reject": the most this rule asks, whatever the score'},
    )
    thresholds: Thresholds = Field(
        default=Thresholds(), json_schema_extra={"fix": "a table such as { tag = 4, hold = 6, reject = 9 }"}
    )
    points: Points = Field(default=Points(), json_schema_extra={"fix": "a table of points per kind of cue"})
    lists: Lists = Field(
        default=Lists(),
        json_schema_extra={
            "fix": 'a table of phrase list files, such as { forward = "/etc/aup-milter/chain_forward.txt" }'
        },
    )
    spread: Spread = Field(
        default=Spread(),
        json_schema_extra={
            "fix": 'a table such as { window = "7d", min_senders = 3, min_recipients = 10, max_distance = 5 }'
        },
    )
    max_hits_per_kind: int = Field(
        default=2, ge=1, json_schema_extra={"fix": "how many different phrases of one kind count"}
    )
    free_forward_levels: int = Field(
        default=1, ge=0, json_schema_extra={"fix": "levels of forwarding that add nothing"}
    )
    max_forward_levels: int = Field(
        default=3, ge=0, json_schema_extra={"fix": "the most levels of forwarding that add points"}
    )
    recipient_list_min: int = Field(
        default=15, ge=2, json_schema_extra={"fix": "how many addresses in the body make a list of earlier recipients"}
    )
    advice: str = Field(
        default="Please do not pass it on. If you meant to send something else, write it again without the chain-letter wording; "
        "if you think this is a mistake, ask IT to review it.",
        json_schema_extra={"fix": "a sentence telling the sender what to do next"},
    )

    @model_validator(mode="after")
    def _lists_compile(self) -> ChainLettersSettings:
        for kind in (*PHRASE_KINDS, "counter"):
            load_phrases(self.lists.path(kind))  # a bad line is a config error now, not a failure per message
        return self


class Score:
    """The points each cue earned, by kind, with the words that earned them."""

    def __init__(self) -> None:
        self.parts: dict[str, list[tuple[int, str]]] = {}

    def add(self, kind: str, points: int, cue: str) -> None:
        if points:
            self.parts.setdefault(kind, []).append((points, cue))

    def of(self, kind: str) -> int:
        return sum(points for points, _ in self.parts.get(kind, []))

    @property
    def total(self) -> int:
        return sum(self.of(kind) for kind in self.parts)

    def explained(self) -> str:
        return "; ".join(
            f"{LABELS[kind]} {self.of(kind):+d} ({', '.join(cue for _, cue in cues)})"
            for kind, cues in self.parts.items()
        )

    def evidence(self) -> list[str]:
        return [f"{kind} {points:+d}: {cue}" for kind, cues in self.parts.items() for points, cue in cues]


class ChainLetters(Policy):
    name = "chain_letters"
    description = "Chain letters (forward-this demands, luck and threats, pyramid money, the same text from many senders) are tagged, held or rejected by score."
    Settings = ChainLettersSettings

    @cached_property
    def lists(self) -> dict[str, PhraseList]:
        settings: ChainLettersSettings = self.settings  # type: ignore[assignment]
        return {kind: load_phrases(settings.lists.path(kind)) for kind in (*PHRASE_KINDS, "counter")}

    def check(self, message: Message) -> list[Finding]:
        settings: ChainLettersSettings = self.settings  # type: ignore[assignment]
        score = self.score(message)
        total = score.total
        levels = [
            ("reject", settings.thresholds.reject),
            ("hold", settings.thresholds.hold),
            ("tag", settings.thresholds.tag),
        ]
        level = next((name for name, threshold in levels if total >= threshold), None)
        if level is None:
            return []
        action = min(Action[level.upper()], Action[settings.action.upper()])
        at = ", ".join(f"{name} at {threshold}" for name, threshold in reversed(levels))
        capped = f"; this rule asks at most {action}" if action < Action[level.upper()] else ""
        reason = (
            f"This looks like a chain letter, which the agency's e-mail policy forbids (rule {self.name}): "
            f"score {total} ({at}{capped}) from {score.explained()}. {settings.advice}"
        )
        return [self.finding(reason, score.evidence(), action=str(action), reply="550 5.7.1")]

    def score(self, message: Message) -> Score:
        settings: ChainLettersSettings = self.settings  # type: ignore[assignment]
        points = settings.points
        score = Score()
        text = text_of(message)
        found = {kind: self._counted(text, self.lists[kind].find(text)) for kind in PHRASE_KINDS}
        for kind in PHRASE_KINDS:
            for hit in found[kind][: settings.max_hits_per_kind]:
                score.add(kind, getattr(points, kind), f'"{hit.quote}"')
        positive = [hit for hits in found.values() for hit in hits]
        counter = [
            hit
            for hit in self.lists["counter"].find(text)
            if not any(hit.start < other.end and other.start < hit.end for other in positive)
        ]
        for hit in counter[: settings.max_hits_per_kind]:
            score.add("counter", -points.counter, f'"{hit.quote}"')
        levels, shown = self._forward_levels(message)
        extra = min(max(levels - settings.free_forward_levels, 0), settings.max_forward_levels)
        score.add("nesting", points.nesting * extra, f"{levels} levels ({shown})")
        with_at = "\n".join(
            line for line in message.body_text[:200_000].splitlines() if "@" in line
        )  # an address is on one line
        addresses = set(_ADDRESS.findall(with_at, timeout=SEARCH_TIMEOUT))
        if len(addresses) >= settings.recipient_list_min:
            score.add(
                "recipients",
                points.recipients,
                f"{len(addresses)} addresses in the body, such as {', '.join(sorted(addresses)[:3])}",
            )
        # How widely the same text spread is asked only of text that already reads like a chain letter:
        # that lookup is the rule's one database query, and ordinary mail should not pay for it.
        if score.total > 0:
            spread = self._spread(message)
            if spread:
                score.add("spread", points.spread, spread)
        return score

    def _counted(self, text: Text, hits: list[Hit]) -> list[Hit]:
        """Hits that are used, not mentioned (a cue in quotation marks is someone quoting a chain letter),
        each stretch of words counted once even when two phrases of a kind match it."""
        kept: list[Hit] = []
        for hit in sorted(hits, key=lambda h: (h.start, -h.end)):
            if not text.in_quotation(hit.start, hit.end) and not any(
                hit.start < k.end and k.start < hit.end for k in kept
            ):
                kept.append(hit)
        return kept

    def _forward_levels(self, message: Message) -> tuple[int, str]:
        in_subject = len(_FORWARD_SUBJECT.findall(message.subject, timeout=SEARCH_TIMEOUT))
        body = message.body_text[:200_000]
        folded = body.casefold()
        marked = any(word in folded for word in _FORWARD_MARKER_WORDS)
        in_body = len(_FORWARD_MARKER.findall(body, timeout=SEARCH_TIMEOUT)) if marked else 0
        return max(in_subject, in_body), f"{in_subject} Fwd: in the subject, {in_body} forwarded blocks in the body"

    def _spread(self, message: Message) -> str | None:
        """The same text from enough senders to enough local recipients within the window, said in words."""
        settings: ChainLettersSettings = self.settings  # type: ignore[assignment]
        spread = settings.spread
        database = self.services.database
        if database is None:
            return None
        value = fingerprints.fingerprint(message)
        if value is None:
            return None
        now = self.services.clock()
        since = now - timedelta(seconds=spread.window)
        with database.read() as connection:
            others = fingerprints.senders_sharing_a_band(
                connection, value, since=since, until=now, enough=spread.min_senders
            )
            if len(others | {message.sender}) < spread.min_senders:
                return None  # too few senders even before reading a single copy
            copies = fingerprints.near(
                connection, value, since=since, until=now, max_distance=spread.max_distance, exclude=message.id
            )
        if not copies:
            return None
        senders = {copy.sender for copy in copies} | {message.sender}
        recipients = {r for copy in copies for r in copy.recipients} | {
            normalise_address(r) for r in message.envelope.rcpt_to
        }
        reached = sum(self._reach(r) for r in recipients if self.directory.is_local(r))
        if len(senders) < spread.min_senders or reached < spread.min_recipients:
            return None
        days = spread.window / 86400
        return (
            f"the same text came from {len(senders)} senders to {reached} local recipients in the last "
            f"{days:g} days ({len(copies)} earlier copies)"
        )

    def _reach(self, address: str) -> int:
        """How many people a local address reaches: a group counts its size or members."""
        group = self.directory.group(address)
        if group is None:
            return 1
        return group.size or len(group.members) or 1
