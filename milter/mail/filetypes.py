"""True file types, by content rather than by name (libmagic)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath

import magic

SNIFF_BYTES = 1024 * 1024  # libmagic reads no further than this by default


@dataclass(frozen=True)
class FileType:
    mime: str  # by content: application/vnd.microsoft.portable-executable
    description: str  # libmagic's words: "PE32 executable (GUI) Intel 80386 ..."
    extension: str  # from the name the sender gave, lower-case, without the dot

    @property
    def name_disagrees(self) -> bool:
        """A name that claims a harmless type over executable content, e.g. invoice.pdf that is a PE."""
        return (
            bool(self.extension)
            and self.mime in EXECUTABLE_MIMES
            and self.extension not in ("exe", "dll", "scr", "com", "sys")
        )

    def __str__(self) -> str:
        return self.mime


EXECUTABLE_MIMES = frozenset(
    {
        "application/vnd.microsoft.portable-executable",
        "application/x-dosexec",
        "application/x-msdownload",
        "application/x-executable",
        "application/x-sharedlib",
        "application/x-pie-executable",
        "application/x-mach-binary",
        "application/x-mach-o-executable",
    }
)


def extension_of(filename: str | None) -> str:
    if not filename:
        return ""
    return PurePosixPath(filename.replace("\\", "/")).suffix.lower().lstrip(".")


def true_type(data: bytes, filename: str | None = None) -> FileType:
    sample = data[:SNIFF_BYTES]
    if not sample:
        return FileType("application/x-empty", "empty", extension_of(filename))
    return FileType(magic.from_buffer(sample, mime=True), magic.from_buffer(sample), extension_of(filename))
