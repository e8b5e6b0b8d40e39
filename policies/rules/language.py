"""Abusive language: profanity, threats and harassment, slurs about protected classes.

Each category has its own editable list (`config/wordlists/language_*.txt`)
and its own action: by default profanity is only recorded (monitor), threats
and slurs are held for review. Single words are found however they are
disguised (policies/text/obfuscation.py); phrases with typos (policies/text/phrases.py).
A finding quotes the words it found.
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, FilePath, model_validator

from milter.mail.message import Message
from policies.base import Finding, Policy, PolicySettings, SettingsTable
from policies.text.conduct import (
    CATEGORY_ACTION_FIX,
    NEXT_STEP,
    CategoryAction,
    Terms,
    effective,
    load_terms,
    prepared_of,
    text_of,
)
from policies.text.phrases import MAX_CHARS, SEARCH_TIMEOUT
from policies.text.wordlists import list_path

CATEGORIES = ("profanity", "threats", "slurs")
WHAT = {
    "profanity": ("profanity", "profane, abusive, impolite or inappropriate language"),
    "threats": ("threatening or harassing language", "threatening or harassing messages"),
    "slurs": (
        "a slur or a derogatory remark about a protected group",
        (
            "derogatory or inflammatory remarks about a person's or group's race, color, religious creed, age, sex, "
            "marital status, national origin, ancestry, disability or sexual orientation"
        ),
    ),
}
MAX_QUOTES = 5


class Actions(SettingsTable):
    profanity: CategoryAction = Field(default="monitor", json_schema_extra={"fix": CATEGORY_ACTION_FIX})
    threats: CategoryAction = Field(default="hold", json_schema_extra={"fix": CATEGORY_ACTION_FIX})
    slurs: CategoryAction = Field(default="hold", json_schema_extra={"fix": CATEGORY_ACTION_FIX})


class Lists(SettingsTable):
    profanity: FilePath | None = Field(
        default=None,
        json_schema_extra={"fix": "a word list file; leave out for config/wordlists/language_profanity.txt"},
    )
    threats: FilePath | None = Field(
        default=None, json_schema_extra={"fix": "a word list file; leave out for config/wordlists/language_threats.txt"}
    )
    slurs: FilePath | None = Field(
        default=None, json_schema_extra={"fix": "a word list file; leave out for config/wordlists/language_slurs.txt"}
    )

    def path(self, category: str) -> Path:
        return list_path(getattr(self, category), f"language_{category}.txt")


class LanguageSettings(PolicySettings):
    action: Literal["tag", "hold", "reject"] = Field(
        default="hold", json_schema_extra={"fix": '"tag", "hold" or "reject": the most any category asks'}
    )
    actions: Actions = Field(
        default=Actions(),
        json_schema_extra={"fix": 'a table such as { profanity = "monitor", threats = "hold", slurs = "hold" }'},
    )
    lists: Lists = Field(
        default=Lists(),
        json_schema_extra={"fix": 'a table of list files, such as { slurs = "/etc/aup-milter/slurs.txt" }'},
    )
    advice: str = Field(
        default="Please write it again without these words; if you think this is a mistake, ask IT to review it.",
        json_schema_extra={"fix": "a sentence telling the sender what to do next"},
    )

    @model_validator(mode="after")
    def _lists_compile(self) -> LanguageSettings:
        for category in CATEGORIES:
            load_terms(self.lists.path(category))  # a bad line is a config error now, not a failure per message
        return self


class Language(Policy):
    name = "language"
    description = "Profanity (recorded), threats and harassment, and slurs about protected classes (held for review), from editable lists."
    Settings = LanguageSettings

    @cached_property
    def terms(self) -> dict[str, Terms]:
        settings: LanguageSettings = self.settings  # type: ignore[assignment]
        return {category: load_terms(settings.lists.path(category)) for category in CATEGORIES}

    def check(self, message: Message) -> list[Finding]:
        settings: LanguageSettings = self.settings  # type: ignore[assignment]
        original = message.all_text[:MAX_CHARS]
        prepared = prepared_of(message)
        text = text_of(message)
        findings = []
        for category in CATEGORIES:
            action = effective(getattr(settings.actions, category), settings.action)
            if action is None:
                continue
            terms = self.terms[category]
            found = [(hit.word, hit.quote) for hit in terms.words.find(original, prepared, SEARCH_TIMEOUT)]
            found += [(hit.entry, hit.quote) for hit in terms.phrases.find(text)]
            if found:
                findings.append(self._finding(category, action, found))
        return findings

    def _finding(self, category: str, action: str, found: list[tuple[str, str]]) -> Finding:
        settings: LanguageSettings = self.settings  # type: ignore[assignment]
        label, forbidden = WHAT[category]
        quotes = ", ".join(f'"{quote}"' for _, quote in found[:MAX_QUOTES]) + (
            f" and {len(found) - MAX_QUOTES} more" if len(found) > MAX_QUOTES else ""
        )
        reason = (
            f"The message contains {label} (rule {self.name}, {category}): {quotes}. The agency's e-mail policy "
            f"forbids {forbidden}. {NEXT_STEP[action]} {settings.advice}"
        )
        evidence = [f'{category}: "{quote}" (list entry: {entry})' for entry, quote in found]
        return self.finding(reason, evidence, action=action, reply="550 5.7.1")
