"""Text out of attachments: txt, csv, html, docx, xlsx, pdf; within the caps.

Each result is a list of located segments ("sheet Payroll", "page 3") so a
rule can say where it found something, and a list of problems (encrypted,
corrupt, over a cap) so nothing unreadable passes silently. The format comes
from the content (libmagic); the file name only breaks a tie when the content
says nothing more than "text" or "data".
"""

from __future__ import annotations

import codecs
import io
import logging
import time
import zipfile
from dataclasses import dataclass, field
from typing import IO, Literal

import lxml.html
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import iterparse

from milter.mail.filetypes import FileType
from milter.mail.settings import LimitSettings

DOCX_MIMES = frozenset(
    {
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        "application/vnd.openxmlformats-officedocument.wordprocessingml.template",
        "application/vnd.ms-word.document.macroEnabled.12",
        "application/vnd.ms-word.template.macroEnabled.12",
    }
)
XLSX_MIMES = frozenset(
    {
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "application/vnd.openxmlformats-officedocument.spreadsheetml.template",
        "application/vnd.ms-excel.sheet.macroEnabled.12",
        "application/vnd.ms-excel.template.macroEnabled.12",
    }
)
PDF = "application/pdf"
GENERIC_MIMES = frozenset({"text/plain", "application/octet-stream"})  # content that names no format
TEXT_MIMES = frozenset({"application/csv", "application/json", "application/xml"})
HTML_EXTENSIONS = frozenset({"html", "htm", "xhtml"})
TEXT_EXTENSIONS = frozenset({"txt", "csv", "tsv", "log", "md", "text"})
OOXML_PART_FACTOR = 8  # an xlsx part openpyxl reads whole may be 8 x extract_chars bytes of XML ...
OOXML_PART_FLOOR = 1024 * 1024  # ... and always 1 MiB (a plain workbook's theme is 10 KB)
_W = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
_DOCX_PARTS = ("document", "header", "footer", "footnotes", "endnotes", "comments")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)

Kind = Literal["text", "html", "docx", "xlsx", "pdf", "encrypted-office"]


@dataclass
class Result:
    segments: list[tuple[str, str]] = field(default_factory=list)
    problems: list[tuple[str, str]] = field(default_factory=list)  # (kind, detail)

    @property
    def chars(self) -> int:
        return sum(len(text) for _, text in self.segments)


class _Clock:
    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def over(self) -> bool:
        return time.monotonic() > self.deadline


def kind_of(ftype: FileType) -> Kind | None:
    """Which extractor reads this file, by content first."""
    mime, ext = ftype.mime, ftype.extension
    if mime == "text/html" or (ext in HTML_EXTENSIONS and mime in GENERIC_MIMES):
        return "html"
    if mime.startswith("text/") or mime in TEXT_MIMES or (ext in TEXT_EXTENSIONS and mime in GENERIC_MIMES):
        return "text"
    if mime in DOCX_MIMES:
        return "docx"
    if mime in XLSX_MIMES:
        return "xlsx"
    if mime == PDF:
        return "pdf"
    if ftype.description.startswith("CDFV2 Encrypted"):  # password-protected Word, Excel or PowerPoint
        return "encrypted-office"
    return None


def html_to_text(html: str) -> tuple[str, bool]:
    """The text a reader sees, one line per block, and whether all of it was read.

    libxml2 (through lxml) parses 25 MB of HTML in about a second, where
    pure-Python parsers take half a minute. Past 2048 levels of nesting it
    stops reading: then the text is incomplete, and the caller says so.
    """
    if not html.strip():
        return "", True
    # A parser per call: lxml parsers are not to be shared between threads.
    parser = lxml.html.HTMLParser(encoding="utf-8", remove_comments=True, remove_pis=True, huge_tree=True)
    root = lxml.html.document_fromstring(html.encode("utf-8", "surrogateescape"), parser=parser)
    for node in root.xpath("//script|//style|//head"):
        node.drop_tree()
    lines = (line.strip() for line in "\n".join(root.itertext()).splitlines())
    complete = not any(entry.type_name == "ERR_RESOURCE_LIMIT" for entry in parser.error_log)
    return "\n".join(line for line in lines if line), complete


