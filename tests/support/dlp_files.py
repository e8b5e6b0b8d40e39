"""Real files and messages for the confidential-data tests, each built by the library that makes such files.

xlsx by openpyxl, docx by python-docx, PDF by fpdf2 (encrypted by pypdf),
AES zips by pyzipper, 7z by py7zr, password-protected Office by
msoffcrypto-tool, S/MIME by `cryptography`, PGP by GnuPG.
"""

from __future__ import annotations

import atexit
import csv
import datetime
import functools
import io
import os
import shutil
import subprocess
import tempfile
import zipfile
from collections.abc import Mapping, Sequence
from email.message import EmailMessage
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from milter.intake.pipeline import Decision
    from milter.mail.message import Direction, Message
    from policies.base import Finding

Rows = Sequence[Sequence[object]]
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
PASSWORD = "Correct-Horse-42"
OLETOOLS = Path(__file__).resolve().parent.parent / "data" / "dlp" / "oletools"
CLAMAV = Path("/usr/share/clamav-testfiles")


def xlsx(sheets: Mapping[str, Rows]) -> bytes:
    import openpyxl

    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(list(row))
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()


def docx(paragraphs: Sequence[str], table: Rows | None = None) -> bytes:
    import docx as python_docx

    document = python_docx.Document()
    for paragraph in paragraphs:
        document.add_paragraph(paragraph)
    if table:
        grid = document.add_table(rows=len(table), cols=len(table[0]))
        for r, row in enumerate(table):
            for c, value in enumerate(row):
                grid.cell(r, c).text = str(value)
    out = io.BytesIO()
    document.save(out)
    return out.getvalue()


def pdf(lines: Sequence[str]) -> bytes:
    from fpdf import FPDF

    document = FPDF()
    document.add_page()
    document.set_font("Helvetica", size=10)
    for line in lines:
        document.multi_cell(0, 5, line.encode("latin-1", "replace").decode("latin-1"), new_x="LMARGIN", new_y="NEXT")
    return bytes(document.output())


def encrypted_pdf(data: bytes, user_password: str = PASSWORD, owner_password: str = "owner") -> bytes:
    """AES-256 PDF; an empty user password makes one that opens for anyone (owner password only)."""
    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(data)))
    writer.encrypt(user_password=user_password, owner_password=owner_password, algorithm="AES-256")
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()


def csv_bytes(rows: Rows) -> bytes:
    out = io.StringIO()
    csv.writer(out, lineterminator="\r\n").writerows(rows)
    return out.getvalue().encode()


