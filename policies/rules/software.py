"""No software by email: programs, scripts, installers, disk images and macro documents are refused.

The agencies' policies forbid saving software attached to email and bringing
in viruses, worms or other destructive code. Every attachment and every file
inside an archive, at any depth, is checked:
- by content: PE, ELF and Mach-O headers, shell and batch scripts, shortcuts,
  MSI installers, ISO and VHD images (libmagic, as Message.true_type gives
  them); ZIP-based packages by what they hold (a JAR's manifest, an MSIX's
  AppxManifest.xml); Office documents with VBA or Excel 4.0 macros (OOXML:
  vbaProject.bin or macro sheets, straight from the ZIP directory; OLE: olevba);
- by name: the extensions in config/wordlists/software_*.txt, so a script,
  which libmagic sees as plain text, is found too.
Each kind has its own action (reject by default). An archive whose member
list is encrypted is held for IT; caps, corrupt and unsupported members are
held by the inspection rule, which runs last, so no archive is delivered
uninspected and no problem is reported twice.
"""

from __future__ import annotations

import io
import logging
import warnings
import zipfile
from dataclasses import dataclass
from functools import cached_property
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, FilePath, model_validator

from milter.mail.containers import is_archive
from milter.mail.filetypes import EXECUTABLE_MIMES, FileType, extension_of
from milter.mail.message import Direction, Message, Problem
from policies.base import Finding, Policy, PolicySettings
from policies.text.wordlists import list_path, read_list

log = logging.getLogger(__name__)

Kind = Literal["executable", "script", "installer", "disk_image", "macro", "uninspectable"]
KindAction = Literal["reject", "hold", "tag", "monitor", "off"]
NAMED_KINDS: tuple[Kind, ...] = ("executable", "script", "installer", "disk_image")  # kinds with a list of extensions
OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
ZIP_MAGIC = b"PK\x03\x04"
MAX_EVIDENCE = 50

# What libmagic says, by kind: exact MIME types, and the start of its description.
CONTENT_MIMES: dict[Kind, frozenset[str]] = {
    "executable": EXECUTABLE_MIMES | {"application/x-ms-ne-executable", "application/x-elf", "application/x-object"},
    "script": frozenset(
        {
            "text/x-shellscript",
            "application/x-shellscript",
            "text/x-msdos-batch",
            "application/x-bat",
            "application/x-ms-shortcut",
            "application/java-archive",
            "application/x-java-archive",
            "application/x-java-applet",
            "application/hta",
        }
    ),
    "installer": frozenset(
        {
            "application/x-msi",
            "application/x-ms-installer",
            "application/vnd.debian.binary-package",
            "application/x-rpm",
            "application/x-xar",
            "application/vnd.android.package-archive",
        }
    ),
    "disk_image": frozenset(
        {
            "application/x-iso9660-image",
            "application/x-virtualbox-vhd",
            "application/x-virtualbox-vdi",
            "application/x-virtualbox-vmdk",
            "application/x-qemu-disk",
            "application/x-apple-diskimage",
        }
    ),
}
CONTENT_DESCRIPTIONS: dict[Kind, tuple[str, ...]] = {
    "executable": ("PE32", "MS-DOS executable", "ELF ", "Mach-O"),
    "script": ("MS Windows shortcut", "compiled Java class"),
    "installer": ("MSI Installer",),
    "disk_image": (
        "ISO 9660",
        "DOS/MBR boot sector",
        "Microsoft Disk Image",
        "VMware4 disk image",
        "QEMU QCOW",
        "UDF filesystem",
    ),
}
CONTENT_CONTAINS: dict[Kind, tuple[str, ...]] = {"installer": ("MSI Installer",)}  # an MSI is an OLE file that says so
# A ZIP that holds one of these is a package, whatever it is called.
ZIP_PACKAGES: tuple[tuple[str, Kind, str], ...] = (
    ("appxmanifest.xml", "installer", "an MSIX/AppX installer package"),
    ("androidmanifest.xml", "installer", "an Android package"),
    ("meta-inf/manifest.mf", "script", "a Java archive"),
)
KIND_WORDS: dict[Kind, str] = {
    "executable": "a program",
    "script": "a script or shortcut",
    "installer": "an installer",
    "disk_image": "a disk image",
    "macro": "an Office document with macros",
    "uninspectable": "a file the gateway could not inspect",
}


