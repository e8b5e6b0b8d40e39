"""Phrase lists: the admin syntax, typos, quoting, the anchored search, and list files that are wrong."""

from __future__ import annotations

from pathlib import Path

import pytest

from policies.text.phrases import Text, compile_phrase, load_phrases
from policies.text.wordlists import SHIPPED, read_list

CORPUS = Path(__file__).resolve().parent / "data" / "conduct"


def found(entry: str, text: str) -> str | None:
    hit = compile_phrase(entry).search(Text(text))
    return hit.quote if hit else None


@pytest.mark.parametrize(
    ("entry", "text", "quote"),
    [
        (
            "forward (this|it) to {n} (people|friends)",
            "Please FORWARD it to ten friends now",
            "FORWARD it to ten friends",
        ),
        (
            "forward (this|it) to {n} (people|friends)",
            "forward this to 10 (ten) people",
            "forward this to 10 (ten) people",
        ),
        (
            "forward (this|it) to {n} (people|friends)",
            "forward this to twenty five people",
            "forward this to twenty five people",
        ),
        (
            "forward this [message|email] to {n} people",
            "forward this message to 5 people",
            "forward this message to 5 people",
        ),
        ("forward this [message|email] to {n} people", "forward this to 5 people", "forward this to 5 people"),
        ("(dont|do not) break the chain", "Don't break the chain!!!", "Don't break the chain"),
        ("(dont|do not) break the chain", "DO   NOT\nbreak  the\tchain", "DO NOT break the chain"),
        ("forward* it", "she forwarded it on", "forwarded it"),
        ("re:\\bsnopes\\b", "checked on Snopes.", "Snopes"),
        ("send it to {n} friends", "send it to 10 friends", "send it to 10 friends"),
    ],
)
def test_the_syntax_matches_what_it_says(entry, text, quote):
    assert found(entry, text) == quote


@pytest.mark.parametrize(
    ("entry", "text"),
    [
        ("forward (this|it) to {n} (people|friends)", "forward this to a friend"),  # "a" is not a number
        ("forward (this|it) to {n} (people|friends)", "please forward this to your team"),
        ("(dont|do not) break the chain", "do not break the chainsaw blade"),  # whole words only
        ("bad luck", "badluck"),
        ("forward this [message|email] to {n} people", "forward this memo to 5 people"),
    ],
)
def test_it_matches_nothing_else(entry, text):
    assert found(entry, text) is None


def test_words_of_five_letters_or_more_may_have_a_typo():
    entry = "forward (this|it) to {n} (people|friends)"
    assert found(entry, "forwrd this to 10 people") == "forwrd this to 10 people"  # a letter missing
    assert found(entry, "forward this to 10 peple") == "forward this to 10 peple"
    assert (
        found(entry, "forward this to 10 peopel") is None
    )  # two letters swapped: two edits, a six-letter word allows one
    assert found("misfortune will strike", "misfourtune will strik") is None  # "will" and "strike" are exact ...
    assert (
        found("misfortune will strike", "misfourtne will strike") == "misfourtne will strike"
    )  # ... nine letters: two edits
    assert found("dont break the chain", "dont brek the chain") == "dont brek the chain"
    assert found("dont break the chain", "dont brk the chain") is None


def test_a_phrase_whose_telling_words_are_all_misspelled_is_missed():
    assert found("forward (this|it) to {n} (people|friends)", "forwrd this to 10 peple") is None


def test_common_short_words_never_take_a_typo():
    assert found("(you are|youre) (trash|scum)", "your trash is collected on Monday") is None
    assert found("(you are|youre) (trash|scum)", "Youre trash.") == "Youre trash"


@pytest.mark.parametrize("entry", ["forward (this|) to", "[maybe|perhaps]", "re:(unclosed", "forward (|) it"])
def test_a_bad_line_is_an_error_naming_it(entry):
    with pytest.raises(ValueError, match="phrase list"):
        compile_phrase(entry)


def test_a_list_file_skips_comments_and_is_read_again_when_edited(tmp_path):
    path = tmp_path / "list.txt"
    path.write_text("# a comment\n\nforward this to {n} people   # why\n")
    assert read_list(path) == ("forward this to {n} people",)
    assert len(load_phrases(path)) == 1
    path.write_text("forward this to {n} people\nbad luck will follow\n")
    assert len(load_phrases(path)) == 2


def test_quotation_marks_make_a_mention():
    phrase = compile_phrase("forward this to {n} people")
    quoted = Text('The letter said "forward this to 10 people" and nothing else.')
    curly = Text("Chain letters say \u201cforward this to 10 people\u201d, the article explains.")
    bare = Text('She said it twice. Forward this to 10 people. "Why?" I asked.')
    for text, expected in ((quoted, True), (curly, True), (bare, False)):
        hit = phrase.search(text)
        assert hit is not None and text.in_quotation(hit.start, hit.end) is expected, text.original


def texts_of_the_corpus() -> list[Text]:
    texts = []
    for path in sorted(CORPUS.glob("*/*.eml")):
        body = path.read_text(encoding="utf-8", errors="replace").split("\n\n", 1)[-1]
        texts.append(Text(body))
    return texts


def test_the_anchored_search_finds_what_a_search_of_the_whole_text_finds():
    """Searching only around each phrase's telling words must lose nothing a full search finds."""
    texts = texts_of_the_corpus()
    compared = 0
    for path in sorted(SHIPPED.glob("*.txt")):
        if not path.name.startswith(("chain_", "solicitation_")):
            continue
        for phrase in load_phrases(path).phrases:
            for text in texts:
                full = phrase.pattern.search(text.normal)
                anchored = phrase.search(text)
                assert (anchored is None) == (full is None), (path.name, phrase.entry, text.normal[:80])
                compared += full is not None
    assert compared > 50  # the corpus does exercise the lists
