"""The editable vocabularies detectors use: config/wordlists/confidential_NAME.txt, each replaceable in config.

Read with the shared reader (policies/wordlists.py: one entry a line, `#`
starts a comment, re-read when the file changes). A term matches as a whole
word (no letter on either side, so "SSN" matches in "SSN#:"), case does not
matter, a space in a term matches any run of spaces, line breaks, dashes or
underscores, and a trailing "s" is allowed. `[policies.confidential]
wordlists = { NAME = "/path/to/file.txt" }` replaces the shipped list NAME.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import regex

from policies.wordlists import list_path, read_list

PREFIX = "confidential_"
NAMES = (
    "ssn_keywords", "card_keywords", "software_context", "test_card_numbers", "negative_context",
    "routing_keywords", "account_keywords", "bank_context", "drivers_license_keywords",
    "health_cues", "health_terms", "icd_context", "student_cues", "student_terms",
    "personnel_cues", "personnel_terms", "cjis_cues", "cjis_terms",
)


def compile_terms(terms: Sequence[str]) -> regex.Pattern[str] | None:
    if not terms:
        return None
    # Longest first, so "social security number" wins over "social security".
    alternatives = [regex.escape(term.lower(), special_only=True, literal_spaces=True).replace(" ", r"[\s_\-]+")
                    for term in sorted(set(terms), key=len, reverse=True)]
    return regex.compile(r"(?<!\p{L})(?:" + "|".join(alternatives) + r")s?(?!\p{L})", regex.IGNORECASE)


class Wordlists:
    """Every list, read once per rule build, each compiled to one pattern on first use."""

    def __init__(self, overrides: Mapping[str, Path] | None = None) -> None:
        overrides = overrides or {}
        self.terms: dict[str, tuple[str, ...]] = {
            name: read_list(list_path(overrides.get(name), f"{PREFIX}{name}.txt")) for name in NAMES}
        self._patterns: dict[str, regex.Pattern[str] | None] = {}

    def pattern(self, name: str) -> regex.Pattern[str] | None:
        if name not in self._patterns:
            self._patterns[name] = compile_terms(self.terms[name])
        return self._patterns[name]
