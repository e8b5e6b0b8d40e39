"""Archive members at any depth, within caps on depth, count, expanded size, ratio and time.

Zip bombs (42.zip's nesting, Fifield's overlapping entries) hit a cap and
become a Trouble the pipeline holds for IT. Nothing here holds more unpacked
bytes than the message's Budget: every member's size is taken from the budget
before it is read, and no reader is asked for more than it declared.
"""

from __future__ import annotations

import bz2
import gzip
import io
import itertools
import lzma
import struct
import tarfile
import time
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from milter.mail.filetypes import FileType, true_type
from milter.mail.settings import LimitSettings

ZIP_MIMES = frozenset({"application/zip", "application/x-zip-compressed"})
TAR_MIMES = frozenset({"application/x-tar", "application/x-gtar", "application/x-ustar"})
COMPRESSED_MIMES = frozenset({"application/gzip", "application/x-gzip", "application/x-bzip2", "application/x-xz"})
SEVEN_ZIP_MIMES = frozenset({"application/x-7z-compressed"})
RAR_MIMES = frozenset({"application/x-rar", "application/vnd.rar", "application/x-rar-compressed"})
ARCHIVE_MIMES = ZIP_MIMES | TAR_MIMES | COMPRESSED_MIMES | SEVEN_ZIP_MIMES | RAR_MIMES
KEEP_DATA_BYTES = 32 * 1024 * 1024  # members up to this size keep their bytes for scanners and extraction
RATIO_FLOOR = 1024 * 1024  # anything may expand to 1 MiB; past that the ratio cap applies
TOTAL_MEMBERS_FACTOR = 10  # all archives of one message list at most 10 x archive_members members
_ZIP_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA}
_ZIP_AES = 99  # WinZip AES: the member is encrypted
_ZIP_CENTRAL = b"PK\x01\x02"
_ZIP_LOCAL = b"PK\x03\x04"
_STREAMS: dict[str, Callable[[io.BytesIO], io.BufferedIOBase]] = {  # readers that follow concatenated members
    "application/gzip": lambda f: gzip.GzipFile(fileobj=f),
    "application/x-gzip": lambda f: gzip.GzipFile(fileobj=f),
    "application/x-bzip2": bz2.BZ2File,
    "application/x-xz": lzma.LZMAFile,
}

TroubleKind = Literal["cap", "encrypted", "corrupt", "unsupported"]


def is_archive(ftype: FileType | None) -> bool:
    return ftype is not None and ftype.mime in ARCHIVE_MIMES


@dataclass(frozen=True)
class Entry:
    """A file inside an archive attachment (at any depth)."""

    path: str  # "2/outer.zip/inner.zip/run.js"
    name: str
    size: int
    depth: int
    encrypted: bool
    true_type: FileType | None  # None when the member could not be read
    data: bytes | None = field(default=None, repr=False, compare=False)  # kept while within the caps


@dataclass(frozen=True)
class Trouble:
    where: str
    kind: TroubleKind
    detail: str


@dataclass
class Budget:
    """What one message may unpack in all: bytes, members and seconds."""

    limits: LimitSettings
    expanded: int = 0
    members: int = 0
    started: float = field(default_factory=time.monotonic)

    def take(self, size: int) -> bool:
        if self.expanded + size > self.limits.archive_expanded:
            return False
        self.expanded += size
        return True

    @property
    def remaining(self) -> int:
        return max(0, self.limits.archive_expanded - self.expanded)

    def count_member(self) -> bool:
        self.members += 1
        return self.members <= self.limits.archive_members * TOTAL_MEMBERS_FACTOR

    def out_of_time(self) -> bool:
        return time.monotonic() - self.started > self.limits.extract_time

    def ceiling(self, packed: int) -> int:
        """The most bytes `packed` compressed bytes may unpack to: the ratio cap, and what is left."""
        return min(self.remaining, max(self.limits.archive_ratio * packed, RATIO_FLOOR))


