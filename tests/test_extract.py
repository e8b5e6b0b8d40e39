"""Text out of attachments: docx, xlsx, pdf, html, csv, txt, with locations, encryption, caps and hostile XML."""

from __future__ import annotations

import io
import time
import tracemalloc
import zipfile
from pathlib import Path
from typing import Any

import docx
import openpyxl
import pytest
from msoffcrypto.format.ooxml import OOXMLFile
from pypdf import PdfReader, PdfWriter

from milter.mail import extract
from milter.mail.extract import Result
from milter.mail.filetypes import true_type
from milter.mail.settings import LimitSettings
from tests.test_archives import mail_with, zip_of

CLAM_PDF = Path("/usr/share/clamav-testfiles/clam.pdf")  # Debian's clamav-testfiles
CLAM_EXE = Path("/usr/share/clamav-testfiles/clam.exe")
W_NS = "http://schemas.openxmlformats.org/wordprocessingml/2006/main"


def run(data: bytes, name: str, **limits: Any) -> Result:
    return extract.extract(data, true_type(data, name), LimitSettings(**limits))


def a_docx(paragraphs: list[str], header: str | None = None, table: list[str] | None = None) -> bytes:
    document = docx.Document()
    for text in paragraphs:
        document.add_paragraph(text)
    if table:
        cells = document.add_table(rows=1, cols=len(table)).rows[0].cells
        for cell, text in zip(cells, table, strict=True):
            cell.text = text
    if header:
        document.sections[0].header.paragraphs[0].text = header
    saved = io.BytesIO()
    document.save(saved)
    return saved.getvalue()


def an_xlsx(sheets: dict[str, list[list[Any]]]) -> bytes:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    saved = io.BytesIO()
    book.save(saved)
    return saved.getvalue()


def a_pdf(pages: list[str]) -> bytes:
    """A minimal PDF (ISO 32000-1, section 7.5) with one line of Helvetica text per page."""
    count = len(pages)
    kids = " ".join(f"{4 + 2 * index} 0 R" for index in range(count))
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {count} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    ]
    for index, text in enumerate(pages):
        escaped = text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")
        stream = f"BT /F1 12 Tf 72 720 Td ({escaped}) Tj ET".encode("latin-1")
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
            f"/Contents {5 + 2 * index} 0 R >>".encode()
        )
        objects.append(b"<< /Length %d >>\nstream\n%s\nendstream" % (len(stream), stream))
    out, offsets = bytearray(b"%PDF-1.4\n"), []
    for number, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += b"%d 0 obj\n%s\nendobj\n" % (number, body)
    xref = len(out)
    out += b"xref\n0 %d\n0000000000 65535 f \n" % (len(objects) + 1)
    out += b"".join(b"%010d 00000 n \n" % offset for offset in offsets)
    out += b"trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n" % (len(objects) + 1, xref)
    return bytes(out)


