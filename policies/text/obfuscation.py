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

To stay fast the pattern is not run over the whole text. The text is cut at
white space into chunks, and the pattern runs on each distinct chunk that
could hold a listed word: a plain word whose first letters, however
stretched, begin a listed word ("shiiit", "shipment"), and a word with digits
or symbols among its letters ("sh1t", "f*ck") or with letters spaced out by
punctuation ("f.u.c.k"). A word can only cross white space when its letters
are spaced out by it ("f u c k"): its second and third letters then stand
alone, side by side; only when two such chunks could be those letters is the
whole text searched. The words found are the same as a search of the whole
text finds.
"""

from __future__ import annotations

import string
import unicodedata
from dataclasses import dataclass, field
from functools import cached_property, lru_cache

import regex

LEET = {
    "a": "a@4",
    "b": "b8",
    "e": "e3",
    "g": "g96",
    "i": "i1!|",
    "l": "l1|",
    "o": "o0",
    "s": "s$5",
    "t": "t7+",
    "z": "z2",
}
MASKS = "*#%"
SEPARATOR = r"[\s.\-_,/\\|+~*]{1,2}"
MIN_SPACED = 4  # shorter words spaced out ("a s s") are too often ordinary text
SEARCH_TIMEOUT = 2.0
_INVISIBLE = {"Cf", "Mn"}  # zero-width characters and combining accents
_NON_ASCII = regex.compile(r"[^\x00-\x7f]")
_LETTERS = regex.compile(r"\p{L}+")
# Digits and symbols that may stand for a letter or mask one: a chunk with them among letters may hide a word.
_SYMBOLS = frozenset(c for variants in LEET.values() for c in variants if not c.isalpha()) | frozenset(MASKS)
# Punctuation at the edge of a chunk that is never part of a word ("_" is: "shit_" is no match).
_EDGE = "".join(c for c in string.punctuation if c not in _SYMBOLS and c != "_") + "“”‘’«»„–—…"
_SPACERS = frozenset(".-_,/\\|+~*")  # SEPARATOR's characters besides white space


def prepare(text: str) -> str:
    """Text as words are matched in it: accents and invisible characters gone, lower case."""
    decomposed = unicodedata.normalize("NFKD", text)
    if decomposed.isascii():
        return decomposed.lower()
    for char in set(_NON_ASCII.findall(decomposed, timeout=SEARCH_TIMEOUT)):  # few distinct ones, even in long texts
        if unicodedata.category(char) in _INVISIBLE:
            decomposed = decomposed.replace(char, "")
    return decomposed.lower()


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
    # Derived from the words by `of`, for the chunk checks (see the module's notes):
    starts: dict[str, frozenset[str] | None] = field(
        default_factory=dict, compare=False
    )  # first letters, stretched -> last letters (None: any)
    spaced: frozenset[tuple[str, str]] = field(
        default=frozenset(), compare=False
    )  # second and third letters of words long enough to space out
    by_chunks: bool = field(
        default=True, compare=False
    )  # False when a word has characters the chunk checks do not know

    @cached_property
    def _start_sizes(self) -> frozenset[int]:
        return frozenset(len(start) for start in self.starts)

    @cached_property
    def _start_keys(self) -> frozenset[str]:
        return frozenset(self.starts)

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
        pattern = regex.compile(rf"(?<![\p{{L}}\p{{N}}_])(?:{body})(?![\p{{L}}_])")
        starts: dict[str, set[str] | None] = {}
        spaced: set[tuple[str, str]] = set()
        by_chunks = True
        for word in words:
            letters = prepare(word.rstrip("*")).replace(" ", "")
            by_chunks = by_chunks and all(c.isalpha() or c in _SYMBOLS for c in letters)
            for start in _stretched(letters, min(3, len(letters))):
                ends = starts.setdefault(start, set())
                if word.endswith("*") or ends is None:
                    starts[start] = None
                else:
                    ends.add(letters[-1])
            if len(letters) >= MIN_SPACED:
                spaced.update(
                    (a, b) for a in LEET.get(letters[1], letters[1]) for b in LEET.get(letters[2], letters[2])
                )
        frozen = {start: None if ends is None else frozenset(ends) for start, ends in starts.items()}
        return cls(words, pattern, frozen, frozenset(spaced), by_chunks)

    def find(self, original: str, prepared: str, timeout: float) -> list[WordHit]:
        """Each listed word found in a text (and its `prepare`d form), once, as it was first written."""
        if self.pattern is None:
            return []
        same_places = original.isascii()  # then preparing only lower-cased it: quote the original
        found: dict[str, WordHit] = {}
        for start, match in self._matches(prepared, timeout):
            quote = original[start : start + len(match.group())] if same_places else match.group()
            if sum(c.isalpha() for c in quote) * 2 < len(quote.replace(" ", "")):
                continue  # mostly digits and symbols: a number or a code, not a word
            word = self.words[int(match.lastgroup.split("_")[0][1:])] if match.lastgroup else quote
            found.setdefault(word, WordHit(word, quote))
        return list(found.values())

    def _matches(self, prepared: str, timeout: float) -> list[tuple[int, regex.Match[str]]]:
        """The pattern's matches in the text in order, each with where it starts."""
        assert self.pattern is not None
        chunks = _chunks_of(prepared)
        if not self.by_chunks or self.spaced & chunks.pairs:  # letters spaced out by white space, maybe: read it all
            return [(match.start(), match) for match in self.pattern.finditer(prepared, timeout=timeout)]
        found = []
        for chunk in self._suspects(chunks):
            matches = list(self.pattern.finditer(chunk, timeout=timeout))
            if matches:
                at = _first_place(prepared, chunk)
                found += [(at + match.start(), match) for match in matches]
        return sorted(found, key=lambda item: item[0])

    def _suspects(self, chunks: _Chunks) -> set[str]:
        """The chunks that could hold one of the words."""
        suspects = set(chunks.marked)
        for size in self._start_sizes:
            runs_by_start = chunks.runs_by_start(size)
            for start in self._start_keys.intersection(
                runs_by_start
            ):  # walks the text's few starts, not the list's many
                ends = self.starts[start]
                for run in runs_by_start[start]:
                    if ends is None or run[-1] in ends:
                        suspects |= chunks.runs[run]
        return suspects


