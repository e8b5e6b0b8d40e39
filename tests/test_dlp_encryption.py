"""The encryption matrix: what the policy accepts as encryption, what it does not, through the real Pipeline.

The same payroll spreadsheet (three SSNs) travels outbound plain, in archives,
encrypted every way a sender might try, and as a whole encrypted message.
Each case asserts the decision, and the reason or the encryption recorded.
"""

from __future__ import annotations

import io
from collections.abc import Iterator

import msoffcrypto
import pytest

from milter.intake.pipeline import Decision
from milter.mail.filetypes import true_type
from milter.mail.message import Message
from policies.detectors import encryption
from tests.support import dlp_files as files
from tests.support.dlp_files import CLAMAV, DOCX, OLETOOLS, XLSX, Checker, confidential_findings

PAYROLL: dict[str, list[list[object]]] = {
    "Payroll": [
        ["Name", "SSN", "Salary"],
        ["Dana Whitfield", "512-34-6789", 71000],
        ["Lee Park", "212-45-6780", 64000],
        ["Sam Ortiz", "301-22-3344", 58000],
    ]
}
QUOTE = "Password protection in Word documents, Excel spreadsheets and PDFs is readily broken and therefore is not acceptable protection."
ZIP, SEVEN_ZIP, PDF, OCTET = (
    "application/zip",
    "application/x-7z-compressed",
    "application/pdf",
    "application/octet-stream",
)


@pytest.fixture(scope="module")
def check(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checker]:
    checker = Checker(tmp_path_factory.mktemp("matrix"))
    yield checker
    checker.close()


@pytest.fixture(scope="module")
def sheet() -> bytes:
    return files.xlsx(PAYROLL)


def payroll_memo() -> bytes:
    return files.docx(["Payroll corrections", "SSN for Dana Whitfield: 512-34-6789"])


def attach(*attachments: tuple[str, bytes, str], body: str = "Please see the attached file.\n") -> bytes:
    return files.message(body, attachments)


def assert_rejected_for_ssns(decision: Decision, where: str) -> None:
    assert decision.action == "reject", decision.findings
    assert decision.reply.startswith("550 5.7.1 ")
    assert f"3 Social Security numbers (***-**-6789, ***-**-6780, ***-**-3344) in {where}" in decision.reply


def assert_rejected_as_password_protected(decision: Decision, name: str, what: str) -> None:
    assert decision.action == "reject", decision.findings
    reasons = [f.reason for f in confidential_findings(decision)]
    assert any(
        reason.startswith(f"{name} is a password-protected {what}, which agency policy does not accept")
        and QUOTE in reason
        for reason in reasons
    ), reasons
    assert "AES-encrypted ZIP" in decision.reply


def assert_delivered_with(decision: Decision, message: Message, kind: str) -> None:
    assert decision.action == "deliver", [f.reason for f in decision.findings]
    assert confidential_findings(decision) == []
    assert kind in {p.kind for p in encryption.protections(message)}


# -- acceptable: the gateway cannot read it, and the policy says that is right ----------------


def test_the_plain_spreadsheet_is_rejected(check, sheet):
    decision, _ = check(attach(("payroll.xlsx", sheet, XLSX)))
    assert_rejected_for_ssns(decision, "payroll.xlsx, sheet Payroll")


def test_an_aes_zip_is_acceptable(check, sheet):
    decision, message = check(attach(("payroll.zip", files.zip_aes({"payroll.xlsx": sheet}), ZIP)))
    assert_delivered_with(decision, message, "zip-aes")


def test_a_zipcrypto_zip_is_acceptable_by_default_and_refused_when_aes_is_required(check, sheet, tmp_path):
    raw = attach(("payroll.zip", files.zip_zipcrypto("payroll.xlsx", sheet), ZIP))
    decision, message = check(raw)
    assert_delivered_with(decision, message, "zip-zipcrypto")
    strict = Checker(tmp_path / "strict", {"confidential": {"accept_zipcrypto": False}})
    try:
        decision, _ = strict(raw)
    finally:
        strict.close()
    assert decision.action == "reject"
    assert "payroll.zip is a ZIP with traditional (ZipCrypto) encryption, which is readily broken" in decision.reply


