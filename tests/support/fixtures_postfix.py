"""The `postfix` fixture: a private Postfix instance per test, always stopped afterwards.

tests/conftest.py loads it for every test module.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.servers import PostfixServer


@pytest.fixture
def postfix() -> Iterator[PostfixServer]:
    # Not under pytest's tmp_path: Postfix's daemons run as their own users and must reach the folder.
    folder = Path(tempfile.mkdtemp(prefix="aup-pf-"))
    server = PostfixServer(folder)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(folder, ignore_errors=True)
