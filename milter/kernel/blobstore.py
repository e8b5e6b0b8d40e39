"""Content-addressed, write-once storage for raw messages (SHA-256).

A blob is written to a temporary file, fsynced, renamed into place and its
directory fsynced: after `put` returns, the bytes survive a crash or power
loss. Nothing here can overwrite or delete a blob.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from pathlib import Path

from milter.kernel.durable import fsync_dir, write_file


class BlobMissing(LookupError):
    pass


class BlobCorrupt(ValueError):
    pass


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / digest[:2] / digest[2:4] / digest

    def exists(self, digest: str) -> bool:
        return self.path(digest).is_file()

    def put(self, data: bytes) -> str:
        digest = sha256_hex(data)
        target = self.path(digest)
        if target.is_file() and target.stat().st_size == len(data):
            return digest  # already stored, byte for byte (the name is the hash)
        self._make_dirs(target.parent)
        write_file(target.parent / f".tmp-{secrets.token_hex(8)}", target, data)
        fsync_dir(target.parent)
        return digest

    def get(self, digest: str, *, verify: bool = False) -> bytes:
        try:
            data = self.path(digest).read_bytes()
        except FileNotFoundError:
            raise BlobMissing(digest) from None
        if verify and sha256_hex(data) != digest:
            raise BlobCorrupt(digest)
        return data

    def free_bytes(self) -> int:
        stats = os.statvfs(self.root)
        return stats.f_bavail * stats.f_frsize

    def _make_dirs(self, folder: Path) -> None:
        # Create the two fan-out levels durably: a new directory entry is only
        # safe once its parent directory has been fsynced.
        for level in (folder.parent, folder):
            if not level.is_dir():
                level.mkdir(exist_ok=True)
                fsync_dir(level.parent)