def walk(
    data: bytes, path: str, label: str, ftype: FileType, budget: Budget, depth: int = 1
) -> Iterator[Entry | Trouble]:
    """Every member of an archive, and of archives inside it, or the trouble met."""
    if depth > budget.limits.archive_depth:
        yield Trouble(
            path, "cap", f"{label}: archives nested deeper than {budget.limits.archive_depth} levels were not opened"
        )
        return
    if ftype.mime in ZIP_MIMES:
        yield from _zip(data, path, label, budget, depth)
    elif ftype.mime in TAR_MIMES:
        yield from _tar(data, path, label, budget, depth)
    elif ftype.mime in COMPRESSED_MIMES:
        yield from _compressed(data, path, label, ftype, budget, depth)
    elif ftype.mime in SEVEN_ZIP_MIMES:
        yield from _seven_zip(data, path, label, budget, depth)
    elif ftype.mime in RAR_MIMES:
        yield from _rar(data, path, label, budget, depth)


def _member(path: str, name: str, content: bytes, depth: int, budget: Budget) -> Iterator[Entry | Trouble]:
    ftype = true_type(content, name)
    yield Entry(path, name, len(content), depth, False, ftype, content if len(content) <= KEEP_DATA_BYTES else None)
    if is_archive(ftype):
        yield from walk(content, path, name, ftype, budget, depth + 1)


def _too_many(path: str, label: str, budget: Budget) -> Trouble:
    total = budget.limits.archive_members * TOTAL_MEMBERS_FACTOR
    return Trouble(
        path, "cap", f"{label}: the message's archives hold more than {total} members; the rest were not inspected"
    )


def _zip(data: bytes, path: str, label: str, budget: Budget, depth: int) -> Iterator[Entry | Trouble]:
    limits = budget.limits
    # zipfile builds an object per central-directory entry before we can count
    # them; each entry starts with this signature, so counting it bounds that.
    if data.count(_ZIP_CENTRAL) > TOTAL_MEMBERS_FACTOR * limits.archive_members:
        yield Trouble(path, "cap", f"{label}: far more than {limits.archive_members} members; not opened")
        return
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        infos = archive.infolist()
    except Exception as exc:  # zipfile raises many kinds on hostile input
        yield Trouble(path, "corrupt", f"{label}: not a readable ZIP ({type(exc).__name__}: {exc})")
        return
    if len(infos) > limits.archive_members:
        yield Trouble(path, "cap", f"{label}: {len(infos)} members, more than the {limits.archive_members} inspected")
        infos = infos[: limits.archive_members]
    if overlapping(data, infos):
        yield Trouble(path, "cap", f"{label}: members overlap each other (an overlapping-entry zip bomb); not opened")
        return
    for info in infos:
        if info.is_dir():
            continue
        member_path = f"{path}/{info.filename}"
        if not budget.count_member():
            yield _too_many(member_path, label, budget)
            return
        if info.flag_bits & 0x1 or info.compress_type == _ZIP_AES:
            yield Entry(member_path, info.filename, info.file_size, depth, True, None)
            continue
        if budget.out_of_time():
            yield Trouble(member_path, "cap", f"{label}: ran out of inspection time")
            return
        if info.compress_type not in _ZIP_METHODS:
            yield Trouble(
                member_path, "unsupported", f"{info.filename}: compression method {info.compress_type} is not supported"
            )
            continue
        if info.file_size > max(limits.archive_ratio * info.compress_size, RATIO_FLOOR):
            yield Trouble(
                member_path,
                "cap",
                f"{info.filename}: expands {info.file_size // max(info.compress_size, 1)} times, over the {limits.archive_ratio}x limit",
            )
            continue
        if not budget.take(info.file_size):
            yield Trouble(
                member_path,
                "cap",
                f"{label}: unpacking {info.filename} would pass the {limits.archive_expanded} byte limit",
            )
            return
        try:
            # zipfile never returns more than the declared size, and checks the CRC at the end.
            with archive.open(info) as handle:
                content = handle.read(info.file_size)
        except Exception as exc:
            yield Trouble(member_path, "corrupt", f"{info.filename}: cannot be unpacked ({type(exc).__name__}: {exc})")
            continue
        yield from _member(member_path, info.filename, content, depth, budget)


