"""SMTP AUTH credentials: a file of LOGIN:ARGON2-HASH lines, like a Dovecot passwd file.

Hashes come from `aup-milter smtp-passwd LOGIN`. Argon2 is slow on purpose;
a successful check is remembered (keyed by an HMAC of the password under a
per-process key) so a busy client does not pay it on every connection.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import secrets
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_hasher = PasswordHasher()
_cache_key = secrets.token_bytes(32)


def hash_password(password: str) -> str:
    return _hasher.hash(password)


@functools.cache
def _decoy_hash() -> str:
    """Checked for unknown logins so they cost one Argon2 verify, like a wrong password."""
    return _hasher.hash(secrets.token_hex(16))


def check_password(stored_hash: str, password: str) -> bool:
    try:
        return _hasher.verify(stored_hash, password)
    except (VerificationError, InvalidHashError):
        return False


class PasswordFile:
    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.hashes: dict[str, str] = {}
        for number, line in enumerate(self.path.read_text(encoding="utf-8").splitlines(), start=1):
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            login, sep, stored = line.partition(":")
            if not sep or not stored.startswith("$argon2"):
                raise ValueError(
                    f"{self.path}:{number}: expected LOGIN:ARGON2-HASH (make one with `aup-milter smtp-passwd LOGIN`)"
                )
            self.hashes[login.strip().lower()] = stored.strip()
        self._verified: set[bytes] = set()

    def verify(self, login: str, password: str) -> bool:
        stored = self.hashes.get(login.strip().lower())
        if stored is None:
            check_password(_decoy_hash(), password)  # same cost as a known login: no hint which logins exist
            return False
        token = hmac.new(_cache_key, f"{login}\x00{password}\x00{stored}".encode(), hashlib.sha256).digest()
        if token in self._verified:
            return True
        if check_password(stored, password):
            self._verified.add(token)
            return True
        return False
