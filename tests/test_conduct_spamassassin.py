"""The chain-letter rule on the ham of the SpamAssassin public corpus: not one message may be held or rejected.

The ham (easy ham 1 and 2, hard ham: 4,150 real messages from 2002) comes
from tests/support/spamassassin.py. The rule runs in-process on Messages, as
the pipeline runs it, not over SMTP.
"""

from __future__ import annotations

import time
from pathlib import Path

from milter.kernel.directory import load_directory
from milter.mail.message import Envelope, Message, normalise_line_endings
from policies.base import Action, Services
from policies.rules.chain_letters import ChainLetters, ChainLettersSettings
from tests.conftest import EXAMPLE_DIRECTORY
from tests.support.spamassassin import HAM_SETS, corpus, without_mbox_line


def ham_messages(data: Path) -> dict[str, list[Path]]:
    return {name: sorted((data / name).glob("*.txt")) for name in HAM_SETS}


def as_message(path: Path) -> Message:
    raw, _ = normalise_line_endings(without_mbox_line(path.read_bytes()))
    return Message(Envelope("sender@example.org", ("sortiz@example.gov",)), raw, "inbound")


def test_no_spamassassin_ham_is_held_or_rejected_as_a_chain_letter(capsys):
    messages = ham_messages(corpus())
    for name, expected in HAM_SETS.items():
        assert len(messages[name]) == expected, f"{name}: {len(messages[name])} messages, expected {expected}"
    rule = ChainLetters(ChainLettersSettings(), load_directory(EXAMPLE_DIRECTORY), Services())
    blocked: list[str] = []
    tagged = 0
    started = time.monotonic()
    for name, paths in messages.items():
        for path in paths:
            findings = rule.check(as_message(path))
            blocked += [f"{name}/{path.name}: {f.reason}" for f in findings if f.action >= Action.HOLD]
            tagged += sum(1 for f in findings if f.action == Action.TAG)
    seconds = time.monotonic() - started
    total = sum(len(paths) for paths in messages.values())
    with capsys.disabled():
        print(
            f"\nchain letters, SpamAssassin ham: {total} messages ({', '.join(f'{n} {len(p)}' for n, p in messages.items())}); "
            f"held or rejected {len(blocked)}, tagged {tagged}; {seconds:.1f} s ({1000 * seconds / total:.1f} ms a message)"
        )
    assert not blocked, "\n".join(blocked[:20])
