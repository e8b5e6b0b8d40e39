"""Text out of attachments: txt, csv, html, docx, xlsx, pdf; within the caps.

Each result is a list of located segments ("sheet Payroll", "page 3") so a
rule can say where it found something, and a list of problems (encrypted,
corrupt, over a cap) so nothing unreadable passes silently.
"""

from __future__ import annotations

import io
import time
import warnings
import zipfile
from dataclasses import dataclass, field

from bs4 import BeautifulSoup, XMLParsedAsHTMLWarning
from defusedxml import ElementTree

from milter.filetypes import FileType
from milter.settings import LimitSettings

DOCX = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
PDF = "application/pdf"
HTML_EXTENSIONS = {"html", "htm"}
TEXT_EXTENSIONS = {"txt", "csv", "tsv", "log", "md"}
_W_NS = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"

warnings.filterwarnings("ignore", category=XMLParsedAsHTMLWarning)


@dataclass
class Result:
    segments: list[tuple[str, str]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, detail)


def html_to_text(html: str) -> str:
    soup = BeautifulSoup(html, "html.parser")
    for node in soup(["script", "style", "head"]):
        node.decompose()
    lines = (line.strip() for line in soup.get_text("\n").splitlines())
    return "\n".join(line for line in lines if line)


def decode(data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def extract(data: bytes, ftype: FileType, filename: str | None, limits: LimitSettings) -> Result:
    result = Result()
    mime, ext = ftype.mime, ftype.extension
    try:
        if mime == "text/html" or ext in HTML_EXTENSIONS:
            result.segments.append(("", html_to_text(decode(data[: limits.extract_chars * 4]))[: limits.extract_chars]))
        elif mime.startswith("text/") or ext in TEXT_EXTENSIONS and mime in ("text/plain", "application/csv", "application/octet-stream"):
            result.segments.append(("", decode(data[: limits.extract_chars * 4])[: limits.extract_chars]))
        elif mime == DOCX:
            _docx(data, limits, result)
        elif mime == XLSX:
            _xlsx(data, limits, result)
        elif mime == PDF:
            _pdf(data, limits, result)
        elif "CDFV2 Encrypted" in ftype.description:
            result.problems.append(("encrypted", "a password-protected Office document; its text cannot be read"))
    except Exception as exc:  # parsers of hostile files raise anything; that is a finding, not a crash
        result.problems.append(("corrupt", f"text cannot be extracted ({type(exc).__name__})"))
    return result


def _docx(data: bytes, limits: LimitSettings, result: Result) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = [n for n in archive.namelist() if n.startswith("word/") and n.endswith(".xml")
                 and n.split("/")[-1].startswith(("document", "header", "footer", "footnotes", "endnotes", "comments"))]
        budget = limits.extract_chars
        for name in sorted(names, key=lambda n: (not n.endswith("document.xml"), n)):
            info = archive.getinfo(name)
            if info.file_size > limits.archive_expanded:
                result.problems.append(("cap", f"{name} is larger than the inspection limit"))
                continue
            root = ElementTree.fromstring(archive.read(name))
            paragraphs = ["".join(t.text or "" for t in p.iter(f"{_W_NS}t")) for p in root.iter(f"{_W_NS}p")]
            text = "\n".join(p for p in paragraphs if p)[:budget]
            budget -= len(text)
            location = "" if name == "word/document.xml" else name.removeprefix("word/").removesuffix(".xml")
            result.segments.append((location, text))
            if budget <= 0:
                result.problems.append(("cap", f"more than {limits.extract_chars} characters; the rest was not read"))
                return


def _xlsx(data: bytes, limits: LimitSettings, result: Result) -> None:
    import openpyxl  # slow to import; only spreadsheets need it

    started = time.monotonic()
    budget = limits.extract_chars
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        for sheet in book.worksheets:
            lines = []
            for row in sheet.iter_rows(values_only=True):
                line = "\t".join("" if v is None else str(v) for v in row).rstrip("\t")
                if line:
                    lines.append(line)
                    budget -= len(line) + 1
                if budget <= 0 or time.monotonic() - started > limits.extract_time:
                    result.segments.append((f"sheet {sheet.title}", "\n".join(lines)))
                    result.problems.append(("cap", f"sheet {sheet.title}: over the text or time limit; the rest was not read"))
                    return
            result.segments.append((f"sheet {sheet.title}", "\n".join(lines)))
    finally:
        book.close()


def _pdf(data: bytes, limits: LimitSettings, result: Result) -> None:
    import logging

    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # hostile PDFs make pypdf chatty
    started = time.monotonic()
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted and not reader.decrypt(""):
        result.problems.append(("encrypted", "an encrypted PDF; its text cannot be read"))
        return
    budget = limits.extract_chars
    for number, page in enumerate(reader.pages, start=1):
        text = (page.extract_text() or "")[:budget]
        budget -= len(text)
        result.segments.append((f"page {number}", text))
        if budget <= 0 or time.monotonic() - started > limits.extract_time:
            result.problems.append(("cap", f"stopped at page {number} of {len(reader.pages)}: over the text or time limit"))
            return