def zip_plain(members: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def zip_aes(members: dict[str, bytes], password: str = PASSWORD) -> bytes:
    import pyzipper

    out = io.BytesIO()
    with pyzipper.AESZipFile(out, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES) as archive:
        archive.setpassword(password.encode())
        for name, data in members.items():
            archive.writestr(name, data)
    return out.getvalue()


def zip_zipcrypto(name: str, data: bytes, password: str = PASSWORD) -> bytes:
    from tests.test_archives import zipcrypto_zip  # traditional PKWARE encryption, APPNOTE 6.1

    return zipcrypto_zip(name, data, password.encode())


def seven_zip(members: dict[str, bytes], password: str | None = PASSWORD, header_encryption: bool = False) -> bytes:
    import py7zr

    out = io.BytesIO()
    with py7zr.SevenZipFile(out, "w", password=password, header_encryption=header_encryption) as archive:
        for name, data in members.items():
            archive.writestr(data, name)
    return out.getvalue()


def office_encrypted(data: bytes, password: str = PASSWORD) -> bytes:
    """Office's own password protection (ECMA-376 agile encryption), as Excel and Word apply it."""
    from msoffcrypto.format.ooxml import OOXMLFile

    out = io.BytesIO()
    OOXMLFile(io.BytesIO(data)).encrypt(password, out)
    return out.getvalue()


# -- messages -----------------------------------------------------------------------


def crlf(data: bytes) -> bytes:
    """SMTP line endings: smtplib sends bytes as they are."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def message(
    body: str = "Please see the attached file.\n",
    attachments: Sequence[tuple[str, bytes, str]] = (),
    sender: str = "sortiz@example.gov",
    to: str = "partner@county.org",
    subject: str = "Files",
) -> bytes:
    """A message with (filename, data, content type) attachments."""
    mail = EmailMessage()
    mail["From"], mail["To"], mail["Subject"] = sender, to, subject
    mail["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    mail["Message-ID"] = f"<{os.urandom(6).hex()}@example.gov>"
    mail.set_content(body)
    for filename, data, ctype in attachments:
        maintype, subtype = ctype.split("/", 1)
        mail.add_attachment(data, maintype=maintype, subtype=subtype, filename=filename)
    return crlf(mail.as_bytes())


def _headers(outer: MIMEBase, sender: str, to: str, subject: str) -> bytes:
    outer["From"], outer["To"], outer["Subject"] = sender, to, subject
    outer["Date"] = "Mon, 23 Nov 2026 10:00:00 +0000"
    outer["Message-ID"] = f"<{os.urandom(6).hex()}@example.gov>"
    return crlf(outer.as_bytes())


def certificate() -> tuple[object, object]:
    """A self-signed recipient certificate and its key, for S/MIME."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.EMAIL_ADDRESS, "partner@county.org")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    return cert, key


def smime_enveloped(
    inner: bytes, sender: str = "sortiz@example.gov", to: str = "partner@county.org", subject: str = "Payroll"
) -> bytes:
    """The inner MIME entity encrypted to the recipient (application/pkcs7-mime; smime-type=enveloped-data)."""
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

    cert, _ = certificate()
    smime = pkcs7.PKCS7EnvelopeBuilder().set_data(inner).add_recipient(cert).encrypt(Encoding.SMIME, [])  # type: ignore[arg-type]
    head = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        f"Message-ID: <{os.urandom(6).hex()}@example.gov>\r\n"
    ).encode()
    return head + crlf(smime)