@pytest.mark.parametrize("header_encryption", [False, True], ids=["content", "content-and-names"])
def test_an_encrypted_7z_is_acceptable(check, sheet, header_encryption):
    data = files.seven_zip({"payroll.xlsx": sheet}, header_encryption=header_encryption)
    decision, message = check(attach(("payroll.7z", data, SEVEN_ZIP)))
    assert_delivered_with(decision, message, "7z")


def test_smime_enveloped_data_is_acceptable(check, sheet):
    decision, message = check(files.smime_enveloped(attach(("payroll.xlsx", sheet, XLSX))))
    assert_delivered_with(decision, message, "smime")


def test_pgp_mime_is_acceptable(check, sheet):
    decision, message = check(files.pgp_mime(attach(("payroll.xlsx", sheet, XLSX))))
    assert_delivered_with(decision, message, "pgp-mime")


def test_inline_pgp_is_acceptable_but_the_text_around_it_is_plain_text(check):
    secret = b"SSN for Dana Whitfield: 512-34-6789\n"
    decision, message = check(files.inline_pgp("Here is the correction, encrypted.", secret))
    assert_delivered_with(decision, message, "pgp-inline")
    decision, _ = check(files.inline_pgp("Here it is. Also Lee's SSN is 212-45-6780.", secret))
    assert decision.action == "reject"
    assert "1 Social Security number (***-**-6780) in the message body" in decision.reply


def test_a_body_stays_plain_text_when_the_attachment_is_encrypted(check, sheet):
    raw = attach(
        ("payroll.zip", files.zip_aes({"payroll.xlsx": sheet}), ZIP), body="The password is below. SSN 512-34-6789.\n"
    )
    decision, _ = check(raw)
    assert decision.action == "reject"
    assert "1 Social Security number (***-**-6789) in the message body" in decision.reply


def test_an_archive_with_one_encrypted_member_still_has_its_plain_members_read(check, sheet):
    mixed = files.zip_plain(
        {"notes.csv": files.csv_bytes(PAYROLL["Payroll"]), "sealed.zip": files.zip_aes({"payroll.xlsx": sheet})}
    )
    decision, _ = check(attach(("records.zip", mixed, ZIP)))
    assert_rejected_for_ssns(decision, "notes.csv in records.zip")


@pytest.mark.parametrize(
    ("builder", "where"),
    [
        (
            lambda s: ("records.zip", files.zip_plain({"payroll.xlsx": s}), ZIP),
            "payroll.xlsx in records.zip, sheet Payroll",
        ),
        (
            lambda s: ("records.7z", files.seven_zip({"payroll.xlsx": s}, password=None), SEVEN_ZIP),
            "payroll.xlsx in records.7z, sheet Payroll",
        ),
    ],
    ids=["zip", "7z"],
)
def test_unencrypted_archives_are_read_inside(check, sheet, builder, where):
    decision, _ = check(attach(builder(sheet)))
    assert_rejected_for_ssns(decision, where)


# -- not acceptable: the policy's own words ------------------------------------------------------


def test_excels_own_password_protection_is_rejected_with_the_policys_reason(check, sheet):
    decision, _ = check(attach(("payroll.xlsx", files.office_encrypted(sheet), XLSX)))
    assert_rejected_as_password_protected(decision, "payroll.xlsx", "Excel spreadsheet")


def test_words_own_password_protection_is_rejected_with_the_policys_reason(check):
    decision, _ = check(attach(("memo.docx", files.office_encrypted(payroll_memo()), DOCX)))
    assert_rejected_as_password_protected(decision, "memo.docx", "Word document")


@pytest.mark.parametrize(
    ("name", "what"),
    [
        ("encrypted.doc", "Word document"),
        ("encrypted.xls", "Excel spreadsheet"),
        ("encrypted.ppt", "PowerPoint presentation"),
    ],
)
def test_legacy_office_files_with_the_encryption_flag_are_rejected(check, name, what):
    data = (OLETOOLS / name).read_bytes()  # made by Microsoft Office, from oletools' test data
    decision, _ = check(attach((name, data, OCTET)))
    assert_rejected_as_password_protected(decision, name, what)


