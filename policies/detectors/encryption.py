"""What counts as encryption under the agencies' policy, and what does not.

The policy: "Examples of acceptable encryption techniques include password
protected ZIP files ... Password protection in Word documents, Excel
spreadsheets and PDFs is readily broken and therefore is not acceptable
protection."

Acceptable: S/MIME enveloped data, PGP/MIME, inline PGP armour, a ZIP whose
members are encrypted (AES, or traditional ZipCrypto unless the config asks
for AES), a 7z with encrypted content or headers. Not acceptable:
password-protected Word, Excel and PowerPoint (OOXML inside an encrypted
compound file, or legacy Office with its encryption flag) and PDFs that need
a password to open.
"""

from __future__ import annotations

import io
import logging
import struct
import zipfile
from dataclasses import dataclass
from typing import Literal

import olefile

from milter.mail.containers import SEVEN_ZIP_MIMES, ZIP_MIMES
from milter.mail.filetypes import FileType
from milter.mail.message import Message

Kind = Literal["smime", "pgp-mime", "pgp-inline", "zip-aes", "zip-zipcrypto", "7z", "office-password", "pdf-password"]

OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
SMIME_TYPES = ("application/pkcs7-mime", "application/x-pkcs7-mime")
ENVELOPED = ("enveloped-data", "authenveloped-data")
PGP_BEGIN = "-----BEGIN PGP MESSAGE-----"
ZIP_AES_METHOD = 99
WORD_ENCRYPTED = 0x0100  # FIB base, fEncrypted (MS-DOC 2.5.2)
EXCEL_FILEPASS, EXCEL_EOF = 0x002F, 0x000A  # BIFF records (MS-XLS 2.4.117, 2.4.103)
PPT_ENCRYPTED_TOKEN = 0xF3D1C4DF  # CurrentUserAtom.headerToken of an encrypted presentation (MS-PPT 2.3.2)
MAX_BIFF_RECORDS = 5000  # FILEPASS sits right after BOF; stop looking well before the sheets
OFFICE_NAMES = {
    "doc": "Word document",
    "docx": "Word document",
    "docm": "Word document",
    "dot": "Word document",
    "dotx": "Word document",
    "xls": "Excel spreadsheet",
    "xlsx": "Excel spreadsheet",
    "xlsm": "Excel spreadsheet",
    "xlsb": "Excel spreadsheet",
    "ppt": "PowerPoint presentation",
    "pptx": "PowerPoint presentation",
    "pptm": "PowerPoint presentation",
    "pps": "PowerPoint presentation",
}


@dataclass(frozen=True)
class Protection:
    where: str  # a part path, an archive member path, or "message"
    name: str  # the file name, or "the message"
    kind: Kind
    description: str  # "an AES-encrypted ZIP", "a password-protected Excel spreadsheet"

    @property
    def acceptable(self) -> bool:
        return self.kind not in ("office-password", "pdf-password")


def protections(message: Message) -> list[Protection]:
    """Every encryption in the message: of the whole message, of attachments, of files inside archives."""
    found = _message_encryption(message)
    for part in message.attachments:
        if part.content_type in SMIME_TYPES:
            continue  # seen above as whole-message encryption
        protection = file_protection(part.payload, part.true_type, part.path, part.label)
        if protection:
            found.append(protection)
    for member in message.archive_members:
        if member.data is not None and member.true_type is not None and not member.encrypted:
            protection = file_protection(member.data, member.true_type, member.path, member.name)
            if protection:
                found.append(protection)
    return found


def _message_encryption(message: Message) -> list[Protection]:
    found: list[Protection] = []
    for node in message.tree.walk():
        ctype = node.get_content_type()
        if ctype in SMIME_TYPES and _smime_enveloped(node.get_param("smime-type"), node.get_filename()):
            found.append(Protection("message", "the message", "smime", "S/MIME encryption"))
        elif (
            ctype == "multipart/encrypted"
            and str(node.get_param("protocol", "")).lower() == "application/pgp-encrypted"
        ):
            found.append(Protection("message", "the message", "pgp-mime", "PGP/MIME encryption"))
    for body in message.text_bodies:
        if PGP_BEGIN in body.text:
            found.append(Protection(body.path, "the message body", "pgp-inline", "inline PGP encryption"))
    return found


