"""Accuracy, measured: precision and recall per detector family on a labelled corpus.

The corpus (tests/support/dlp_corpus.py) has positives in bodies, docx, xlsx, pdf,
csv and zip members, hard negatives (invoice and order numbers, phones,
ZIP+4, dates, tracking numbers, SSNs with invalid areas, Luhn-failing cards,
published test cards in an API guide, record vocabulary with no person), and
real mail from CPython's and mail-parser's test corpora. A family counts as
found when a detector reports it at medium confidence or above: the level
the rule's outbound thresholds act on. Run with -s to see every figure:

    .venv/bin/python -m pytest tests/test_dlp_accuracy.py -q -s
"""

from __future__ import annotations

from collections import Counter

import pytest

from milter.mail.message import Envelope, Message, normalise_line_endings
from policies.detectors import Confidence, Wordlists, scan
from policies.detectors.sources import texts_of
from tests.support.dlp_corpus import (
    FAMILIES,
    PROSE_CONTAINERS,
    TABLE_CONTAINERS,
    corpus,
    real_messages,
    render,
)

MIN_PRECISION, MIN_RECALL = 0.99, 0.98
WORDS = Wordlists()


def families_found(raw: bytes) -> set[str]:
    data, _ = normalise_line_endings(raw)
    message = Message(Envelope("sortiz@example.gov", ("partner@county.org",)), data, "outbound")
    return {hit.family for hit in scan(texts_of(message, WORDS, 10.0)) if hit.confidence >= Confidence.MEDIUM}


@pytest.fixture(scope="module")
def outcomes() -> list[tuple[str, str, frozenset[str], set[str]]]:
    """(case, container, labels, families found) for every case and real message."""
    results = []
    for index, case in enumerate(corpus()):
        container = case.containers[index % len(case.containers)]
        results.append((case.name, container, case.labels, families_found(render(case, container))))
    for name, raw, labels in real_messages():
        results.append((name, "real mail", labels, families_found(raw)))
    return results


def test_precision_and_recall_per_family(outcomes, capsys):
    counts: dict[str, Counter[str]] = {family: Counter() for family in FAMILIES}
    wrong = []
    for name, container, labels, found in outcomes:
        for family in FAMILIES:
            key = ("tp" if family in found else "fn") if family in labels else ("fp" if family in found else "tn")
            counts[family][key] += 1
            if key in ("fp", "fn"):
                wrong.append(f"{key} {family}: {name} ({container})")
    lines = [f"{'family':<16} {'positives':>9} {'tp':>4} {'fp':>4} {'fn':>4} {'precision':>9} {'recall':>7}"]
    failing = []
    for family, c in counts.items():
        precision = c["tp"] / (c["tp"] + c["fp"]) if c["tp"] + c["fp"] else 1.0
        recall = c["tp"] / (c["tp"] + c["fn"]) if c["tp"] + c["fn"] else 1.0
        lines.append(
            f"{family:<16} {c['tp'] + c['fn']:>9} {c['tp']:>4} {c['fp']:>4} {c['fn']:>4} {precision:>9.3f} {recall:>7.3f}"
        )
        if precision < MIN_PRECISION or recall < MIN_RECALL:
            failing.append(family)
    negatives = sum(1 for _, _, labels, _ in outcomes if not labels)
    lines.append(f"{len(outcomes)} cases, {negatives} with no confidential data")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert not failing, "\n".join(lines + wrong)


def test_the_corpus_covers_every_family_container_and_negative(outcomes):
    positives = Counter(family for _, _, labels, _ in outcomes for family in labels)
    assert all(positives[family] >= 20 for family in FAMILIES), positives
    containers = {container for _, container, labels, _ in outcomes if labels}
    assert set(PROSE_CONTAINERS) | set(TABLE_CONTAINERS) <= containers
    assert sum(1 for _, _, labels, _ in outcomes if not labels) >= 150
