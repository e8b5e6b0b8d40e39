"""Archive members at any depth, within caps on depth, count, expanded size, ratio and time.

Zip bombs (42.zip's nesting, overlapping-entry bombs) hit a cap and become a
Trouble the pipeline holds for IT; nothing here reads more than the budget.
"""

from __future__ import annotations

import bz2
import io
import lzma
import tarfile
import tempfile
import time
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from milter.filetypes import FileType, true_type
from milter.settings import LimitSettings

ZIP_MIMES = frozenset({"application/zip", "application/x-zip-compressed"})
TAR_MIMES = frozenset({"application/x-tar", "application/x-gtar"})
COMPRESSED_MIMES = frozenset({"application/gzip", "application/x-gzip", "application/x-bzip2", "application/x-xz"})
SEVEN_ZIP_MIMES = frozenset({"application/x-7z-compressed"})
ARCHIVE_MIMES = ZIP_MIMES | TAR_MIMES | COMPRESSED_MIMES | SEVEN_ZIP_MIMES
KEEP_DATA_BYTES = 32 * 1024 * 1024  # members up to this size keep their bytes for scanners and extraction
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_ZIP_AES = 99  # WinZip AES: the member is encrypted


def is_archive(ftype: FileType | None) -> bool:
    return ftype is not None and ftype.mime in ARCHIVE_MIMES


@dataclass(frozen=True)
class Entry:
    path: str
    name: str
    size: int
    depth: int
    encrypted: bool
    true_type: FileType | None
    data: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Trouble:
    where: str
    kind: str  # "cap", "encrypted", "corrupt", "unsupported"
    detail: str


@dataclass
class Budget:
    """What one message may unpack in all: bytes and seconds."""

    limits: LimitSettings
    expanded: int = 0
    started: float = field(default_factory=time.monotonic)

    def take(self, size: int) -> bool:
        if self.expanded + size > self.limits.archive_expanded:
            return False
        self.expanded += size
        return True

    @property
    def remaining(self) -> int:
        return max(0, self.limits.archive_expanded - self.expanded)

    def out_of_time(self) -> bool:
        return time.monotonic() - self.started > self.limits.extract_time


def walk(data: bytes, path: str, label: str, ftype: FileType, budget: Budget, depth: int = 1) -> Iterator[Entry | Trouble]:
    """Every member of an archive, and of archives inside it, or the trouble met."""
    if depth > budget.limits.archive_depth:
        yield Trouble(path, "cap", f"{label}: archives nested deeper than {budget.limits.archive_depth} levels were not opened")
        return
    if ftype.mime in ZIP_MIMES:
        yield from _zip(data, path, label, budget, depth)
    elif ftype.mime in TAR_MIMES:
        yield from _tar(data, path, label, budget, depth)
    elif ftype.mime in COMPRESSED_MIMES:
        yield from _compressed(data, path, label, ftype, budget, depth)
    elif ftype.mime in SEVEN_ZIP_MIMES:
        yield from _seven_zip(data, path, label, budget, depth)


def _member(path: str, name: str, content: bytes, depth: int, budget: Budget) -> Iterator[Entry | Trouble]:
    ftype = true_type(content, name)
    yield Entry(path, name, len(content), depth, False, ftype, content if len(content) <= KEEP_DATA_BYTES else None)
    if is_archive(ftype):
        yield from walk(content, path, name, ftype, budget, depth + 1)