def decode(data: bytes) -> str:
    """Text of unknown encoding: a BOM, UTF-16 without one, UTF-8, else Windows-1252."""
    for bom, codec in _BOMS:
        if data.startswith(bom):
            return data[len(bom) :].decode(codec, errors="replace")
    utf16 = _utf16_without_bom(data[:4096])
    if utf16:
        return data.decode(utf16, errors="replace")
    try:
        # Incremental, so a multi-byte character cut at the end of a capped read is not an error.
        return codecs.getincrementaldecoder("utf-8")().decode(data, final=False)
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


def _utf16_without_bom(sample: bytes) -> str | None:
    # ASCII-range UTF-16 has a NUL in every other byte: Windows "Unicode" text and Excel exports.
    half = len(sample) // 2
    if half < 2:
        return None
    even, odd = sample[0::2].count(0), sample[1::2].count(0)
    if odd > half * 0.4 and even < half * 0.05:
        return "utf-16-le"
    if even > half * 0.4 and odd < half * 0.05:
        return "utf-16-be"
    return None


def extract(data: bytes, ftype: FileType, limits: LimitSettings, max_chars: int | None = None) -> Result:
    """The text of one file, at most max_chars (default extract_chars) characters and extract_time seconds."""
    chars = limits.extract_chars if max_chars is None else min(max_chars, limits.extract_chars)
    clock = _Clock(limits.extract_time)
    result = Result()
    kind = kind_of(ftype)
    try:
        if kind == "html":
            _html(data, chars, result)
        elif kind == "text":
            _text(data, chars, result)
        elif kind == "docx":
            _docx(data, chars, clock, result)
        elif kind == "xlsx":
            _xlsx(data, chars, limits, clock, result)
        elif kind == "pdf":
            _pdf(data, chars, clock, result)
        elif kind == "encrypted-office":
            result.problems.append(("encrypted", "a password-protected Office document; its text cannot be read"))
    except DefusedXmlException as exc:
        result.problems.append(
            ("corrupt", f"the XML declares entities or a DTD ({type(exc).__name__}), as entity bombs do; not read")
        )
    except Exception as exc:  # parsers of hostile files raise anything; that is a finding, not a crash
        result.problems.append(("corrupt", f"text cannot be extracted ({type(exc).__name__})"))
    return result


def _cap(result: Result, chars: int) -> None:
    result.problems.append(("cap", f"more than {chars} characters of text; the rest was not read"))


def _text(data: bytes, chars: int, result: Result) -> None:
    window = data[: chars * 4]  # 4 bytes is the longest a character takes
    text = decode(window)
    result.segments.append(("", text[:chars]))
    if len(text) > chars or len(data) > len(window):
        _cap(result, chars)


def _html(data: bytes, chars: int, result: Result) -> None:
    window = data[: chars * 4]
    text, complete = html_to_text(decode(window))
    result.segments.append(("", text[:chars]))
    if not complete:
        result.problems.append(("cap", "HTML nested too deeply to read to the end; the rest was not read"))
    elif len(text) > chars or len(data) > len(window):
        _cap(result, chars)


def _docx(data: bytes, chars: int, clock: _Clock, result: Result) -> None:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        names = [
            name
            for name in archive.namelist()
            if name.startswith("word/") and name.endswith(".xml") and name.rsplit("/", 1)[-1].startswith(_DOCX_PARTS)
        ]
        budget = chars
        for name in sorted(names, key=lambda n: (n != "word/document.xml", n)):
            with archive.open(name) as handle:
                paragraphs, budget, stopped = _docx_paragraphs(handle, budget, clock)
            location = "" if name == "word/document.xml" else name.removeprefix("word/").removesuffix(".xml")
            result.segments.append((location, "\n".join(paragraphs)))
            if stopped:
                result.problems.append(
                    ("cap", f"{location or 'document'}: {_why_stopped(clock, chars)}; the rest was not read")
                )
                return