ACTION_FIX: Any = {"fix": '"reject", "hold" (quarantine for IT), "tag", "monitor" (record only) or "off"'}
LIST_FIX: Any = {"fix": "a file of extensions, one a line; leave out for config/wordlists/software_KIND.txt"}


class KindActions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    executable: KindAction = Field("reject", json_schema_extra=ACTION_FIX)
    script: KindAction = Field("reject", json_schema_extra=ACTION_FIX)
    installer: KindAction = Field("reject", json_schema_extra=ACTION_FIX)
    disk_image: KindAction = Field("reject", json_schema_extra=ACTION_FIX)
    macro: KindAction = Field("reject", json_schema_extra=ACTION_FIX)
    uninspectable: KindAction = Field("hold", json_schema_extra=ACTION_FIX)


class KindLists(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    executable: FilePath | None = Field(None, json_schema_extra=LIST_FIX)
    script: FilePath | None = Field(None, json_schema_extra=LIST_FIX)
    installer: FilePath | None = Field(None, json_schema_extra=LIST_FIX)
    disk_image: FilePath | None = Field(None, json_schema_extra=LIST_FIX)


class SoftwareSettings(PolicySettings):
    directions: list[Direction] = Field(
        ["inbound", "internal"], json_schema_extra={"fix": 'a list from "inbound", "outbound", "internal"'}
    )
    action: Literal["tag", "hold", "reject"] = Field(
        "reject", json_schema_extra={"fix": '"tag", "hold" or "reject": the most any kind asks'}
    )
    actions: KindActions = Field(
        KindActions(), json_schema_extra={"fix": 'a table such as { executable = "reject", macro = "hold" }'}
    )
    lists: KindLists = Field(
        KindLists(), json_schema_extra={"fix": 'a table such as { script = "/etc/aup-milter/scripts.txt" }'}
    )
    encrypted_members: Literal["allow", "hold"] = Field(
        "allow",
        json_schema_extra={
            "fix": (
                '"allow": files inside an encrypted ZIP or 7z pass when their names are harmless (the agency\'s way to send '
                'confidential data; files from strangers go to IT anyway); "hold": IT sees every one'
            )
        },
    )
    advice: str = Field(
        "If you need this file, ask the sender to share it another way (a link to the agency's file-sharing site) "
        "or contact IT, who can check it and pass it on.",
        json_schema_extra={"fix": "a sentence telling the recipient of inbound mail what to do next"},
    )
    sender_advice: str = Field(
        "Share the file another way instead (a link to the agency's file-sharing site), or contact IT, who can check "
        "it and pass it on.",
        json_schema_extra={"fix": "a sentence telling an agency sender (internal and outbound mail) what to do next"},
    )

    @model_validator(mode="after")
    def _lists_read(self) -> SoftwareSettings:
        for kind in NAMED_KINDS:
            read_list(list_path(getattr(self.lists, kind), f"software_{kind}.txt"))
        return self


@dataclass(frozen=True)
class File:
    """An attachment or a file inside an archive attachment, as the rules about files see it."""

    path: str  # "2", "2/outer.zip/inner.zip/run.js"
    name: str  # the file name the sender gave (or the part's label)
    size: int
    true_type: FileType | None  # None: not read (encrypted, or over the size kept in memory)
    data: bytes | None  # None: not read
    depth: int  # 0: an attachment; 1 and more: inside archives
    encrypted: bool = False
    walked_as: str = ""  # the path the archive walker gives this file when it is an archive (its members' prefix)

    @property
    def label(self) -> str:
        kind = self.true_type.description.split(",")[0] if self.true_type else "not read"
        return f"{self.name} ({kind}, {format_size(self.size)})"


def files_of(message: Message) -> list[File]:
    """Every attachment and every archive member, computed once per message and shared."""

    def compute(message: Message) -> list[File]:
        # content.archive_members walks an attachment as "PATH/FILENAME" (or PATH when it has no name).
        files = [
            File(
                part.path,
                part.filename or part.label,
                part.size,
                part.true_type,
                part.payload,
                0,
                walked_as=f"{part.path}/{part.filename}" if part.filename else part.path,
            )
            for part in message.attachments
        ]
        files += [
            File(m.path, m.name, m.size, m.true_type, m.data, m.depth, m.encrypted, walked_as=m.path)
            for m in message.archive_members
        ]
        return files

    return message.derived("software.files", compute)


@dataclass(frozen=True)
class Hit:
    kind: Kind
    file: File
    why: str  # "by content: PE32 executable", "by name: .js"


def _zip_names(data: bytes) -> list[str] | None:
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            return [name.lower() for name in archive.namelist()]
    except Exception:  # not a readable ZIP: the archive walker or the inspection rule says so
        return None


def macros_in(data: bytes, name: str, names: set[str] | None = None) -> str | None:
    """What macros an Office document carries ("VBA macros", "Excel 4.0 macros"), or None."""
    if data.startswith(ZIP_MAGIC):
        names = names if names is not None else set(_zip_names(data) or [])
        if "[content_types].xml" not in names:
            return None
        # The fast path: OOXML keeps VBA in vbaProject.bin and Excel 4.0 macros in macro sheets.
        if any(n.endswith("vbaproject.bin") for n in names):
            return "VBA macros"
        if any(n.startswith("xl/macrosheets/") for n in names):
            return "Excel 4.0 macros"
        return None
    if not data.startswith(OLE_MAGIC):
        return None
    with warnings.catch_warnings():  # olevba's import-time pyparsing deprecations say nothing about the document
        warnings.simplefilter("ignore", DeprecationWarning)
        from oletools import olevba  # heavy import, needed only for legacy Office files

    logging.getLogger("olevba").setLevel(logging.ERROR)
    parser = olevba.VBA_Parser(name or "document", data=data)
    try:
        if parser.detect_vba_macros():
            return "VBA macros"
        if parser.detect_xlm_macros():
            return "Excel 4.0 macros"
        return None
    finally:
        parser.close()


class Software(Policy):
    name = "software"
    description = (
        "Programs, scripts, installers, disk images and Office documents with macros are refused, found by "
        "content and by name at any archive depth; archives that cannot be fully opened go to IT."
    )
    Settings = SoftwareSettings

    @cached_property
    def extensions(self) -> dict[str, Kind]:
        settings: SoftwareSettings = self.settings  # type: ignore[assignment]
        found: dict[str, Kind] = {}
        for kind in NAMED_KINDS:
            for entry in read_list(list_path(getattr(settings.lists, kind), f"software_{kind}.txt")):
                found.setdefault(entry.lower().lstrip("."), kind)
        return found

    def check(self, message: Message) -> list[Finding]:
        if not message.attachments:  # the cheap test that ends the work for most mail
            return []
        settings: SoftwareSettings = self.settings  # type: ignore[assignment]
        files = files_of(message)
        places = Places(files)
        hits: list[Hit] = []
        for file in files:
            hits.extend(self.hits_in(file, places.children.get(file.path)))
        hits += self._uninspectable(message)
        findings = []
        for kind in ("executable", "script", "installer", "disk_image", "macro", "uninspectable"):
            chosen = [hit for hit in hits if hit.kind == kind]
            action: KindAction = getattr(settings.actions, kind)
            if chosen and action != "off":
                findings.append(self._finding(kind, chosen, action, places, message.direction))
        return findings

    def hits_in(self, file: File, listed: set[str] | None = None) -> list[Hit]:
        """What kinds of software one file is, and why; a file is reported once per kind.

        `listed`: the member names of a ZIP the archive walker already opened,
        so it is not opened again (42.zip holds thousands of them).
        """
        found: dict[Kind, str] = {}
        name = file.name.rstrip(" .")  # Windows drops trailing dots and spaces: "run.exe." runs
        extension = extension_of(name)
        if extension in self.extensions:
            found[self.extensions[extension]] = f"by name: .{extension}"
        ftype = file.true_type
        if ftype is not None:
            for kind, mimes in CONTENT_MIMES.items():
                if kind not in found and (
                    ftype.mime in mimes
                    or ftype.description.startswith(CONTENT_DESCRIPTIONS[kind])
                    or any(words in ftype.description for words in CONTENT_CONTAINS.get(kind, ()))
                ):
                    found[kind] = f"by content: {ftype.description[:80]}"
        names = None
        if file.data is not None and file.data.startswith(ZIP_MAGIC):
            names = listed if listed is not None else set(_zip_names(file.data) or [])
            for marker, kind, words in ZIP_PACKAGES:
                if kind not in found and marker in names:
                    found[kind] = f"by content: {words}"
        if file.data is not None and "macro" not in found and (file.data.startswith((OLE_MAGIC, ZIP_MAGIC))):
            try:
                macros = macros_in(file.data, name, names)
            except Exception as exc:  # olevba on hostile input: the document could not be checked
                log.info("macro check failed on %s: %s", file.path, exc)
                found["uninspectable"] = f"its macros could not be checked ({type(exc).__name__})"
            else:
                if macros:
                    found["macro"] = f"by content: {macros}"
        return [Hit(kind, file, why) for kind, why in found.items()]

    def _uninspectable(self, message: Message) -> list[Hit]:
        """Archives whose member list is encrypted (no name can be checked), and, when asked, encrypted members.

        Caps, corrupt and unsupported members are the inspection rule's: it
        holds them for IT with their reason, so they are not reported twice.
        """
        settings: SoftwareSettings = self.settings  # type: ignore[assignment]
        archives = {part.path for part in message.attachments if is_archive(part.true_type)}
        if not archives:
            return []
        encrypted = {m.path: m for m in message.archive_members if m.encrypted}
        hits: list[Hit] = []
        for problem in list(message.problems):
            if (
                problem.kind != "encrypted"
                or "/" not in problem.where
                or problem.where.split("/", 1)[0] not in archives
            ):
                continue
            if problem.where not in encrypted:
                hits.append(Hit("uninspectable", _problem_file(problem), _problem_words(problem)))
            elif settings.encrypted_members == "hold":
                hits.append(Hit("uninspectable", _problem_file(problem), "encrypted: its contents cannot be checked"))
        return hits

    def _finding(self, kind: Kind, hits: list[Hit], action: KindAction, places: Places, direction: str) -> Finding:
        settings: SoftwareSettings = self.settings  # type: ignore[assignment]
        names = list(dict.fromkeys(places.where(hit.file) for hit in hits))
        shown = ", ".join(names[:5]) + (f" and {len(names) - 5} more" if len(names) > 5 else "")
        evidence = [f"{places.where(hit.file)}: {hit.why}" for hit in hits[:MAX_EVIDENCE]]
        if kind == "uninspectable":
            reason = (
                f"The gateway could not fully inspect {shown}, so it could not check for software or viruses "
                f"({hits[0].why}); IT will look at it before it is delivered (rule {self.name})."
            )
        else:
            # Inbound, the words are for the recipient (ask the sender); from inside, the sender is the one to act.
            inbound = direction == "inbound"
            reason = (
                f"{shown} {'is' if len(names) == 1 else 'are'} {KIND_WORDS[kind]} ({hits[0].why}), and the agency's "
                f"e-mail policy does not allow software to {'arrive' if inbound else 'be sent'} by e-mail "
                f"(rule {self.name}, {kind}). {settings.advice if inbound else settings.sender_advice}"
            )
        if action == "monitor":
            return self.finding(reason, evidence, action="deliver")
        return self.finding(
            reason,
            evidence,
            action=action,
            reply="554 5.7.1" if action == "reject" else None,
            hold_queue="quarantine" if action == "hold" else None,
        )


class Places:
    """Which archive holds which file: member paths are "ARCHIVE PATH/NAME IN IT", and names may hold folders."""

    def __init__(self, files: list[File]) -> None:
        self.archives = {f.walked_as: f for f in files if f.data is not None and is_archive(f.true_type)}
        self.children: dict[str, set[str]] = {}  # an archive's path -> the names of its members, lower-case
        for file in files:
            parent = self.container(file.path) if file.depth else None
            if parent is not None:
                self.children.setdefault(parent.path, set()).add(file.path[len(parent.walked_as) + 1 :].lower())

    def container(self, path: str) -> File | None:
        """The archive a member path is in: the longest archive prefix."""
        parts = path.split("/")
        for end in range(len(parts) - 1, 0, -1):
            found = self.archives.get("/".join(parts[:end]))
            if found is not None:
                return found
        return None

    def where(self, file: File) -> str:
        """A file as a person reads it: "invoice.pdf", or "run.js in docs/inner.zip in outer.zip"."""
        words, path = [file.name], file.path
        while (parent := self.container(path)) is not None:
            words.append(parent.name)
            path = parent.path
        return " in ".join(words)


def _problem_file(problem: Problem) -> File:
    name = problem.where.rsplit("/", 1)[-1]
    return File(problem.where, name, 0, None, None, problem.where.count("/"))


def _problem_words(problem: Problem) -> str:
    detail = problem.detail
    return detail if len(detail) <= 200 else detail[:197] + "..."


def format_size(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024  # type: ignore[assignment]
    return f"{size} bytes"