def _stretched(letters: str, size: int) -> set[str]:
    """The first `size` characters of the word with each letter written once or more ("shit": "shi", "shh", "ssh", "sss")."""
    found: set[str] = set()

    def grow(start: str, rest: str) -> None:
        if len(start) >= size or not rest:
            found.add(start[:size])
            return
        for times in range(1, size - len(start) + 1):
            grow(start + rest[0] * times, rest[1:])

    grow("", letters)
    return found


class _Chunks:
    """A prepared text cut at white space, sorted out once for every word list (see the module's notes)."""

    def __init__(self, prepared: str) -> None:
        pieces = prepared.split()
        distinct = set(pieces)
        self.runs: dict[str, set[str]] = {}  # each run of letters that could be a whole word -> the chunks it is in
        self.marked: set[str] = set()  # chunks with digits or symbols among letters, or letters spaced by punctuation
        for chunk in distinct:
            core = chunk.strip(_EDGE)
            if core.isalpha():
                self.runs.setdefault(core, set()).add(chunk)
                continue
            runs = _LETTERS.findall(core, timeout=SEARCH_TIMEOUT)
            if not runs:
                continue
            if not _SYMBOLS.isdisjoint(core) or any(
                len(a) == len(b) == len(c) == 1 for a, b, c in zip(runs, runs[1:], runs[2:], strict=False)
            ):
                self.marked.add(chunk)
            else:
                for run in runs:
                    self.runs.setdefault(run, set()).add(chunk)
        self.pairs = _lone_pairs(pieces, distinct)
        self._by_start: dict[int, dict[str, list[str]]] = {}

    def runs_by_start(self, size: int) -> dict[str, list[str]]:
        """The runs of letters by their first `size` letters."""
        if size not in self._by_start:
            index: dict[str, list[str]] = {}
            for run in self.runs:
                index.setdefault(run[:size], []).append(run)
            self._by_start[size] = index
        return self._by_start[size]


def _lone_pairs(pieces: list[str], distinct: set[str]) -> set[tuple[str, str]]:
    """The characters of each two chunks in a row that are lone characters (one character, or one and a spacer as
    in "f. u. c. k"): how letters spaced out by white space look. Each distinct lone chunk is looked for in C."""
    lone = [chunk for chunk in distinct if _lone(chunk)]
    if not lone:
        return set()
    joined = f" {' '.join(pieces)} "
    pairs: set[tuple[str, str]] = set()
    for first in lone:
        probe = f" {first} "
        at = joined.find(probe)
        while at != -1:
            start = at + len(probe)
            second = joined[start : joined.find(" ", start)]
            if _lone(second):
                pairs.update((a, b) for a in first for b in second)
            at = joined.find(probe, at + 1)
    return pairs


def _lone(chunk: str) -> bool:
    return len(chunk) == 1 or (len(chunk) == 2 and not _SPACERS.isdisjoint(chunk))


@lru_cache(maxsize=8)
def _chunks_of(prepared: str) -> _Chunks:
    """Shared by the word lists that read the same text (a rule's categories)."""
    return _Chunks(prepared)


def _first_place(text: str, chunk: str) -> int:
    """Where a chunk of the text first stands whole, between white space or the text's ends."""
    at = text.find(chunk)
    while at != -1 and not _stands_alone(text, at, at + len(chunk)):
        at = text.find(chunk, at + 1)
    return at


def _stands_alone(text: str, start: int, end: int) -> bool:
    return (start == 0 or text[start - 1].isspace()) and (end == len(text) or text[end].isspace())
