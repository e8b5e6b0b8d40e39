"""The chain-letter rule: an explained score, its thresholds and ceiling, its lists, and copies counted over a window."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from milter.config import load_config
from milter.intake.pipeline import Pipeline
from milter.kernel.db import Database
from milter.kernel.directory import load_directory
from milter.kernel.settings import ConfigError
from milter.mail.message import Envelope, Message, normalise_line_endings
from policies.base import Action, Services
from policies.registry import POLICIES
from policies.rules import fingerprints
from policies.rules.chain_letters import ChainLetters, ChainLettersSettings
from tests.conftest import EXAMPLE_DIRECTORY, message_bytes, write_config

DATA = Path(__file__).resolve().parent / "data" / "conduct"
DIRECTORY = load_directory(EXAMPLE_DIRECTORY)
NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)

# A chain letter that on its own words only reaches the tag threshold (two demands to forward, nothing else).
MILD_CHAIN = (
    "Hi everyone, my aunt sent me this lovely story and I could not keep it to myself.\r\n\r\n"
    "A little girl walked along a beach covered in starfish washed up by the storm. One by one she threw them back\r\n"
    "into the sea. A man laughed and told her she could never save them all, it made no difference. She picked up\r\n"
    "another, threw it into the waves and said: it made a difference to that one. Kindness is like that: small\r\n"
    "things done with love, again and again, change the world one life at a time, one friend at a time.\r\n\r\n"
    "Send this to 10 friends and keep the chain going.\r\n"
)


def message(
    body: str,
    sender: str = "sortiz@example.gov",
    rcpts: tuple[str, ...] = ("public-works-team@example.gov",),
    subject: str = "a story",
) -> Message:
    raw, _ = normalise_line_endings(message_bytes(sender=sender, to=", ".join(rcpts), subject=subject, body=body))
    return Message(Envelope(sender, rcpts, client_ip="127.0.0.2", trusted=True), raw, "internal")


def rule(services: Services | None = None, **settings: object) -> ChainLetters:
    return ChainLetters(ChainLettersSettings.model_validate(settings), DIRECTORY, services or Services())


def test_the_reason_explains_the_score_and_quotes_every_cue():
    body = (
        "Forward this to 10 people within 24 hours of reading it. Bad luck will follow anyone who breaks it.\r\n"
        "This is not a joke. Microsoft will pay you for each forward.\r\n"
    )
    [finding] = rule().check(message(body))
    assert finding.policy == "chain_letters" and finding.action == Action.REJECT and finding.reply == "550 5.7.1"
    reason = finding.reason
    assert (
        "chain letter" in reason and "(rule chain_letters)" in reason and "(tag at 4, hold at 6, reject at 9)" in reason
    )
    for quote in (
        '"Forward this to 10 people"',
        '"within 24 hours of reading it"',
        '"Bad luck will follow"',
        '"This is not a joke"',
        '"Microsoft will pay you"',
    ):
        assert quote in reason, quote
        assert any(quote in item for item in finding.evidence), quote
    score = int(reason.split("score ", 1)[1].split(" ", 1)[0])
    assert score == 3 + 1 + 2 + 2 + 3  # forward, deadline, luck, authority, money at the default points
    assert reason.endswith("ask IT to review it.")  # what to do next


def test_points_thresholds_and_the_ceiling_come_from_the_settings():
    two_demands = message(MILD_CHAIN)
    assert rule().score(two_demands).total == 6  # "Send this to 10 friends", "keep the chain going"
    assert [f.action for f in rule().check(two_demands)] == [Action.HOLD]
    assert [f.action for f in rule(thresholds={"tag": 2, "hold": 4, "reject": 6}).check(two_demands)] == [Action.REJECT]
    [capped] = rule(thresholds={"tag": 2, "hold": 4, "reject": 6}, action="hold").check(two_demands)
    assert (
        capped.action == Action.HOLD
        and "(tag at 2, hold at 4, reject at 6; this rule asks at most hold)" in capped.reason
    )
    assert [f.action for f in rule(points={"forward": 2}).check(two_demands)] == [Action.TAG]
    assert rule(points={"forward": 1}).check(two_demands) == []
    assert rule(max_hits_per_kind=1).score(two_demands).total == 3


def test_a_cue_in_quotation_marks_is_a_mention_and_a_warning_takes_points_away():
    used = message("Forward this to 10 people. Bad luck will follow if you do not.\r\n")
    mentioned = message('The hoax says "Forward this to 10 people. Bad luck will follow" and it is false.\r\n')
    assert rule().score(used).total == 5
    assert rule().score(mentioned).total == -3  # quoted cues count nothing; "is false" is a counter-cue
    denied = message("This is not a chain letter! Send this to 10 friends.\r\n")
    assert rule().score(denied).parts.keys() == {
        "forward",
        "authority",
    }  # "a chain letter" inside the denial is no counter-cue


def test_forward_nesting_and_a_list_of_earlier_recipients_add_points():
    addresses = "; ".join(f"person{i}@mail{i}.example.net" for i in range(20))
    body = (
        "".join(f"-----Original Message-----\r\nTo: {addresses}\r\nSubject: FW: Fw: joke\r\n\r\n" for _ in range(3))
        + "Cheers.\r\n"
    )
    score = rule().score(message(body, subject="FW: FW: FW: FW: joke"))
    assert score.of("nesting") == 3  # four levels, one free
    assert score.of("recipients") == 2
    assert "20 addresses in the body" in score.explained()


@pytest.mark.parametrize(
    "name",
    [
        "01-manager-forward-team.eml",
        "02-news-article-chain-letters.eml",
        "03-it-hoax-warning.eml",
        "04-crosswalk-petition.eml",
        "05-event-invitation.eml",
        "29-police-chain-of-custody.eml",
    ],
)
def test_the_hard_negatives_named_in_the_issue_are_not_held(name):
    raw, _ = normalise_line_endings((DATA / "ham" / name).read_bytes())
    found = rule().check(Message(Envelope("x@example.gov", ("y@example.gov",), trusted=True), raw, "internal"))
    assert all(f.action < Action.HOLD for f in found), [f.reason for f in found]


def test_lists_can_be_replaced_by_path_and_a_bad_list_is_a_config_error(tmp_path):
    custom = tmp_path / "forward.txt"
    custom.write_text("# our own wording\nhand (this|it) on to {n} colleagues\n")
    found = rule(lists={"forward": custom}, thresholds={"tag": 3, "hold": 4, "reject": 5}).check(
        message("Hand this on to 6 colleagues.\r\n")
    )
    assert [f.action for f in found] == [Action.TAG] and '"Hand this on to 6 colleagues"' in found[0].reason

    custom.write_text("forward (this| to\n")
    path = write_config(
        tmp_path / "cfg",
        f"sqlite:///{tmp_path / 'a.db'}",
        f"maildir:{tmp_path / 'out'}",
        {"policies": {"chain_letters": {"lists": {"forward": str(custom)}}}},
    )
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "policies.chain_letters" in str(error.value) and "forward (this| to" in str(error.value)
    path = write_config(
        tmp_path / "cfg2",
        f"sqlite:///{tmp_path / 'a.db'}",
        f"maildir:{tmp_path / 'out'}",
        {"policies": {"chain_letters": {"thresholds": {"tag": 8, "hold": 6, "reject": 9}}}},
    )
    with pytest.raises(ConfigError, match="tag <= hold <= reject"):
        load_config(path)


# -- copies of one text from many senders, counted over a window ---------------------------


@pytest.fixture
def database(database_url: str) -> Database:
    db = Database(database_url)
    db.create_schema()
    yield db
    db.dispose()


def record_copies(
    database: Database,
    senders: list[str],
    at: datetime,
    body: str = MILD_CHAIN,
    rcpts: tuple[str, ...] = ("all-staff@example.gov",),
) -> None:
    with database.write() as connection:
        for index, sender in enumerate(senders):
            # each copy a little different, as forwarded copies are: a greeting of its own
            copy = message(f"From {sender}: thought of you all.\r\n\r\n{body}", sender=sender, rcpts=rcpts)
            fingerprints.record(connection, fingerprints.row_for(copy, at - timedelta(minutes=index)))


def test_the_same_text_from_many_internal_senders_within_the_window_raises_the_score(database):
    record_copies(database, ["lpark@example.gov", "cnguyen@example.gov", "jdoe@example.gov"], NOW - timedelta(days=2))
    this = message(MILD_CHAIN, sender="dwhitfield@example.gov")
    alone = rule().score(this)
    counted = rule(Services(database=database, clock=lambda: NOW)).score(this)
    reached = DIRECTORY.group("all-staff@example.gov").size + len(
        DIRECTORY.group("public-works-team@example.gov").members
    )
    assert "spread" not in alone.parts
    assert counted.total == alone.total + 4
    assert (
        f"the same text came from 4 senders to {reached} local recipients in the last 7 days (3 earlier copies)"
        in counted.explained()
    )
    assert [f.action for f in rule(Services(database=database, clock=lambda: NOW)).check(this)] == [Action.REJECT]

    later = rule(Services(database=database, clock=lambda: NOW + timedelta(days=6)))
    assert "spread" not in later.score(this).parts  # the copies are now more than 7 days old
    wider = rule(Services(database=database, clock=lambda: NOW + timedelta(days=6)), spread={"window": "10d"})
    assert "spread" in wider.score(this).parts


def test_too_few_senders_or_a_different_text_do_not_count(database):
    record_copies(database, ["lpark@example.gov"], NOW - timedelta(hours=1))
    services = Services(database=database, clock=lambda: NOW)
    this = message(MILD_CHAIN, sender="dwhitfield@example.gov")
    assert "spread" not in rule(services).score(this).parts  # two senders, three needed
    assert "spread" in rule(services, spread={"min_senders": 2}).score(this).parts
    other = message(
        "Send this to 10 friends and keep the chain going.\r\n"
        + "The budget meeting moved to Thursday at ten in room 2. " * 8
    )
    record_copies(database, ["cnguyen@example.gov", "jdoe@example.gov"], NOW - timedelta(hours=1), body=other.body_text)
    assert "spread" not in rule(services).score(this).parts  # the same cues, but not the same text
    assert "spread" not in rule(services, spread={"min_senders": 2, "min_recipients": 1000}).score(this).parts


def test_fingerprints_are_close_for_copies_and_far_for_other_texts():
    base = fingerprints.fingerprint_text(MILD_CHAIN)
    forwarded = fingerprints.fingerprint_text(
        "FYI, from my sister!\n\n-----Original Message-----\nFrom: Ann <ann@example.net>\n"
        "Sent: Monday\nTo: a@b.example, c@d.example\nSubject: FW: story\n\n"
        + "\n".join("> " + line for line in MILD_CHAIN.splitlines())
    )
    other = fingerprints.fingerprint_text((DATA / "ham" / "07-business-forward-thread.eml").read_text())
    assert base is not None and forwarded is not None and other is not None
    assert (base ^ forwarded).bit_count() <= 5 < (base ^ other).bit_count()
    assert fingerprints.fingerprint_text("Thanks, see you at ten.") is None  # too short to say anything


def test_old_fingerprints_are_pruned(database):
    record_copies(database, ["lpark@example.gov", "jdoe@example.gov"], NOW - fingerprints.KEEP - timedelta(days=1))
    record_copies(database, ["cnguyen@example.gov"], NOW)
    with database.write() as connection:
        assert fingerprints.prune(connection, NOW - fingerprints.KEEP) == 2
    with database.read() as connection:
        assert connection.execute(select(func.count()).select_from(fingerprints.message_fingerprint)).scalar_one() == 1


def test_the_pipeline_passes_its_services_to_the_rule(tmp_path, database):
    """Through the real Pipeline and config: the rule reads the gateway's database with the pipeline's clock."""
    record_copies(database, ["lpark@example.gov", "cnguyen@example.gov"], NOW - timedelta(hours=3))
    path = write_config(
        tmp_path / "cfg",
        database.url,
        f"maildir:{tmp_path / 'out'}",
        {"policies": {"chain_letters": {"thresholds": {"tag": 4, "hold": 7, "reject": 12}}}},
    )
    config = load_config(path)
    with ThreadPoolExecutor(2) as executor:
        pipeline = Pipeline(
            config, DIRECTORY, executor=executor, services=Services(database=database, clock=lambda: NOW)
        )
        decision = asyncio.run(pipeline.run(message(MILD_CHAIN, sender="dwhitfield@example.gov")))
    assert decision.action == "hold"  # 6 from its words alone would only tag; 4 more for the spread
    assert any("the same text came from 3 senders" in f.reason for f in decision.findings)


def test_the_shipped_config_documents_the_defaults_of_the_conduct_rules():
    shipped = load_config()  # config/aup-milter.toml
    for rule_class in POLICIES:
        if rule_class.name in {"chain_letters", "language", "solicitation", "webmail_forwarding"}:
            assert shipped.policies[rule_class.name] == rule_class.Settings(), rule_class.name


def test_a_body_that_repeats_one_word_pair_hundreds_of_times_still_gets_a_fingerprint():
    # simhash's own weights overflowed past 255 repeats under numpy 2; on the accept path that
    # would have meant a 4xx on every retry, so the message could never be accepted.
    repetitive = message("Totals:\r\n" + "0 " * 600 + "\r\n", sender="lpark@example.gov")
    row = fingerprints.row_for(repetitive)
    assert row is not None and len(row["simhash"]) == 16


def test_ordinary_mail_never_asks_the_database_how_widely_it_spread():
    class NoQueries:
        def read(self):
            raise AssertionError("ordinary mail must not cost a database query")

    plain = message(
        "Hello team,\r\n\r\nThe budget meeting moved to Thursday at ten in room 204. "
        "Please bring the draft figures for the road paving contract and the park schedule.\r\n" * 4
    )
    assert rule(Services(database=NoQueries(), clock=lambda: NOW)).score(plain).total == 0
