"""Words found however they are disguised: sp4c3d, m*sked, leet, or stretched.

Each listed word becomes a pattern that also matches
- leetspeak: a as @ or 4, e as 3, i as 1 or !, o as 0, s as $ or 5, t as 7 ...
- repeated letters: "shiiiit"
- masked inner letters: "f*ck", "sh#t" (the first and last letters stay real)
- the letters spaced out with one separator used throughout: "s h i t", "f.u.c.k"
- a closing `*` in the list allows any ending: "fuck*" finds "fucking".
Accents and invisible characters are removed first ("fück", "fu\u200bck").

Words are whole words: a listed word inside a longer word ("Scunthorpe",
"assessment", "cocktail") is not a match, and a match needs at least half
real letters, so numbers such as "455" or "$55" never read as "ass".
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import regex

LEET = {"a": "a@4", "b": "b8", "e": "e3", "g": "g96", "i": "i1!|", "l": "l1|", "o": "o0", "s": "s$5", "t": "t7+", "z": "z2"}
MASKS = "*#%"
SEPARATOR = r"[\s.\-_,/\\|+~*]{1,2}"
MIN_SPACED = 4  # shorter words spaced out ("a s s") are too often ordinary text
_INVISIBLE = {"Cf", "Mn"}  # zero-width characters and combining accents


def prepare(text: str) -> str:
    """Text as words are matched in it: accents and invisible characters gone, lower case."""
    decomposed = unicodedata.normalize("NFKD", text)
    if decomposed.isascii():
        return decomposed.lower()
    return "".join(c for c in decomposed if unicodedata.category(c) not in _INVISIBLE).lower()


def _letter(char: str, *, repeat: bool = True, masked: bool = False) -> str:
    variants = regex.escape(LEET.get(char, char), special_only=False)
    one = f"[{variants}]" + ("+" if repeat else "")
    return f"(?:{one}|[{regex.escape(MASKS)}])" if masked else one


def word_pattern(word: str, name: str) -> str:
    """A pattern for one listed word; `name` keeps its groups apart from other words'."""
    wildcard = word.endswith("*")
    letters = prepare(word.rstrip("*")).replace(" ", "")
    if not letters:
        raise ValueError(f"{word!r} has no letters")
    ending = r"\p{L}*" if wildcard else ""
    inner_masked = range(1, len(letters)) if wildcard else range(1, len(letters) - 1)
    compact = "".join(_letter(c, masked=i in inner_masked) for i, c in enumerate(letters)) + ending
    forms = [compact]
    if len(letters) >= MIN_SPACED:
        separator = f"(?P<{name}_sep>{SEPARATOR})"
        spaced = _letter(letters[0], repeat=False) + separator
        spaced += f"(?P={name}_sep)".join(_letter(c, repeat=False) for c in letters[1:])
        forms.append(spaced + ending)
    return f"(?P<{name}>" + "|".join(forms) + ")"


@dataclass(frozen=True)
class WordHit:
    word: str  # the list entry
    quote: str  # what the message says


@dataclass(frozen=True)
class WordList:
    words: tuple[str, ...]
    pattern: regex.Pattern[str] | None

    @classmethod
    def of(cls, words: tuple[str, ...], source: str = "word list") -> WordList:
        if not words:
            return cls(words, None)
        longest_first = sorted(range(len(words)), key=lambda i: -len(words[i]))  # "s h i t s" is "shits", not "shit"
        try:
            alternatives = [word_pattern(words[i], f"w{i}") for i in longest_first]
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from None
        body = "|".join(alternatives)
        return cls(words, regex.compile(rf"(?<![\p{{L}}\p{{N}}_])(?:{body})(?![\p{{L}}_])"))

    def find(self, original: str, prepared: str, timeout: float) -> list[WordHit]:
        """Each listed word found in a text (and its `prepare`d form), once, as it was first written."""
        if self.pattern is None:
            return []
        same_places = original.isascii()  # then preparing only lower-cased it: quote the original
        found: dict[str, WordHit] = {}
        for match in self.pattern.finditer(prepared, timeout=timeout):
            quote = original[match.start():match.end()] if same_places else match.group()
            if sum(c.isalpha() for c in quote) * 2 < len(quote.replace(" ", "")):
                continue  # mostly digits and symbols: a number or a code, not a word
            word = self.words[int(match.lastgroup.split("_")[0][1:])] if match.lastgroup else quote
            found.setdefault(word, WordHit(word, quote))
        return list(found.values())