def overlapping(data: bytes, infos: list[zipfile.ZipInfo]) -> bool:
    """True when two members' local data overlap, as in Fifield's zip bomb.

    A member occupies its local header, name and extra field (lengths read
    from the local header itself, which can differ from the central
    directory's) and its compressed data. Real zips never overlap; a data
    descriptor after the data only makes the true span longer, never shorter.
    """
    spans = []
    for info in infos:
        start = info.header_offset
        header = data[start : start + 30]
        if len(header) < 30 or header[:4] != _ZIP_LOCAL:
            continue  # zipfile reports the bad header as corrupt when the member is opened
        name_length, extra_length = struct.unpack("<HH", header[26:30])
        spans.append((start, start + 30 + name_length + extra_length + info.compress_size))
    spans.sort()
    return any(later[0] < earlier[1] for earlier, later in itertools.pairwise(spans))


def _tar(data: bytes, path: str, label: str, budget: Budget, depth: int) -> Iterator[Entry | Trouble]:
    try:
        archive = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # noqa: SIM115 - closed by the with below
    except Exception as exc:
        yield Trouble(path, "corrupt", f"{label}: not a readable tar archive ({type(exc).__name__}: {exc})")
        return
    with archive:
        yield from _tar_members(archive, path, label, budget, depth)


def _tar_members(
    archive: tarfile.TarFile, path: str, label: str, budget: Budget, depth: int
) -> Iterator[Entry | Trouble]:
    limits = budget.limits
    count = 0
    while True:
        try:
            info = archive.next()
        except Exception as exc:
            yield Trouble(path, "corrupt", f"{label}: broken tar header ({type(exc).__name__}: {exc})")
            return
        if info is None:
            return
        count += 1
        if count > limits.archive_members:
            yield Trouble(
                path, "cap", f"{label}: more than {limits.archive_members} members; the rest were not inspected"
            )
            return
        if budget.out_of_time():
            yield Trouble(path, "cap", f"{label}: ran out of inspection time")
            return
        if not info.isfile():
            continue
        member_path = f"{path}/{info.name}"
        if not budget.count_member():
            yield _too_many(member_path, label, budget)
            return
        if not budget.take(info.size):
            yield Trouble(
                member_path,
                "cap",
                f"{label}: unpacking {info.name} would pass the {limits.archive_expanded} byte limit",
            )
            return
        try:
            handle = archive.extractfile(info)
            content = handle.read(info.size) if handle else b""
        except Exception as exc:
            yield Trouble(member_path, "corrupt", f"{info.name}: cannot be unpacked ({type(exc).__name__}: {exc})")
            return  # a tar is read in order: nothing after a broken member can be trusted
        yield from _member(member_path, info.name, content, depth, budget)


def _compressed(
    data: bytes, path: str, label: str, ftype: FileType, budget: Budget, depth: int
) -> Iterator[Entry | Trouble]:
    ceiling = budget.ceiling(len(data))
    try:
        # The stdlib readers follow concatenated members (gzip a b > c; pbzip2),
        # so nothing after the first member hides; read asks for at most ceiling + 1.
        with _STREAMS[ftype.mime](io.BytesIO(data)) as stream:
            content = stream.read(ceiling + 1)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        yield Trouble(path, "corrupt", f"{label}: cannot be decompressed ({type(exc).__name__}: {exc})")
        return
    if len(content) > ceiling:
        which = (
            "the byte limit for all of the message's archives"
            if ceiling == budget.remaining
            else f"{budget.limits.archive_ratio} times its compressed size"
        )
        yield Trouble(path, "cap", f"{label}: expands past {ceiling} bytes ({which}); not inspected")
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
    from py7zr.io import BytesIOFactory

    limits = budget.limits
    try:
        # max_extract_size stops py7zr itself if the members unpack past what is left.
        archive = py7zr.SevenZipFile(io.BytesIO(data), max_extract_size=budget.remaining)
    except py7zr.exceptions.PasswordRequired:
        yield Trouble(path, "encrypted", f"{label}: the 7z member list is encrypted; its contents cannot be listed")
        return
    except Exception as exc:  # py7zr raises a wide range on corrupt input
        yield Trouble(path, "corrupt", f"{label}: not a readable 7z archive ({type(exc).__name__})")
        return
    with archive:
        infos = [info for info in archive.list() if not info.is_directory]
        if len(infos) > limits.archive_members:
            yield Trouble(
                path, "cap", f"{label}: {len(infos)} members, more than the {limits.archive_members} inspected"
            )
            return
        if archive.needs_password():
            for info in infos:
                if not budget.count_member():
                    yield _too_many(f"{path}/{info.filename}", label, budget)
                    return
                yield Entry(f"{path}/{info.filename}", info.filename, info.uncompressed or 0, depth, True, None)
            return
        total = sum(info.uncompressed or 0 for info in infos)
        if total > budget.ceiling(len(data)) or not budget.take(total):
            yield Trouble(path, "cap", f"{label}: would unpack {total} bytes, over the size or ratio limit")
            return
        factory = BytesIOFactory(limit=total)  # each member stops at its declared size; all within `total`
        try:
            archive.extractall(factory=factory)
        except Exception as exc:
            yield Trouble(path, "corrupt", f"{label}: cannot be unpacked ({type(exc).__name__})")
            return
    for info in infos:
        if not budget.count_member():
            yield _too_many(f"{path}/{info.filename}", label, budget)
            return
        product = factory.products.get(info.filename)
        if product is None:
            yield Trouble(f"{path}/{info.filename}", "corrupt", f"{info.filename}: missing from the unpacked 7z")
            continue
        product.seek(0)
        yield from _member(f"{path}/{info.filename}", info.filename, product.read(), depth, budget)


