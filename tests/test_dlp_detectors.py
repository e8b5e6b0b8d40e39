"""The detectors one by one: validation against python-stdnum, confidence, masking, timeouts, config."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from stdnum import luhn as stdnum_luhn
from stdnum.us import rtn as stdnum_rtn
from stdnum.us import ssn as stdnum_ssn

from milter.config import load_config
from milter.kernel.settings import ConfigError
from policies.detectors import Confidence, Hit, Text, Wordlists, bank, cards, scan, ssn
from tests.conftest import write_config
from tests.support import dlp_files as files
from tests.support.dlp_files import XLSX, Checker, confidential_findings

WORDS = Wordlists()
ORACLE_EXTRA = {"123456789"}  # the placeholder SSN: stdnum accepts it, we count it as an example number


def hits(content: str, words: Wordlists = WORDS, timeout: float = 5.0) -> list[Hit]:
    return scan([Text(content, "1", "the message body", words, timeout)])


def found(content: str, detector: str, words: Wordlists = WORDS) -> list[tuple[str, str]]:
    return [(str(h.confidence), h.masked) for h in hits(content, words) if h.detector == detector]


# -- validation, against an independent implementation --------------------------------------


def test_ssn_validation_agrees_with_stdnum_on_random_and_edge_numbers():
    rng = random.Random(7)
    numbers = [f"{rng.randrange(10**9):09d}" for _ in range(20000)]
    numbers += [
        "000123456",
        "666123456",
        "900123456",
        "999999999",
        "123004567",
        "123450000",
        "078051120",
        "219099999",
        "457555462",
        "001010001",
        "665999999",
        "667010001",
        "899999999",
    ]
    for number in numbers:
        expected = stdnum_ssn.is_valid(number) and number not in ORACLE_EXTRA
        assert ssn.is_valid(number) == expected, number
    assert (
        sum(map(ssn.is_valid, numbers)) > 15000
    )  # most random numbers are structurally valid: the test compares both answers


def test_luhn_agrees_with_stdnum():
    rng = random.Random(11)
    for _ in range(20000):
        number = str(rng.randrange(10**12, 10**19))
        assert cards.luhn(number) == stdnum_luhn.is_valid(number), number


def test_routing_checksum_agrees_with_stdnum_and_prefixes_narrow_it():
    rng = random.Random(13)
    valid_checksums = 0
    for _ in range(20000):
        number = f"{rng.randrange(10**9):09d}"
        oracle = stdnum_rtn.is_valid(number)
        valid_checksums += oracle
        if int(number[:2]) in bank.ROUTING_PREFIXES and number != "000000000":
            assert bank.is_routing_number(number) == oracle, number
        else:
            assert not bank.is_routing_number(number), number
    assert valid_checksums > 1000


# -- SSNs ----------------------------------------------------------------------------------


def test_ssn_confidence_follows_format_and_keywords():
    assert found("Your SSN: 512-34-6789 is on file.", "ssn") == [("high", "***-**-6789")]
    assert found("Number 512 34 6789 was filed.", "ssn") == [("medium", "***-**-6789")]
    assert found("Invoice 512-34-6789 is due.", "ssn") == [("low", "***-**-6789")]
    assert found("Social Security number 512346789.", "ssn") == [("high", "***-**-6789")]
    assert found("Order number 512346789 shipped.", "ssn") == []  # a bare number needs its keyword


@pytest.mark.parametrize(
    "number",
    [
        "000-12-3456",
        "666-12-3456",
        "912-34-5678",
        "512-00-6789",
        "512-34-0000",
        "078-05-1120",
        "219-09-9999",
        "123-45-6789",
    ],
)
def test_invalid_and_example_ssns_never_count(number):
    assert found(f"Employee SSN: {number}", "ssn") == []


def test_an_ssn_column_heading_vouches_for_every_row_below_it():
    rows = "\n".join(f"Person {i}\t{512346700 + i}\tdept" for i in range(200))
    content = f"Name\tSSN\tDepartment\n{rows}"
    assert len([h for h in hits(content) if h.detector == "ssn" and h.confidence == Confidence.HIGH]) == 200
    assert found(content.replace("SSN", "Employee #"), "ssn") == []


# -- cards -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("number", "brand"),
    [
        ("4539 1488 0343 6467", "Visa"),
        ("5425-2334-3010-9903", "Mastercard"),
        ("2223 0000 4841 0010", "Mastercard"),
        ("3714 496353 98431", "American Express"),
        ("6011 0009 9013 9424", "Discover"),
        ("3530 1113 3330 0000", "JCB"),
    ],
)
def test_cards_by_issuer_with_a_keyword_are_high(number, brand):
    assert stdnum_luhn.is_valid(number.replace(" ", "").replace("-", ""))
    [(confidence, masked)] = found(f"Card number: {number}", "payment_card")
    assert brand in masked and masked.endswith(number[-4:]) and number not in masked
    published_test_number = number.replace(" ", "").replace("-", "") in WORDS.terms["test_card_numbers"]
    expected = "medium" if published_test_number else "high"  # a network's test number is never high
    assert confidence == expected


def test_card_confidence_from_expiry_context_and_test_numbers():
    assert found("4539148803436467 exp 09/27", "payment_card") == [("high", "Visa **** **** **** 6467")]
    assert found("Reference 4539148803436467", "payment_card") == [("low", "Visa **** **** **** 6467")]
    assert found("See 4539148803436467", "payment_card") == [("medium", "Visa **** **** **** 6467")]
    assert found("4539148803436468 card", "payment_card") == []  # fails Luhn
    assert found("9539148803436463 card", "payment_card") == []  # passes Luhn, no issuer starts with 9
    assert found("In the sandbox, use the test card 4242 4242 4242 4242 with any CVC.", "payment_card") == [
        ("low", "Visa **** **** **** 4242")
    ]
    assert found("Charge card 4242 4242 4242 4242 please", "payment_card") == [("medium", "Visa **** **** **** 4242")]


# -- bank and driver's license -----------------------------------------------------------------


def test_routing_and_account_numbers():
    text = "Direct deposit: routing number 021000021, account number 000123456789."
    assert found(text, "routing_number") == [("high", "*****0021")]
    assert found(text, "bank_account") == [("high", "****6789")]
    assert found("routing number 021000022", "routing_number") == []  # bad checksum
    assert found("Your water account number 88231907 is overdue.", "bank_account") == [("low", "****1907")]


def test_connecticut_drivers_licenses():
    assert found("CT driver's license # 041234567", "drivers_license") == [("high", "*****4567")]
    assert found("Driver's license 991234567", "drivers_license") == []  # no Connecticut number starts with 99
    assert found("Permit 041234567 approved", "drivers_license") == []


# -- records -------------------------------------------------------------------------------------


def test_record_vocabulary_needs_a_person():
    assert (
        found("Mental health awareness week: resources on depression, anxiety disorder and addiction.", "health_terms")
        == []
    )
    assert found(
        "Patient: Jane Roe, DOB 01/02/1960, diagnosed with diabetes; prescribed metformin and insulin.", "health_terms"
    )
    assert found("Wastewater treatment permit section C40.1 applies.", "icd10_code") == []
    assert found("Diagnosis: E11.9 (type 2 diabetes)", "icd10_code") == [("high", "ICD-10 E11.9")]
    assert found("All staff must finish FERPA training about grades and discipline records.", "student_record") == []
    assert found("Student ID 2034567 was suspended for three days; GPA 2.1.", "student_id") == [
        ("high", 'student ID ****4567 with "gpa", "suspended"')
    ]
    assert found("CJIS security awareness training is due Friday.", "cjis") == []
    assert found("NCIC response: criminal history for SID CT1234567, DOB 04/02/1988, race W, sex M.", "cjis")


# -- never a full number anywhere ----------------------------------------------------------------


def test_masked_values_never_hold_the_number():
    text = (
        "SSN: 512-34-6789. Card: 4539 1488 0343 6467 exp 09/27. Routing number 021000021 account number 000123456789. "
        "DL# 041234567. Student ID 2034567 suspended."
    )
    for hit in hits(text):
        for secret in (
            "512346789",
            "6789-",
            "4539148803436467",
            "1488",
            "021000021",
            "000123456789",
            "041234567",
            "2034567",
        ):
            assert secret not in hit.masked.replace(" ", "").replace("-", "") + hit.evidence(), (secret, hit)


# -- fail closed -----------------------------------------------------------------------------------


def test_a_search_past_its_timeout_raises():
    with pytest.raises(TimeoutError):
        hits("512-34-6789 " * 400000, timeout=0.001)


def test_a_regex_timeout_tempfails_the_message(tmp_path):
    checker = Checker(tmp_path, {"confidential": {"regex_timeout": 0.001}})
    try:
        decision, _ = checker(files.message("SSN 512-34-6789 " * 200000))
    finally:
        checker.close()
    assert decision.action == "tempfail" and decision.reply.startswith("451 4.3.0")
    assert "rule confidential" in (decision.error or "")


# -- config ------------------------------------------------------------------------------------


def test_one_key_set_keeps_the_familys_other_defaults(tmp_path):
    config = load_config(
        write_config(
            tmp_path,
            "sqlite:///x.db",
            "maildir:out",
            {"policies": {"confidential": {"ssn": {"outbound": {"high": 2}}}}},
        )
    )
    settings = config.policies["confidential"]
    assert (settings.ssn.outbound.high, settings.ssn.outbound.medium, settings.ssn.internal.high) == (2, 3, 10)
    assert settings.rules("health", "outbound")[0] == "hold" and settings.rules("ssn", "internal")[0] == "monitor"


@pytest.mark.parametrize(
    ("extra", "key", "words"),
    [
        ({"directions": ["inbound"]}, "policies.confidential.directions", "inbound is not one of its directions"),
        (
            {"wordlists": {"ssn_keyword": "/etc/hosts"}},
            "policies.confidential.wordlists",
            "no word list named ssn_keyword",
        ),
        (
            {"wordlists": {"ssn_keywords": "/nonexistent/ssn.txt"}},
            "policies.confidential.wordlists.ssn_keywords",
            "does not point to a file",
        ),
        ({"ssn": {"outbound": {"action": "bounce"}}}, "policies.confidential.ssn.outbound.action", "monitor"),
    ],
)
def test_config_errors_name_the_key(tmp_path, extra, key, words):
    with pytest.raises(ConfigError) as caught:
        load_config(write_config(tmp_path, "sqlite:///x.db", "maildir:out", {"policies": {"confidential": extra}}))
    assert caught.value.key == key and words in str(caught.value)


def test_word_lists_can_be_replaced_in_config(tmp_path):
    replacement = tmp_path / "ssn.txt"
    replacement.write_text("# our payroll export calls it this\nemployee number\n")
    config = load_config(
        write_config(
            tmp_path,
            "sqlite:///x.db",
            "maildir:out",
            {"policies": {"confidential": {"wordlists": {"ssn_keywords": str(replacement)}}}},
        )
    )
    text = "Employee number 512346789"
    assert found(text, "ssn") == []
    assert found(text, "ssn", Wordlists(config.policies["confidential"].wordlists)) == [("high", "***-**-6789")]


def test_per_direction_thresholds_and_actions(tmp_path):
    checker = Checker(tmp_path, {"confidential": {"ssn": {"internal": {"action": "hold", "high": 2}}}})
    one = files.message("SSN 512-34-6789", to="dwhitfield@example.gov")
    two = files.message("SSNs 512-34-6789 and 212-45-6780", to="dwhitfield@example.gov")
    try:
        inside = ("dwhitfield@example.gov",)
        assert checker(one, "internal", inside)[0].action == "deliver"
        decision, _ = checker(two, "internal", inside)
        assert decision.action == "hold" and "2 Social Security numbers" in confidential_findings(decision)[0].reason
        assert checker(one)[0].action == "reject"  # outbound keeps its default: one high is enough
    finally:
        checker.close()


def test_shipped_word_lists_are_package_data():
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"wordlists/*.txt"' in pyproject
    assert {"ssn_keywords", "card_keywords", "health_terms", "cjis_terms"} <= set(WORDS.terms)


def test_sheet_attachment_location_is_named():
    raw = files.message(
        attachments=[
            ("budget.xlsx", files.xlsx({"Payroll": [["Name", "SSN"], ["Dana Whitfield", "512-34-6789"]]}), XLSX)
        ]
    )
    from milter.mail.message import Envelope, Message
    from policies.detectors.sources import texts_of

    message = Message(Envelope("a@example.gov", ("b@county.org",)), raw, "outbound")
    [hit] = [h for h in scan(texts_of(message, WORDS, 5.0)) if h.detector == "ssn"]
    assert (hit.part, hit.location) == ("2", "budget.xlsx, sheet Payroll")
