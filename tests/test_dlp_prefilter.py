"""The detectors' pre-filter (policies/detectors/tokens.py): skip work that cannot find anything, never a match.

Plain text with no digits and no sensitive vocabulary is read once to
collect its words; no word list and no number pattern searches it. A list
is searched only for the terms whose words the text has, and that narrowed
search finds exactly what the whole list's search finds.
"""

from __future__ import annotations

import random

import pytest

from milter.config import load_config
from milter.kernel.directory import load_directory
from milter.mail.message import Envelope, Message, normalise_line_endings
from policies.detectors import Text, Wordlists, scan, tokens
from policies.detectors.sources import SHARED_KEY, segments, texts_of
from policies.detectors.tokens import Tokens
from policies.detectors.wordlists import NAMES
from policies.rules.confidential import Confidential
from tests.conftest import ROOT
from tests.support import dlp_files as files

WORDS = Wordlists()
PLAIN = " ".join(["budget council meeting agenda road water school park"] * 200)


@pytest.fixture
def searches(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every search a detector makes (they all go through Text.find), by pattern."""
    made: list[str] = []
    find = Text.find

    def recording(self: Text, pattern):  # type: ignore[no-untyped-def]
        made.append(pattern.pattern)
        return find(self, pattern)

    monkeypatch.setattr(Text, "find", recording)
    return made


def test_plain_text_with_no_digits_and_no_vocabulary_is_never_searched(searches):
    assert scan([Text(PLAIN, "1", "the message body", WORDS, 5.0)]) == []
    assert searches == []


@pytest.mark.parametrize("direction", ["outbound", "internal"])
def test_a_whole_plain_message_through_the_rule_makes_no_search(searches, direction):
    config = load_config(ROOT / "config" / "aup-milter.toml")
    rule = Confidential(config.policies["confidential"], load_directory(config.directory_path))
    raw, _ = normalise_line_endings(files.message(PLAIN, subject="Council budget"))
    message = Message(Envelope("sortiz@example.gov", ("partner@county.org",), trusted=True), raw, direction)
    assert rule.check(message) == []
    assert searches == []


def test_vocabulary_without_numbers_searches_only_for_the_terms_it_has(searches):
    [hit] = scan(
        [
            Text(
                "Patient: Jane Roe was diagnosed with diabetes and prescribed insulin. " + PLAIN,
                "1",
                "body",
                WORDS,
                5.0,
            )
        ]
    )
    assert hit.detector == "health_terms"
    assert searches and not any(r"\d" in pattern for pattern in searches)  # word lists (and lines), no number pattern
    assert len(searches) == len(set(searches))  # each list at most once
    assert not any("dialysis" in pattern for pattern in searches)  # a term the text does not have is left out


def test_numbers_too_short_for_a_detector_are_not_searched_for(searches):
    scan([Text("Room 12, meeting at 3 on the 4th floor. " + PLAIN, "1", "body", WORDS, 5.0)])
    assert searches == []  # a two-digit run cannot be an SSN, a card, an account or a student ID


def test_the_tokens_of_a_text():
    found = Tokens.of(
        "SSN#: 512-34-6789, cards ACCT_no déjà \u017fecurity \u212aey \u0130d 1234567890123 ٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣", 5.0
    )
    assert {"ssn", "cards", "card", "acct", "no", "security", "key", "id"} <= found.words
    assert {"d", "j"} <= found.words  # a letter outside ASCII ends a word (a word too many is harmless)
    assert found.longest_number == 15  # Unicode digits count, as \d means them in the detectors' patterns
    assert Tokens.of("no digits here", 5.0).longest_number == 0


def test_a_long_text_is_read_in_pieces_without_cutting_a_word(monkeypatch):
    monkeypatch.setattr(tokens, "PIECE", 10)
    content = "aaaa bbbbbbbbbbbbbbbbbbbbbbbbb ccc\n123456789012 ssn dd"
    assert "".join(tokens._pieces(content)) == content
    found = Tokens.of(content, 5.0)
    assert {"aaaa", "bbbbbbbbbbbbbbbbbbbbbbbbb", "ccc", "ssn", "dd"} <= found.words
    assert found.longest_number == 12


@pytest.mark.parametrize("name", [name for name in NAMES if name != "test_card_numbers"])
def test_a_narrowed_list_finds_exactly_what_the_whole_list_finds(name):
    rng = random.Random(name)
    terms = [term for terms in WORDS.terms.values() for term in terms]
    separators = [" ", "  ", "\n", "\t", ", ", ": ", "-", "_", "/", ".", "", "s ", "é", "1"]
    for _ in range(200):
        pieces = []
        for _ in range(rng.randrange(1, 12)):
            term = rng.choice(terms)
            term = rng.choice([term, term.upper(), term.title(), term.replace(" ", "\n"), term.replace("s", "\u017f")])
            pieces += [term, rng.choice(separators)]
        content = "".join(pieces)
        whole = WORDS.pattern(name)
        narrowed = WORDS.pattern_for(name, Tokens.of(content, 5.0).words)
        expected = [m.span() for m in whole.finditer(content)] if whole else []
        assert ([m.span() for m in narrowed.finditer(content)] if narrowed else []) == expected, content


def test_a_term_with_a_character_outside_ascii_is_always_searched_for(tmp_path):
    custom = tmp_path / "ssn.txt"
    custom.write_text("número de seguro social\n")
    words = Wordlists({"ssn_keywords": custom})
    assert words.pattern_for("ssn_keywords", frozenset()) is not None
    hits = scan([Text("Número de seguro social: 512-34-6789", "1", "body", words, 5.0)])
    assert [(h.detector, str(h.confidence)) for h in hits] == [("ssn", "high")]


def test_segments_are_prepared_once_per_message_and_shared(monkeypatch):
    raw = files.message("SSN 512-34-6789")
    message = Message(Envelope("a@example.gov", ("b@county.org",)), raw, "outbound")
    counted: list[int] = []
    of = Tokens.of.__func__  # type: ignore[attr-defined]
    monkeypatch.setattr(
        Tokens, "of", classmethod(lambda cls, content, timeout: counted.append(1) or of(cls, content, timeout))
    )
    first = texts_of(message, WORDS, 5.0)
    texts_of(message, Wordlists(), 5.0)  # another rule, another rule build: the same preparation
    assert len(counted) == len(first) == 2  # the subject and the body, once each
    assert message.derived(SHARED_KEY, lambda m: []) is segments(message, 5.0)
    assert [hit.masked for hit in scan(first)] == ["***-**-6789"]
