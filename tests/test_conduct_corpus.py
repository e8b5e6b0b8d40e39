"""The labelled conduct corpus: chain letters of many styles and eras, and hard negatives.

`tests/data/conduct/chain/` holds chain letters (luck, virus hoaxes, money
pyramids, gift circles, sick-child and Microsoft-pays hoaxes, in plain text,
HTML, quoted-printable, base64, forwarded as an attachment, nested forwards,
Spanish, typos); `tests/data/conduct/ham/` holds mail that shares their words
without being one (a manager asking to forward to a team, a news story about
chain letters, an IT hoax warning, a petition, invitations, deep business
forwards, a pyramid-scheme consumer alert). The folder is the label.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from milter import cli
from milter.kernel.directory import load_directory
from milter.mail.message import Envelope, Message, normalise_line_endings
from policies.base import Action, Services
from policies.rules.chain_letters import ChainLetters, ChainLettersSettings
from tests.conftest import EXAMPLE_DIRECTORY, write_config

CORPUS = Path(__file__).resolve().parent / "data" / "conduct"
CHAIN = sorted((CORPUS / "chain").glob("*.eml"))
HAM = sorted((CORPUS / "ham").glob("*.eml"))
MIN_PRECISION = 0.98
MIN_RECALL = 0.95


def labelled() -> list[tuple[Path, bool]]:
    return [(path, True) for path in CHAIN] + [(path, False) for path in HAM]


def blocked_by_chain_rule(rule: ChainLetters, path: Path) -> tuple[bool, list[str]]:
    """Whether the rule holds or rejects the message, and its reasons."""
    raw, _ = normalise_line_endings(path.read_bytes())
    message = Message(Envelope("sortiz@example.gov", ("public-works-team@example.gov",), trusted=True), raw, "internal")
    findings = rule.check(message)
    return any(f.action >= Action.HOLD for f in findings), [f.reason for f in findings]


def test_the_labelled_corpus_is_big_enough():
    assert len(CHAIN) >= 25 and len(HAM) >= 25, (len(CHAIN), len(HAM))


def test_chain_letter_precision_and_recall_on_the_labelled_corpus(capsys):
    rule = ChainLetters(ChainLettersSettings(), load_directory(EXAMPLE_DIRECTORY), Services())
    outcomes = [(path, is_chain, *blocked_by_chain_rule(rule, path)) for path, is_chain in labelled()]
    true_positive = sum(1 for _, is_chain, blocked, _ in outcomes if is_chain and blocked)
    false_positive = [(path.name, reasons) for path, is_chain, blocked, reasons in outcomes if not is_chain and blocked]
    missed = [path.name for path, is_chain, blocked, _ in outcomes if is_chain and not blocked]
    precision = true_positive / (true_positive + len(false_positive)) if true_positive + len(false_positive) else 0.0
    recall = true_positive / len(CHAIN)
    with capsys.disabled():
        print(
            f"\nchain letters, labelled corpus: {len(CHAIN)} chain letters, {len(HAM)} ham; held or rejected: "
            f"{true_positive} chain letters, {len(false_positive)} ham; precision {precision:.3f}, recall {recall:.3f}"
        )
    assert precision >= MIN_PRECISION, f"precision {precision:.3f}; ham held or rejected: {false_positive}"
    assert recall >= MIN_RECALL, f"recall {recall:.3f}; chain letters missed: {missed}"


@pytest.fixture(scope="module")
def configs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The shipped rules as configured, and the chain-letter rule in monitor mode and capped at hold."""
    folder = tmp_path_factory.mktemp("conduct-check")
    variants = {"enforce": {}, "monitor": {"mode": "monitor"}, "hold": {"action": "hold"}}
    return {
        name: write_config(
            folder / name,
            f"sqlite:///{folder / name / 'aup.db'}",
            f"maildir:{folder / name / 'out'}",
            {"policies": {"chain_letters": extra}},
        )
        for name, extra in variants.items()
    }


def check_json(path: Path, config: Path, capsys: pytest.CaptureFixture[str]) -> dict:
    code = cli.main(["check", str(path), "--json", "--config", str(config)])
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert code == cli.CHECK_EXIT[result["action"]], err
    return result


def chain_findings(result: dict) -> list[dict]:
    return [f for f in result["findings"] if f["policy"] == "chain_letters"]


@pytest.mark.parametrize("path", CHAIN, ids=[p.name for p in CHAIN])
def test_check_blocks_each_chain_letter_and_monitor_mode_only_records_it(path, configs, capsys):
    enforced = check_json(path, configs["enforce"], capsys)
    found = chain_findings(enforced)
    assert enforced["action"] in {"hold", "reject"}, enforced
    assert len(found) == 1 and found[0]["action"] in {"hold", "reject"} and found[0]["mode"] == "enforce"
    assert found[0]["evidence"] and all(
        '"' in item or "levels" in item or "addresses" in item for item in found[0]["evidence"]
    )

    monitored = check_json(path, configs["monitor"], capsys)
    assert monitored["action"] == "deliver", monitored  # nothing else in these messages asks for anything
    assert [(f["mode"], f["action"], f["reason"]) for f in chain_findings(monitored)] == [
        ("monitor", found[0]["action"], found[0]["reason"])
    ]

    capped = check_json(path, configs["hold"], capsys)
    assert capped["action"] == "hold" and [f["action"] for f in chain_findings(capped)] == ["hold"]


@pytest.mark.parametrize("path", HAM, ids=[p.name for p in HAM])
def test_check_delivers_each_hard_negative(path, configs, capsys):
    result = check_json(path, configs["enforce"], capsys)
    assert result["action"] == "deliver", result
    assert all(f["action"] in {"deliver", "tag"} for f in result["findings"]), result["findings"]