def smime_signed(inner: bytes, sender: str = "sortiz@example.gov", to: str = "partner@county.org") -> bytes:
    """Signed only (multipart/signed): the content stays readable, so it is no encryption."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.serialization import Encoding, pkcs7

    cert, key = certificate()
    signed = (
        pkcs7.PKCS7SignatureBuilder()
        .set_data(inner)
        .add_signer(cert, key, hashes.SHA256())  # type: ignore[arg-type]
        .sign(Encoding.SMIME, [pkcs7.PKCS7Options.DetachedSignature])
    )
    head = (
        f"From: {sender}\r\nTo: {to}\r\nSubject: Signed\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
        f"Message-ID: <{os.urandom(6).hex()}@example.gov>\r\n"
    ).encode()
    return head + crlf(signed)


@functools.cache
def gnupg_home() -> str:
    """One GnuPG home for the run: its agent starts once and is stopped (and the folder removed) at exit."""
    home = tempfile.mkdtemp(prefix="aup-gpg-")

    def stop() -> None:
        subprocess.run(
            ["gpgconf", "--homedir", home, "--kill", "gpg-agent"], capture_output=True, timeout=30, check=False
        )
        shutil.rmtree(home, ignore_errors=True)

    atexit.register(stop)
    return home


def pgp_encrypt(data: bytes, password: str = PASSWORD) -> str:
    """ASCII-armoured OpenPGP ciphertext made by GnuPG (symmetric, AES-256)."""
    result = subprocess.run(
        [
            "gpg",
            "--homedir",
            gnupg_home(),
            "--batch",
            "--yes",
            "--quiet",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            password,
            "--symmetric",
            "--cipher-algo",
            "AES256",
            "--armor",
            "--output",
            "-",
        ],
        input=data,
        capture_output=True,
        check=True,
        timeout=30,
    )
    return result.stdout.decode()


def pgp_mime(inner: bytes, sender: str = "sortiz@example.gov", to: str = "partner@county.org") -> bytes:
    """RFC 3156 multipart/encrypted."""
    outer = MIMEMultipart("encrypted", protocol="application/pgp-encrypted")
    control = MIMEBase("application", "pgp-encrypted")
    control.set_payload("Version: 1\r\n")
    outer.attach(control)
    payload = MIMEBase("application", "octet-stream")
    payload.set_payload(pgp_encrypt(inner))
    payload.add_header("Content-Disposition", "inline", filename="encrypted.asc")
    outer.attach(payload)
    return _headers(outer, sender, to, "Payroll")


def inline_pgp(
    before: str, inner: bytes, after: str = "", sender: str = "sortiz@example.gov", to: str = "partner@county.org"
) -> bytes:
    body = f"{before}\n\n{pgp_encrypt(inner)}\n{after}\n"
    return _headers(MIMEText(body), sender, to, "Payroll")


# -- running the real Pipeline ------------------------------------------------------


class Checker:
    """The real Pipeline from a real config file, run on raw messages in a given direction."""

    def __init__(self, folder: Path, policies: dict[str, object] | None = None) -> None:
        import asyncio
        from concurrent.futures import ThreadPoolExecutor

        from milter.config import load_config
        from milter.intake.pipeline import Pipeline
        from milter.kernel.directory import load_directory
        from tests.conftest import write_config

        extra = {
            "policies": {
                "size": {"max_bytes": {"outbound": "64MiB", "internal": "64MiB", "inbound": "64MiB"}},
                **(policies or {}),
            }
        }
        path = write_config(folder, f"sqlite:///{folder / 'aup.db'}", f"maildir:{folder / 'out'}", extra)
        self.config = load_config(path)
        self.executor = ThreadPoolExecutor(2)
        self.pipeline = Pipeline(self.config, load_directory(self.config.directory_path), executor=self.executor)
        self._run = asyncio.run

    def __call__(
        self, raw: bytes, direction: Direction = "outbound", rcpt: tuple[str, ...] = ("partner@county.org",)
    ) -> tuple[Decision, Message]:
        from milter.mail.message import Envelope, Message, normalise_line_endings

        data, _ = normalise_line_endings(raw)
        msg = Message(
            Envelope("sortiz@example.gov", rcpt, client_ip="127.0.0.2", trusted=True),
            data,
            direction,
            self.config.settings.limits,
        )
        return self._run(self.pipeline.run(msg)), msg

    def close(self) -> None:
        self.executor.shutdown()


def confidential_findings(decision: Decision) -> list[Finding]:
    return [f for f in decision.findings if f.policy == "confidential"]


# -- large files --------------------------------------------------------------------


def large_csv(size: int, seed: int = 1) -> bytes:
    """A staff export of about `size` bytes: name, formatted SSN, department, phone on every row."""
    import random

    rng = random.Random(seed)
    rows = ["Name,SSN,Department,Phone"]
    total = len(rows[0]) + 2
    while total < size:
        ssn = f"{rng.randrange(1, 666):03d}-{rng.randrange(1, 100):02d}-{rng.randrange(1, 10000):04d}"
        row = f"Employee {rng.randrange(10**6)},{ssn},Public Works,860-555-{rng.randrange(10000):04d}"
        rows.append(row)
        total += len(row) + 2
    return ("\r\n".join(rows) + "\r\n").encode()


def large_xlsx(rows: int, seed: int = 2) -> bytes:
    """A payroll workbook of `rows` rows: name, employee number, bare SSN, department, salary (openpyxl, write-only)."""
    import random

    import openpyxl

    rng = random.Random(seed)
    book = openpyxl.Workbook(write_only=True)
    sheet = book.create_sheet("Payroll")
    sheet.append(["Name", "Employee Number", "SSN", "Department", "Salary"])
    for number in range(rows):
        ssn = f"{rng.randrange(1, 666):03d}{rng.randrange(1, 100):02d}{rng.randrange(1, 10000):04d}"
        sheet.append([f"Employee {number}", 100000 + number, ssn, "Public Works", 40000 + rng.randrange(60000)])
    out = io.BytesIO()
    book.save(out)
    return out.getvalue()