def _smime_enveloped(smime_type: object, filename: str | None) -> bool:
    if isinstance(smime_type, str):
        return smime_type.lower() in ENVELOPED
    return bool(filename and filename.lower().endswith(".p7m"))  # old clients send no smime-type


def file_protection(data: bytes, ftype: FileType, where: str, name: str) -> Protection | None:
    """How one file is protected, or None when it is not."""
    try:
        if ftype.mime in ZIP_MIMES:
            return _zip(data, where, name)
        if ftype.mime in SEVEN_ZIP_MIMES:
            return _seven_zip(data, where, name)
        if data.startswith(OLE_MAGIC):
            return _office(data, ftype, where, name)
        if ftype.mime == "application/pdf" and b"/Encrypt" in data:
            return _pdf(data, where, name)
    except Exception:  # a file too broken to say: the content rules and inspection deal with it
        return None
    return None


def _zip(data: bytes, where: str, name: str) -> Protection | None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        encrypted = [info for info in archive.infolist() if not info.is_dir() and info.flag_bits & 0x1]
    if not encrypted:
        return None
    if all(info.compress_type == ZIP_AES_METHOD for info in encrypted):
        return Protection(where, name, "zip-aes", "an AES-encrypted ZIP")
    return Protection(where, name, "zip-zipcrypto", "a ZIP with traditional (ZipCrypto) encryption")


def _seven_zip(data: bytes, where: str, name: str) -> Protection | None:
    import py7zr  # heavy; only for 7z files

    try:
        with py7zr.SevenZipFile(io.BytesIO(data)) as archive:
            encrypted = archive.needs_password()
    except py7zr.exceptions.PasswordRequired:  # even the member list is encrypted
        encrypted = True
    return Protection(where, name, "7z", "an encrypted 7z archive") if encrypted else None


def _office(data: bytes, ftype: FileType, where: str, name: str) -> Protection | None:
    with olefile.OleFileIO(data) as ole:
        if ole.exists("EncryptionInfo") and ole.exists("EncryptedPackage"):
            kind = OFFICE_NAMES.get(ftype.extension, "Office document")  # the package is sealed: only the name tells
        elif ole.exists("WordDocument") and _word_encrypted(ole):
            kind = "Word document"
        elif (ole.exists("Workbook") or ole.exists("Book")) and _excel_encrypted(ole):
            kind = "Excel spreadsheet"
        elif ole.exists("PowerPoint Document") and _powerpoint_encrypted(ole):
            kind = "PowerPoint presentation"
        else:
            return None
    return Protection(where, name, "office-password", f"a password-protected {kind}")


def _word_encrypted(ole: olefile.OleFileIO) -> bool:
    fib = ole.openstream("WordDocument").read(12)
    return len(fib) == 12 and bool(struct.unpack_from("<H", fib, 10)[0] & WORD_ENCRYPTED)


def _excel_encrypted(ole: olefile.OleFileIO) -> bool:
    stream = ole.openstream("Workbook" if ole.exists("Workbook") else "Book")
    for _ in range(MAX_BIFF_RECORDS):
        header = stream.read(4)
        if len(header) < 4:
            return False
        record, length = struct.unpack("<HH", header)
        if record == EXCEL_FILEPASS:
            return True
        if record == EXCEL_EOF:
            return False  # the end of the workbook globals, where FILEPASS would have been
        stream.seek(length, io.SEEK_CUR)
    return False


def _powerpoint_encrypted(ole: olefile.OleFileIO) -> bool:
    if ole.exists("EncryptedSummary"):
        return True
    if not ole.exists("Current User"):
        return False
    atom = ole.openstream("Current User").read(16)
    return len(atom) == 16 and struct.unpack_from("<I", atom, 12)[0] == PPT_ENCRYPTED_TOKEN


def _pdf(data: bytes, where: str, name: str) -> Protection | None:
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)
    reader = PdfReader(io.BytesIO(data))
    if not reader.is_encrypted:
        return None
    try:
        opened = bool(reader.decrypt(""))  # an owner password alone leaves it open to anyone: its text is read
    except Exception:
        opened = False
    return None if opened else Protection(where, name, "pdf-password", "a password-protected PDF")
