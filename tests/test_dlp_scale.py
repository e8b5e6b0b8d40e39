"""A 20 MB attachment and a 50,000-row spreadsheet: scanned within the rule's time budget, with the right outcome.

Time and memory are measured by `make bench-dlp` (tests/bench/dlp.py); here
only the outcome is asserted: a rule over its budget would tempfail (451).
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support import dlp_files as files
from tests.support.dlp_files import Checker, confidential_findings


@pytest.fixture(scope="module")
def check(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Checker]:
    checker = Checker(tmp_path_factory.mktemp("scale"))
    yield checker
    checker.close()


def test_a_20_mb_export_is_rejected_for_its_ssns(check):
    data = files.large_csv(20 * 1024 * 1024)
    decision, message = check(files.message(attachments=[("staff.csv", data, "text/csv")]))
    assert decision.action == "reject", decision.error
    [finding] = confidential_findings(decision)
    assert "Social Security numbers (***-**-" in finding.reason and "in staff.csv" in finding.reason
    assert len(finding.evidence) == 101 and finding.evidence[-1].startswith("... and ")  # evidence stays bounded
    assert any(p.kind == "cap" for p in message.problems)  # what was not read is said, not hidden


def test_a_50000_row_payroll_spreadsheet_is_rejected_for_its_ssns(check):
    data = files.large_xlsx(50_000)
    decision, _ = check(files.message(attachments=[("payroll.xlsx", data, files.XLSX)]))
    assert decision.action == "reject", decision.error
    [finding] = confidential_findings(decision)
    assert "Social Security numbers (***-**-" in finding.reason and "in payroll.xlsx, sheet Payroll" in finding.reason