def replace_member(data: bytes, name: str, content: bytes) -> bytes:
    """The same zip with one member's content replaced, members kept in order (libmagic reads the order)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    return zip_of(
        [(info.filename, content if info.filename == name else source.read(info)) for info in source.infolist()]
    )


def billion_laughs(root: str) -> bytes:
    entities = '<!ENTITY lol0 "lol">' + "".join(
        f'<!ENTITY lol{level} "{f"&lol{level - 1};" * 10}">' for level in range(1, 10)
    )
    return f'<?xml version="1.0"?><!DOCTYPE lolz [{entities}]>{root.replace("LAUGH", "&lol9;")}'.encode()


def measured(compute: Any) -> tuple[Any, float, int]:
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = compute()
        return result, time.monotonic() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- formats and locations ------------------------------------------------------------


def test_docx_text_comes_from_the_body_tables_and_headers_with_locations():
    data = a_docx(
        ["First paragraph.", "Second paragraph."], header="Confidential header", table=["cell one", "cell two"]
    )
    result = run(data, "memo.docx")
    assert result.problems == []
    assert result.segments == [
        ("", "First paragraph.\nSecond paragraph.\ncell one\ncell two"),
        ("header1", "Confidential header"),
    ]


def test_xlsx_text_is_located_by_sheet():
    data = an_xlsx({"Payroll": [["Name", "SSN"], ["Ana", "123-45-6789"]], "Notes": [["all paid", None, 42]]})
    result = run(data, "book.xlsx")
    assert result.problems == []
    assert result.segments == [("sheet Payroll", "Name\tSSN\nAna\t123-45-6789"), ("sheet Notes", "all paid\t\t42")]


def test_pdf_text_is_located_by_page():
    result = run(a_pdf(["the first page", "the (second) page", "the third page"]), "doc.pdf")
    assert result.problems == []
    assert [(where, text.strip()) for where, text in result.segments] == [
        ("page 1", "the first page"),
        ("page 2", "the (second) page"),
        ("page 3", "the third page"),
    ]


def test_debians_clam_pdf_is_read():
    result = run(CLAM_PDF.read_bytes(), "clam.pdf")
    assert result.problems == []
    assert "ClamAV test" in result.segments[0][1]


def test_html_attachments_lose_markup_scripts_and_styles():
    html = b"<html><head><title>t</title><style>p{}</style></head><body><p>Visible <b>words</b></p><script>hidden()</script></body></html>"
    assert run(html, "page.html").segments == [("", "Visible\nwords")]


def test_html_nested_too_deeply_to_read_to_the_end_is_a_cap_problem():
    result = run(b"<html><body>" + b"<div>" * 3000 + b"deep words" + b"</div>" * 3000 + b"</body></html>", "deep.html")
    assert result.problems == [("cap", "HTML nested too deeply to read to the end; the rest was not read")]


def test_csv_and_txt_are_read_as_text():
    assert run(b"name,ssn\r\nAna,123-45-6789\r\n", "staff.csv").segments == [("", "name,ssn\r\nAna,123-45-6789\r\n")]
    assert run("Grüße aus Köln\n".encode(), "note.txt").segments == [("", "Grüße aus Köln\n")]
    assert run("Grüße aus Köln\n".encode("cp1252"), "old.txt").segments == [("", "Grüße aus Köln\n")]


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be", "utf-8-sig"])
def test_unicode_text_exports_are_decoded_with_or_without_a_byte_order_mark(encoding):
    # Excel's "Unicode text" and Notepad's "Unicode" are UTF-16; an SSN in them must still read as one.
    data = "name\tssn\r\nAna\t123-45-6789\r\n".encode(encoding)
    assert run(data, "export.txt").segments == [("", "name\tssn\r\nAna\t123-45-6789\r\n")]


def test_the_content_decides_the_format_not_the_name():
    data = a_docx(["hidden in a docx"])
    for name in ("notes.txt", "page.html", "noextension"):
        assert run(data, name).segments == [("", "hidden in a docx")], name


def test_a_binary_file_named_txt_is_not_mistaken_for_a_docx_or_html():
    assert extract.kind_of(true_type(b"\x00\x01\x02\x03" * 100, "data.txt")) == "text"
    assert extract.kind_of(true_type(b"\x00\x01\x02\x03" * 100, "page.html")) == "html"  # "data": the name decides
    assert extract.kind_of(true_type(CLAM_EXE.read_bytes(), "page.html")) is None  # a PE is a PE, whatever its name


def test_attachments_inside_archives_have_their_text_extracted_with_their_path():
    bundle = zip_of([("report.docx", a_docx(["Quarterly payroll"])), ("tool.exe", b"MZ" + b"\0" * 64)])
    message = mail_with(("files.zip", bundle))
    assert [(t.path, t.filename, t.text) for t in message.attachment_texts] == [
        ("2/files.zip/report.docx", "report.docx", "Quarterly payroll")
    ]


# -- encryption -----------------------------------------------------------------------


def encrypted_pdf(user_password: str, algorithm: str) -> bytes:
    writer = PdfWriter(clone_from=PdfReader(io.BytesIO(a_pdf(["secret page"]))))
    writer.encrypt(user_password=user_password, owner_password="owner", algorithm=algorithm)
    saved = io.BytesIO()
    writer.write(saved)
    return saved.getvalue()


@pytest.mark.parametrize("algorithm", ["RC4-128", "AES-256"])
def test_a_pdf_that_needs_a_password_is_an_encrypted_problem(algorithm):
    result = run(encrypted_pdf("open sesame", algorithm), "locked.pdf")
    assert result.segments == []
    assert result.problems == [("encrypted", "an encrypted PDF; its text cannot be read")]


def test_a_pdf_with_only_an_owner_password_is_read():
    result = run(encrypted_pdf("", "AES-128"), "restricted.pdf")
    assert result.problems == []
    assert result.segments[0][1].strip() == "secret page"


@pytest.mark.parametrize(
    "make", [lambda: a_docx(["secret"]), lambda: an_xlsx({"S": [["secret"]]})], ids=["docx", "xlsx"]
)
def test_password_protected_office_documents_are_an_encrypted_problem(make):
    sealed = io.BytesIO()
    office = OOXMLFile(io.BytesIO(make()))
    office.encrypt("hunter2", sealed)
    result = run(sealed.getvalue(), "locked.docx")
    assert result.segments == []
    assert result.problems == [("encrypted", "a password-protected Office document; its text cannot be read")]


# -- hostile XML and caps --------------------------------------------------------------


def test_an_entity_bomb_in_a_docx_is_refused_without_expanding():
    bomb = billion_laughs(
        f'<w:document xmlns:w="{W_NS}"><w:body><w:p><w:r><w:t>LAUGH</w:t></w:r></w:p></w:body></w:document>'
    )
    data = replace_member(a_docx(["x"]), "word/document.xml", bomb)
    result, seconds, peak = measured(lambda: run(data, "bomb.docx"))
    assert result.segments == []
    assert result.problems[0][0] == "corrupt" and "entities" in result.problems[0][1]
    assert seconds < 1 and peak < 5_000_000


def test_an_entity_bomb_in_an_xlsx_is_refused_without_expanding():
    sheet = '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData><row r="1"><c r="A1" t="inlineStr"><is><t>LAUGH</t></is></c></row></sheetData></worksheet>'
    data = replace_member(an_xlsx({"S": [["x"]]}), "xl/worksheets/sheet1.xml", billion_laughs(sheet))
    result, seconds, peak = measured(lambda: run(data, "bomb.xlsx"))
    assert [kind for kind, _ in result.problems] == ["corrupt"]
    assert seconds < 1 and peak < 5_000_000


def test_a_huge_docx_is_streamed_and_stopped_by_the_time_cap():
    body = b"<w:p><w:r><w:t>.</w:t></w:r></w:p>" * 1_500_000  # 51 MB of XML in a 200 KB docx
    document = b'<w:document xmlns:w="%s"><w:body>%s</w:body></w:document>' % (W_NS.encode(), body)
    data = replace_member(a_docx(["x"]), "word/document.xml", document)
    assert len(data) < 500_000
    result, seconds, peak = measured(lambda: run(data, "huge.docx", extract_time="0.5s"))
    assert result.problems == [("cap", "document: text extraction ran out of time; the rest was not read")]
    assert 0 < len(result.segments[0][1]) < 2_000_000
    assert seconds < 3 and peak < 30_000_000  # never the whole 51 MB tree


def test_text_is_cut_at_the_character_cap_and_the_cut_is_a_problem():
    result = run(b"x" * 5000, "long.txt", extract_chars=1000)
    assert result.segments == [("", "x" * 1000)]
    assert result.problems == [("cap", "more than 1000 characters of text; the rest was not read")]


def test_a_cap_in_the_middle_of_a_utf8_character_does_not_garble_the_text():
    result = run(("€" * 3000).encode(), "euros.txt", extract_chars=1000)  # the 4000-byte window ends inside a €
    assert result.segments == [("", "€" * 1000)]


def test_docx_paragraphs_stop_at_the_character_cap():
    result = run(a_docx([f"paragraph {n:04d} " + "w" * 80 for n in range(100)]), "long.docx", extract_chars=1000)
    assert sum(len(text) for _, text in result.segments) <= 1000 + 100  # paragraphs cut at the cap, plus newlines
    assert result.problems == [("cap", "document: more than 1000 characters of text; the rest was not read")]


def test_a_docx_within_the_cap_is_read_whole_across_its_parts():
    data = a_docx(["p" * 99 for _ in range(10)], header="h" * 9)  # 999 characters of text, plus line breaks
    result = run(data, "fits.docx", extract_chars=1000)
    assert result.problems == []
    assert result.segments == [("", "\n".join(["p" * 99] * 10)), ("header1", "h" * 9)]


def test_xlsx_rows_stop_at_the_character_cap_in_the_sheet_where_it_is_reached():
    data = an_xlsx(
        {"Small": [["a", "b"]], "Payroll": [[f"row {n}", "x" * 50] for n in range(100)], "Later": [["never"]]}
    )
    result = run(data, "big.xlsx", extract_chars=1000)
    assert [where for where, _ in result.segments] == ["sheet Small", "sheet Payroll"]
    assert sum(len(text) for _, text in result.segments) <= 1000
    assert result.problems == [("cap", "sheet Payroll: more than 1000 characters of text; the rest was not read")]


def test_xlsx_parts_read_whole_are_refused_past_their_cap():
    # openpyxl reads styles and shared strings whole: 40 MB of styles from a small file must never reach it.
    styles = (
        b'<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        + b" " * (40 << 20)
        + b"</styleSheet>"
    )
    data = replace_member(an_xlsx({"S": [["text"]]}), "xl/styles.xml", styles)
    assert len(data) < 1_000_000
    result, seconds, peak = measured(lambda: run(data, "styles.xlsx"))
    assert result.segments == []
    assert result.problems == [
        ("cap", f"xl/styles.xml unpacks to {len(styles)} bytes, over the inspection limit; not read")
    ]
    assert seconds < 1 and peak < 5_000_000


def test_pdf_pages_stop_at_the_character_cap():
    result = run(a_pdf(["y" * 400 for _ in range(5)]), "long.pdf", extract_chars=1000)
    assert [where for where, _ in result.segments] == ["page 1", "page 2", "page 3"]
    assert result.problems == [("cap", "page 3 of 5: more than 1000 characters of text; the rest was not read")]


def test_one_message_has_one_text_budget_for_all_its_attachments():
    files = [(f"f{n}.txt", b"z" * 1000) for n in range(6)]
    message = mail_with(*files, extract_chars=1000)  # 5 x 1000 characters in all
    assert [t.filename for t in message.attachment_texts] == ["f0.txt", "f1.txt", "f2.txt", "f3.txt", "f4.txt"]
    assert [(p.where, p.kind, p.detail) for p in message.problems] == [
        ("7", "cap", "f5.txt: the message's text extraction budget was spent; not read")
    ]


def test_a_corrupt_document_is_a_corrupt_problem_not_an_exception():
    data = a_docx(["fine"])
    broken = data[: len(data) // 2]  # the central directory is gone
    message = mail_with(("broken.docx", broken))
    assert extract.kind_of(message.attachments[0].true_type) == "docx"
    assert message.attachment_texts == []
    assert [p.kind for p in message.problems if p.where == "2"] == ["corrupt"]