def _zip(data: bytes, path: str, label: str, budget: Budget, depth: int) -> Iterator[Entry | Trouble]:
    limits = budget.limits
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError) as exc:
        yield Trouble(path, "corrupt", f"{label}: not a readable ZIP ({exc})")
        return
    if len(infos) > limits.archive_members:
        yield Trouble(path, "cap", f"{label}: {len(infos)} members, more than the {limits.archive_members} inspected")
        infos = infos[: limits.archive_members]
    if _overlapping(infos):
        yield Trouble(path, "cap", f"{label}: members overlap each other (an overlapping-entry zip bomb)")
        return
    for info in infos:
        if info.is_dir():
            continue
        member_path = f"{path}/{info.filename}"
        if info.flag_bits & 0x1 or info.compress_type == _ZIP_AES:
            yield Entry(member_path, info.filename, info.file_size, depth, True, None)
            continue
        if budget.out_of_time():
            yield Trouble(member_path, "cap", f"{label}: ran out of inspection time")
            return
        if info.compress_type not in _ZIP_METHODS:
            yield Trouble(member_path, "unsupported", f"{info.filename}: compression method {info.compress_type} is not supported")
            continue
        if info.file_size > limits.archive_ratio * max(info.compress_size, 1) and info.file_size > 1024 * 1024:
            yield Trouble(member_path, "cap", f"{info.filename}: expands {info.file_size // max(info.compress_size, 1)} times, over the {limits.archive_ratio}x limit")
            continue
        if not budget.take(info.file_size):
            yield Trouble(member_path, "cap", f"{label}: unpacking {info.filename} would pass the {limits.archive_expanded} byte limit")
            return
        try:
            with archive.open(info) as handle:
                content = handle.read(info.file_size + 1)
        except (zipfile.BadZipFile, NotImplementedError, RuntimeError, OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
            yield Trouble(member_path, "corrupt", f"{info.filename}: cannot be unpacked ({exc})")
            continue
        if len(content) > info.file_size:
            yield Trouble(member_path, "corrupt", f"{info.filename}: holds more than its declared size")
            continue
        yield from _member(member_path, info.filename, content, depth, budget)


def _overlapping(infos: list[zipfile.ZipInfo]) -> bool:
    # Fifield's bomb makes many central-directory entries share one compressed
    # stream; no two real members' local data can overlap.
    spans = sorted((info.header_offset, info.header_offset + 30 + len(info.filename.encode()) + info.compress_size) for info in infos)
    return any(nxt[0] < cur[1] for cur, nxt in zip(spans, spans[1:], strict=False))


def _tar(data: bytes, path: str, label: str, budget: Budget, depth: int) -> Iterator[Entry | Trouble]:
    limits = budget.limits
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:")
    except (tarfile.TarError, OSError, EOFError) as exc:
        yield Trouble(path, "corrupt", f"{label}: not a readable tar archive ({exc})")
        return
    count = 0
    while True:
        try:
            info = archive.next()
        except (tarfile.TarError, OSError, EOFError) as exc:
            yield Trouble(path, "corrupt", f"{label}: broken tar header ({exc})")
            return
        if info is None:
            return
        count += 1
        if count > limits.archive_members:
            yield Trouble(path, "cap", f"{label}: more than {limits.archive_members} members; the rest were not inspected")
            return
        if budget.out_of_time():
            yield Trouble(path, "cap", f"{label}: ran out of inspection time")
            return
        if not info.isfile():
            continue
        member_path = f"{path}/{info.name}"
        if not budget.take(info.size):
            yield Trouble(member_path, "cap", f"{label}: unpacking {info.name} would pass the {limits.archive_expanded} byte limit")
            return
        handle = archive.extractfile(info)
        content = handle.read(info.size) if handle else b""
        yield from _member(member_path, info.name, content, depth, budget)


def _compressed(data: bytes, path: str, label: str, ftype: FileType, budget: Budget, depth: int) -> Iterator[Entry | Trouble]:
    limits = budget.limits
    ceiling = min(budget.remaining, limits.archive_ratio * max(len(data), 1024 * 1024 // limits.archive_ratio))
    if ftype.mime in ("application/gzip", "application/x-gzip"):
        decompressor: zlib._Decompress | bz2.BZ2Decompressor | lzma.LZMADecompressor = zlib.decompressobj(wbits=47)
    elif ftype.mime == "application/x-bzip2":
        decompressor = bz2.BZ2Decompressor()
    else:
        decompressor = lzma.LZMADecompressor()
    try:
        content = decompressor.decompress(data, ceiling + 1)
    except (zlib.error, OSError, lzma.LZMAError, EOFError, ValueError) as exc:
        yield Trouble(path, "corrupt", f"{label}: cannot be decompressed ({exc})")
        return
    if len(content) > ceiling:
        yield Trouble(path, "cap", f"{label}: expands past {ceiling} bytes (ratio or size limit); not inspected")
        return
    budget.take(len(content))
    name = label.rsplit(".", 1)[0] if "." in label else f"{label}.out"
    inner_path = f"{path}/{name}"
    inner = true_type(content, name)
    if inner.mime in TAR_MIMES:
        yield from _tar(content, inner_path, name, budget, depth)
    else:
        yield from _member(inner_path, name, content, depth, budget)


def _seven_zip(data: bytes, path: str, label: str, budget: Budget, depth: int) -> Iterator[Entry | Trouble]:
    import py7zr  # heavy import, needed only for 7z attachments

    limits = budget.limits
    try:
        archive = py7zr.SevenZipFile(io.BytesIO(data))
    except py7zr.exceptions.PasswordRequired:
        yield Trouble(path, "encrypted", f"{label}: the 7z member list is encrypted; its contents cannot be listed")
        return
    except Exception as exc:  # py7zr raises a wide range on corrupt input
        yield Trouble(path, "corrupt", f"{label}: not a readable 7z archive ({type(exc).__name__})")
        return
    with archive:
        infos = [info for info in archive.list() if not info.is_directory]
        if len(infos) > limits.archive_members:
            yield Trouble(path, "cap", f"{label}: {len(infos)} members, more than the {limits.archive_members} inspected")
            return
        if archive.needs_password():
            for info in infos:
                yield Entry(f"{path}/{info.filename}", info.filename, info.uncompressed or 0, depth, True, None)
            return
        total = sum(info.uncompressed or 0 for info in infos)
        if total > limits.archive_ratio * max(len(data), 1024 * 1024 // limits.archive_ratio) or not budget.take(total):
            yield Trouble(path, "cap", f"{label}: would unpack {total} bytes, over the size or ratio limit")
            return
        with tempfile.TemporaryDirectory(prefix="aup-7z-") as folder:
            try:
                archive.extractall(path=folder)
            except Exception as exc:
                yield Trouble(path, "corrupt", f"{label}: cannot be unpacked ({type(exc).__name__})")
                return
            for info in infos:
                target = Path(folder, info.filename)
                if target.is_file() and target.resolve().is_relative_to(Path(folder).resolve()):
                    yield from _member(f"{path}/{info.filename}", info.filename, target.read_bytes(), depth, budget)
