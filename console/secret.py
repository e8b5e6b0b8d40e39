"""The key that signs console session cookies: read from a file, made on first start."""

from __future__ import annotations

import logging
import os
import secrets
from pathlib import Path

log = logging.getLogger(__name__)

MIN_LENGTH = 32


class SecretError(ValueError):
    pass


def load_or_create(path: Path) -> str:
    """The key in `path`; a new random one, written with mode 0600, when the file does not exist."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return _read(path)
    key = secrets.token_urlsafe(48)
    with os.fdopen(fd, "w", encoding="ascii") as file:
        file.write(key + "\n")
        file.flush()
        os.fsync(file.fileno())
    log.info("created a new console secret key in %s", path)
    return key


def _read(path: Path) -> str:
    if path.stat().st_mode & 0o077:
        log.warning("%s can be read by other users; run: chmod 600 %s", path, path)
    key = path.read_text(encoding="utf-8").strip()
    if len(key) < MIN_LENGTH:
        raise SecretError(
            f"{path}: the console secret key is shorter than {MIN_LENGTH} characters; "
            "delete the file and the gateway makes a new random one"
        )
    return key
