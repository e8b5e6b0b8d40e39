"""Abusive language: disguised profanity found, Scunthorpe-style words not, threats and slurs held by default."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from milter.config import load_config
from milter.intake.pipeline import Pipeline
from milter.kernel.directory import load_directory
from milter.mail.message import Envelope, Message, normalise_line_endings
from policies.base import Action
from policies.rules.language import Language, LanguageSettings
from policies.text.obfuscation import LEET, WordList, prepare
from policies.text.wordlists import SHIPPED, read_list
from tests.conftest import EXAMPLE_DIRECTORY, message_bytes, write_config

DIRECTORY = load_directory(EXAMPLE_DIRECTORY)
HAM = Path(__file__).resolve().parent / "data" / "conduct" / "ham"
TEST_WORDS = (
    "ass",
    "cunt",
    "dick",
    "cock",
    "fuck*",
    "shit",
    "bitch*",
)  # a list of our own, so the test does not lean on the shipped one


def words_found(text: str, words: tuple[str, ...] = TEST_WORDS) -> list[tuple[str, str]]:
    return [(hit.word, hit.quote) for hit in WordList.of(words).find(text, prepare(text), 1.0)]


@pytest.mark.parametrize(
    ("text", "word", "quote"),
    [
        ("what the f*ck", "fuck*", "f*ck"),
        ("WHAT THE F**K", "fuck*", "F**K"),
        ("f u c k this", "fuck*", "f u c k"),
        ("f.u.c.k.i.n.g hell", "fuck*", "f.u.c.k"),
        ("fuuuuuck", "fuck*", "fuuuuuck"),
        ("such sh1t", "shit", "sh1t"),
        ("5h!t happens", "shit", "5h!t"),
        ("shiiiiit", "shit", "shiiiiit"),
        ("s-h-i-t", "shit", "s-h-i-t"),
        ("you @ss", "ass", "@ss"),
        ("b!tch please", "bitch*", "b!tch"),
        ("biiitchy", "bitch*", "biiitchy"),
        ("fück", "fuck*", "fuck"),  # accents stripped
        ("fu\u200bck", "fuck*", "fuck"),  # a zero-width space inside
        ("d1ck", "dick", "d1ck"),
        ("c u n t", "cunt", "c u n t"),
        ("f***ing", "fuck*", "f***ing"),
    ],
)
def test_disguised_profanity_is_found(text, word, quote):
    assert words_found(text) == [(word, quote)]


@pytest.mark.parametrize(
    "text",
    [
        "Scunthorpe United won on Saturday",
        "the assessment is due",
        "first class mail",
        "Charles Dickens",
        "a cocktail reception",
        "the cockpit voice recorder",
        "Hancock Street",
        "passage of the budget",
        "Sussex County",
        "Room 455",
        "it cost $55",
        "the Galaxy A55 phone",
        "shiitake mushrooms",
        "bass and pass",
        "a $$$ figure",
        "the dickey seat",
        "Peacock Lane",
        "classic assistance",
        "f***",  # too few real letters to tell
    ],
)
def test_scunthorpe_style_words_are_not_found(text):
    assert words_found(text) == []


def test_the_shipped_lists_find_nothing_in_scunthorpe_style_words():
    body = "Scunthorpe, assessment, class, Dickens, cocktail, Hancock, passage, Sussex, shiitake, cockpit, therapist, bassist.\r\n"
    assert rule().check(message(body)) == []


def disguises(word: str) -> list[str]:
    """Ways people disguise a word: a leet letter, a masked inner letter, spaced out, stretched, capitals."""
    letters = word.rstrip("*")
    swap = next((i for i, c in enumerate(letters) if c in LEET), None)
    leet = letters if swap is None else letters[:swap] + LEET[letters[swap]][1] + letters[swap + 1 :]
    masked = letters[0] + "*" + letters[2:] if len(letters) > 2 else letters
    stretched = letters[:-1] + letters[-1] * 4
    forms = [letters.upper(), leet, masked, stretched]
    if len(letters) >= 4:
        forms.append(" ".join(letters))
    return forms


@pytest.mark.parametrize("name", ["language_profanity.txt", "language_slurs.txt"])
def test_every_shipped_word_is_found_in_disguise_and_none_in_ordinary_mail(name):
    entries = read_list(SHIPPED / name)
    words = tuple(e for e in entries if len(e.split()) == 1 and not e.startswith("re:"))
    assert len(words) >= 5
    for word in words:
        for form in disguises(word):
            assert [w for w, _ in words_found(f"well {form} again", words)] == [word], (word, form)
    for path in sorted(HAM.glob("*.eml")):
        text = path.read_text(encoding="utf-8", errors="replace")
        assert words_found(text, words) == [], path.name


def message(body: str, subject: str = "hi") -> Message:
    raw, _ = normalise_line_endings(
        message_bytes(sender="sortiz@example.gov", to="lpark@example.gov", subject=subject, body=body)
    )
    return Message(
        Envelope("sortiz@example.gov", ("lpark@example.gov",), client_ip="127.0.0.2", trusted=True), raw, "internal"
    )


def rule(**settings: object) -> Language:
    return Language(LanguageSettings.model_validate(settings), DIRECTORY)


def test_profanity_is_recorded_and_threats_and_slurs_are_held_by_default_quoting_the_words():
    [profane] = rule().check(message("This printer is a piece of sh1t, what the f*ck.\r\n"))
    assert profane.action == Action.DELIVER and '"sh1t"' in profane.reason and '"f*ck"' in profane.reason
    assert "(rule language, profanity)" in profane.reason and "only recorded" in profane.reason

    [threat] = rule().check(message("I know where you live. You will regret this.\r\n"))
    assert threat.action == Action.HOLD and threat.hold_queue == "quarantine"
    assert '"I know where you live"' in threat.reason and '"You will regret this"' in threat.reason
    assert "threatening or harassing" in threat.reason and "held until IT reviews it" in threat.reason

    [slur] = rule().check(message("Why don't you go back to your country.\r\n"))
    assert (
        slur.action == Action.HOLD and '"go back to your country"' in slur.reason and "national origin" in slur.reason
    )


@pytest.mark.parametrize(
    "body",
    [
        "I'll shoot you an email when the report is ready.",
        "Please kill the stuck print job.",
        "Don't kill yourself over this deadline.",
        "We will find you a parking space.",
        "Your trash is collected on Mondays.",
        "Watch your back when lifting heavy boxes.",
        "No one wants you to work late.",
        "You will pay for it with the purchasing card.",
    ],
)
def test_ordinary_sentences_near_threats_are_not_threats(body):
    assert rule().check(message(body + "\r\n")) == []


def test_each_category_has_its_own_action_under_the_rules_ceiling(tmp_path):
    body = "What the f*ck. I know where you live.\r\n"
    actions = {
        f.reason.split("(rule language, ")[1].split(")")[0]: f.action
        for f in rule(actions={"profanity": "reject", "threats": "off"}).check(message(body))
    }
    assert actions == {"profanity": Action.HOLD}  # reject asked, but the rule's action (hold) is the most it asks
    actions = {
        f.evidence[0].split(":")[0]: f.action
        for f in rule(action="reject", actions={"profanity": "reject", "threats": "tag"}).check(message(body))
    }
    assert actions == {"profanity": Action.REJECT, "threats": Action.TAG}

    own = tmp_path / "profanity.txt"
    own.write_text("# our list\nfrobnicate\n")
    found = rule(lists={"profanity": own}).check(message("Do not fr0bn1cate the ledger. What the f*ck.\r\n"))
    assert [f.evidence for f in found] == [('profanity: "fr0bn1cate" (list entry: frobnicate)',)]


def test_through_the_pipeline_profanity_is_delivered_and_a_threat_is_held(tmp_path):
    config = load_config(
        write_config(tmp_path / "cfg", f"sqlite:///{tmp_path / 'a.db'}", f"maildir:{tmp_path / 'out'}")
    )
    with ThreadPoolExecutor(2) as executor:
        pipeline = Pipeline(config, DIRECTORY, executor=executor)
        profane = asyncio.run(pipeline.run(message("Damn, this sh1t again.\r\n")))
        threat = asyncio.run(pipeline.run(message("Watch it. I will hurt you.\r\n")))
    assert profane.action == "deliver" and [f.policy for f in profane.findings] == ["language"]
    assert threat.action == "hold" and threat.hold_queue == "quarantine"
    assert any('"I will hurt you"' in f.reason for f in threat.findings)