def _why_stopped(clock: _Clock, chars: int) -> str:
    return "text extraction ran out of time" if clock.over() else f"more than {chars} characters of text"


def _docx_paragraphs(handle: IO[bytes], budget: int, clock: _Clock) -> tuple[list[str], int, bool]:
    """Paragraph texts, the budget left, and whether it stopped early.

    Streamed: each element is dropped once read, so memory stays small
    however large the XML.
    """
    paragraphs: list[str] = []
    runs: list[str] = []
    stack = []
    for event, element in iterparse(handle, events=("start", "end")):
        if event == "start":
            stack.append(element)
            continue
        stack.pop()
        if element.tag == f"{_W}t":
            runs.append(element.text or "")
        elif element.tag == f"{_W}p":
            text = "".join(runs)
            runs = []
            if text:
                paragraphs.append(text[:budget])
                budget -= len(text)
        if stack:
            stack[-1].remove(element)  # a finished element is its parent's last child
        if budget < 0 or clock.over():
            return paragraphs, budget, True
    return paragraphs, budget, False


def _xlsx(data: bytes, chars: int, limits: LimitSettings, clock: _Clock, result: Result) -> None:
    import openpyxl  # slow to import; only spreadsheets need it

    # openpyxl streams worksheets in read-only mode but reads the other parts
    # (shared strings, styles) whole: refuse a workbook whose parts would not fit.
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        part_limit = max(OOXML_PART_FACTOR * limits.extract_chars, OOXML_PART_FLOOR)
        for info in archive.infolist():
            streamed = info.filename.startswith("xl/worksheets/")
            if info.file_size > (limits.archive_expanded if streamed else part_limit):
                result.problems.append(
                    ("cap", f"{info.filename} unpacks to {info.file_size} bytes, over the inspection limit; not read")
                )
                return
    budget = chars
    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True, data_only=True)
    try:
        for sheet in book.worksheets:
            lines = []
            for row in sheet.iter_rows(values_only=True):
                line = "\t".join("" if v is None else str(v) for v in row[: budget + 1]).rstrip("\t")[: budget + 1]
                if line:
                    lines.append(line[:budget])
                    budget -= len(line) + 1
                if budget < 0 or clock.over():
                    result.segments.append((f"sheet {sheet.title}", "\n".join(lines)))
                    result.problems.append(
                        ("cap", f"sheet {sheet.title}: {_why_stopped(clock, chars)}; the rest was not read")
                    )
                    return
            result.segments.append((f"sheet {sheet.title}", "\n".join(lines)))
    finally:
        book.close()


def _pdf(data: bytes, chars: int, clock: _Clock, result: Result) -> None:
    from pypdf import PdfReader

    logging.getLogger("pypdf").setLevel(logging.ERROR)  # hostile PDFs make pypdf chatty
    reader = PdfReader(io.BytesIO(data))
    if reader.is_encrypted:
        try:
            opened = bool(reader.decrypt(""))  # an owner password alone leaves the text readable
        except Exception:  # an algorithm pypdf cannot undo is as closed to us as a password
            opened = False
        if not opened:
            result.problems.append(("encrypted", "an encrypted PDF; its text cannot be read"))
            return
    budget = chars
    pages = reader.pages
    for number, page in enumerate(pages, start=1):
        text = page.extract_text() or ""
        result.segments.append((f"page {number}", text[:budget]))
        budget -= len(text)
        if budget < 0 or (clock.over() and number < len(pages)):
            result.problems.append(
                ("cap", f"page {number} of {len(pages)}: {_why_stopped(clock, chars)}; the rest was not read")
            )
            return
