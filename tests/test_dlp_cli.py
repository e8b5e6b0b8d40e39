"""`aup-milter check` explains every hit: detector, confidence, location and masked value, never the number."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from milter import cli
from tests.conftest import write_config
from tests.support import dlp_files as files

SECRETS = {  # the full values in the message, none of which may appear in the output
    "ssn": ["512-34-6789", "512346789", "212456780"],
    "card": ["4539 1488 0343 6467", "4539148803436467"],
    "routing": ["021000021"],
    "account": ["000123456789"],
    "license": ["041234567"],
}
BODY = (
    "Hi, here are the corrections.\n"
    "Dana's SSN: 512-34-6789. Card on file: Visa 4539 1488 0343 6467 exp 09/27.\n"
    "Direct deposit: routing number 021000021, account number 000123456789.\n"
    "Driver's license # 041234567\n"
)
EVIDENCE = re.compile(
    r"^(?P<detector>[a-z0-9_]+) confidence=(?P<confidence>low|medium|high) location=part (?P<part>\S+): (?P<location>.+) value=(?P<value>.+)$"
)


@pytest.fixture
def checked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    config = write_config(tmp_path / "cfg", f"sqlite:///{tmp_path / 'aup.db'}", f"maildir:{tmp_path / 'out'}")
    sheet = files.xlsx({"Payroll": [["Name", "SSN"], ["Lee Park", "212456780"]]})
    message = tmp_path / "payroll.eml"
    message.write_bytes(files.message(BODY, [("budget.xlsx", sheet, files.XLSX)]))
    code = cli.main(["check", str(message), "--json", "--config", str(config)])
    out = capsys.readouterr().out
    result: dict[str, Any] = json.loads(out)
    assert code == cli.CHECK_EXIT[str(result["action"])]
    result["_raw"] = out
    return result


def test_check_json_lists_each_hit_with_detector_confidence_location_and_masked_value(checked):
    assert checked["direction"] == "outbound" and checked["action"] == "reject"
    [finding] = [f for f in checked["findings"] if f["policy"] == "confidential"]
    hits = [EVIDENCE.match(line) for line in finding["evidence"]]
    assert all(hits), finding["evidence"]
    seen = {(m["detector"], m["confidence"], m["part"], m["location"], m["value"]) for m in hits if m}
    assert seen == {
        ("ssn", "high", "1", "the message body", "***-**-6789"),
        ("payment_card", "high", "1", "the message body", "Visa **** **** **** 6467"),
        ("routing_number", "high", "1", "the message body", "*****0021"),
        ("bank_account", "high", "1", "the message body", "****6789"),
        ("drivers_license", "high", "1", "the message body", "*****4567"),
        ("ssn", "high", "2", "budget.xlsx, sheet Payroll", "***-**-6780"),
    }
    assert "2 Social Security numbers" not in finding["reason"]  # one per place, and the places are named
    assert "1 Social Security number (***-**-6789) in the message body" in finding["reason"]
    assert "1 Social Security number (***-**-6780) in budget.xlsx, sheet Payroll" in finding["reason"]


def test_no_full_number_appears_anywhere_in_the_output(checked):
    raw = checked["_raw"]
    for kind, values in SECRETS.items():
        for value in values:
            assert value not in raw, kind
            assert value.replace(" ", "").replace("-", "") not in re.sub(r"[\s\-]", "", raw), kind


def test_check_text_output_shows_the_same_evidence(tmp_path, capsys):
    config = write_config(tmp_path / "cfg", f"sqlite:///{tmp_path / 'aup.db'}", f"maildir:{tmp_path / 'out'}")
    message = tmp_path / "m.eml"
    message.write_bytes(files.message(BODY))
    assert cli.main(["check", str(message), "--config", str(config)]) == 1  # rejected
    out = capsys.readouterr().out
    assert "confidential [enforce] asks reject" in out
    assert "      ssn confidence=high location=part 1: the message body value=***-**-6789" in out
    assert "512-34-6789" not in out and "4539148803436467" not in out.replace(" ", "")