# -- RAR: listed with rarfile ----------------------------------------------------------------
# rarfile reads RAR 1.5 to 5 headers itself: names, sizes and encryption come
# without any other program, and stored (uncompressed) members are read
# directly. Compressed members need an unpacker (unrar, unar, 7z or bsdtar);
# without one, or past what it may do, they are listed by name only and
# reported "unsupported", so the message is held for IT, never delivered unread.


def _rar(data: bytes, path: str, label: str, budget: Budget, depth: int) -> Iterator[Entry | Trouble]:
    import rarfile  # needed only for RAR attachments

    limits = budget.limits
    try:
        archive = rarfile.RarFile(io.BytesIO(data))
        infos = [info for info in archive.infolist() if not info.is_dir()]
    except rarfile.NeedFirstVolume:
        yield Trouble(path, "unsupported", f"{label}: a later part of a multi-volume RAR; it cannot be read alone")
        return
    except rarfile.RarCannotExec:
        yield Trouble(path, "unsupported", f"{label}: its RAR headers need an unpacker this system does not have")
        return
    except Exception as exc:  # rarfile raises many kinds on hostile input
        yield Trouble(path, "corrupt", f"{label}: not a readable RAR archive ({type(exc).__name__})")
        return
    if archive.needs_password() and not infos:
        yield Trouble(path, "encrypted", f"{label}: the RAR member list is encrypted; its contents cannot be listed")
        return
    if len(infos) > limits.archive_members:
        yield Trouble(path, "cap", f"{label}: {len(infos)} members, more than the {limits.archive_members} inspected")
        infos = infos[: limits.archive_members]
    for info in infos:
        name = info.filename or ""
        member_path = f"{path}/{name}"
        size = info.file_size or 0
        if not budget.count_member():
            yield _too_many(member_path, label, budget)
            return
        if info.needs_password():
            yield Entry(member_path, name, size, depth, True, None)
            continue
        if budget.out_of_time():
            yield Trouble(member_path, "cap", f"{label}: ran out of inspection time")
            return
        if size > max(limits.archive_ratio * (info.compress_size or 0), RATIO_FLOOR):
            yield Trouble(
                member_path,
                "cap",
                f"{name}: expands {size // max(info.compress_size or 0, 1)} times, over the {limits.archive_ratio}x limit",
            )
            continue
        if not budget.take(size):
            yield Trouble(
                member_path, "cap", f"{label}: unpacking {name} would pass the {limits.archive_expanded} byte limit"
            )
            return
        try:
            with archive.open(info) as handle:
                content = handle.read(size)
        except rarfile.RarCannotExec:
            yield Entry(member_path, name, size, depth, False, None)
            yield Trouble(
                member_path,
                "unsupported",
                f"{name}: a compressed RAR member, and no RAR unpacker is installed; only its name was checked",
            )
            continue
        except Exception as exc:
            yield Trouble(member_path, "corrupt", f"{name}: cannot be unpacked ({type(exc).__name__}: {exc})")
            continue
        yield from _member(member_path, name, content, depth, budget)
