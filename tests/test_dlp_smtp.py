"""Over real SMTP: the agency mail server (127.0.0.2) relays sortiz's payroll spreadsheet to a partner outside.

Plain, it is refused with a reason that says what and where, masked; in an
AES-encrypted ZIP it is delivered; under Excel's own password it is refused
with the policy's words. On SQLite and on the real PostgreSQL server.
"""

from __future__ import annotations

import smtplib

import pytest

from tests.conftest import TRUSTED, RunningGateway
from tests.support import dlp_files as files
from tests.support.dlp_files import XLSX

SENDER, PARTNER = "sortiz@example.gov", "partner@county.org"
SSNS = ("512-34-6789", "212-45-6780", "301-22-3344")
PAYROLL: dict[str, list[list[object]]] = {
    "Payroll": [
        ["Name", "SSN", "Salary"],
        *(
            [name, ssn, pay]
            for name, ssn, pay in zip(
                ("Dana Whitfield", "Lee Park", "Sam Ortiz"), SSNS, (71000, 64000, 58000), strict=True
            )
        ),
    ]
}


def send(gateway: RunningGateway, raw: bytes) -> tuple[int, str]:
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0), timeout=60) as client:
        try:
            client.sendmail(SENDER, [PARTNER], raw)
        except smtplib.SMTPDataError as exc:
            error = exc.smtp_error
            return exc.smtp_code, error.decode() if isinstance(error, bytes) else error
    return 250, ""


def test_payroll_leaves_only_in_acceptable_encryption(gateway, sink):
    sheet = files.xlsx(PAYROLL)

    code, reply = send(gateway, files.message(attachments=[("budget.xlsx", sheet, XLSX)], subject="Payroll"))
    assert code == 550
    text = " ".join(reply.split())
    assert "3 Social Security numbers (***-**-6789, ***-**-6780, ***-**-3344) in budget.xlsx, sheet Payroll" in text
    assert "AES-encrypted ZIP" in text and "password to the recipient another way" in text
    assert not any(ssn in text or ssn.replace("-", "") in text for ssn in SSNS)

    code, _ = send(
        gateway, files.message(attachments=[("budget.zip", files.zip_aes({"budget.xlsx": sheet}), "application/zip")])
    )
    assert code == 250
    [delivered] = sink.wait_for(1)
    assert delivered.rcpt_tos == [PARTNER] and b'filename="budget.zip"' in delivered.data

    code, reply = send(gateway, files.message(attachments=[("budget.xlsx", files.office_encrypted(sheet), XLSX)]))
    assert code == 550
    text = " ".join(reply.split())
    assert text.startswith(
        "5.7.1 budget.xlsx is a password-protected Excel spreadsheet, which agency policy does not accept as protection"
    )
    assert (
        "Password protection in Word documents, Excel spreadsheets and PDFs is readily broken and therefore is not acceptable protection."
        in text
    )
    assert len(sink.messages) == 1  # nothing refused reached the downstream


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_same_spreadsheet_inside_the_agency_is_delivered_and_recorded(gateway, sink):
    raw = files.message(attachments=[("budget.xlsx", files.xlsx(PAYROLL), XLSX)], to="dwhitfield@example.gov")
    with smtplib.SMTP("127.0.0.1", gateway.port, source_address=(TRUSTED, 0), timeout=60) as client:
        client.sendmail(SENDER, ["dwhitfield@example.gov"], raw)  # three SSNs: under the internal bulk threshold of ten
    [delivered] = sink.wait_for(1)
    assert delivered.rcpt_tos == ["dwhitfield@example.gov"]