def test_an_encrypted_pdf_is_rejected_with_the_policys_reason(check):
    data = files.encrypted_pdf(files.pdf(["Payroll", "SSN 512-34-6789"]))
    decision, _ = check(attach(("payroll.pdf", data, PDF)))
    assert_rejected_as_password_protected(decision, "payroll.pdf", "PDF")


def test_a_pdf_with_only_an_owner_password_opens_for_anyone_and_is_read(check):
    data = files.encrypted_pdf(files.pdf(["Payroll", "SSN 512-34-6789"]), user_password="")
    decision, message = check(attach(("payroll.pdf", data, PDF)))
    assert decision.action == "reject"
    assert "1 Social Security number (***-**-6789) in payroll.pdf, page 1" in decision.reply
    assert encryption.protections(message) == []


def test_a_password_protected_file_inside_a_plain_zip_is_found(check, sheet):
    data = files.zip_plain({"payroll.xlsx": files.office_encrypted(sheet)})
    decision, _ = check(attach(("records.zip", data, ZIP)))
    assert_rejected_as_password_protected(decision, "payroll.xlsx", "Excel spreadsheet")


def test_a_password_protected_file_inside_an_aes_zip_is_the_zips_business(check, sheet):
    data = files.zip_aes({"payroll.xlsx": files.office_encrypted(sheet)})
    decision, message = check(attach(("records.zip", data, ZIP)))
    assert_delivered_with(decision, message, "zip-aes")


def test_smime_signed_only_is_not_encryption(check):
    inner = b"Content-Type: text/plain; charset=utf-8\r\n\r\nSSN for Dana Whitfield: 512-34-6789\r\n"
    decision, message = check(files.smime_signed(inner))
    assert decision.action == "reject"
    assert "1 Social Security number (***-**-6789) in the message body" in decision.reply
    assert encryption.protections(message) == []


def test_internally_a_password_protected_file_is_recorded_not_acted_on(check, sheet):
    raw = attach(("payroll.xlsx", files.office_encrypted(sheet), XLSX))
    decision, _ = check(raw, direction="internal", rcpt=("dwhitfield@example.gov",))
    assert decision.action == "deliver"
    [recorded] = confidential_findings(decision)
    assert str(recorded.action) == "deliver" and recorded.reason.startswith(
        "Recorded only, no action taken (internal mail): payroll.xlsx"
    )


# -- the detection itself, against an independent implementation ---------------------------------


def office_files(sheet: bytes) -> list[tuple[str, bytes]]:
    memo = payroll_memo()
    return [
        ("payroll.xlsx", sheet),
        ("memo.docx", memo),
        ("payroll-locked.xlsx", files.office_encrypted(sheet)),
        ("memo-locked.docx", files.office_encrypted(memo)),
        *((path.name, path.read_bytes()) for path in sorted(OLETOOLS.glob("encrypted.*"))),
        ("clam.ole.doc", (CLAMAV / "clam.ole.doc").read_bytes()),
        ("clam.ppt", (CLAMAV / "clam.ppt").read_bytes()),
    ]


def test_office_encryption_detection_agrees_with_msoffcrypto_tool(sheet):
    verdicts = {}
    for name, data in office_files(sheet):
        oracle = msoffcrypto.OfficeFile(io.BytesIO(data)).is_encrypted()
        found = encryption.file_protection(data, true_type(data, name), "2", name)
        assert (found is not None and found.kind == "office-password") == oracle, name
        verdicts[name] = oracle
    # the matrix covers both answers for each format
    assert verdicts == {
        "payroll.xlsx": False,
        "memo.docx": False,
        "payroll-locked.xlsx": True,
        "memo-locked.docx": True,
        "encrypted.doc": True,
        "encrypted.ppt": True,
        "encrypted.xls": True,
        "clam.ole.doc": False,
        "clam.ppt": False,
    }
