"""A labelled corpus for the confidential-data detectors: positives, hard negatives, real mail.

Values are drawn at random (seeded) and checked with python-stdnum, an
independent implementation, so a "valid SSN" in a positive is valid by
someone else's rules and an "invalid area" in a negative is invalid by them.
Each case is rendered into a container it could really arrive in: the body,
docx, xlsx, pdf, csv, or a member of a zip. Labels are the families a
careful reader would say the case contains.
"""

from __future__ import annotations

import importlib.util
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from stdnum import luhn
from stdnum.us import rtn
from stdnum.us import ssn as stdnum_ssn

from tests.support import dlp_files as files

DATA = Path(__file__).resolve().parent.parent / "data"
FAMILIES = ("ssn", "card", "bank", "drivers_license", "health", "student", "personnel", "cjis")
PROSE_CONTAINERS = ("body", "docx", "pdf", "zip:txt", "zip:docx")
TABLE_CONTAINERS = ("xlsx", "csv", "body", "zip:xlsx", "zip:csv")
FIRST = [
    "Dana",
    "Lee",
    "Sam",
    "Chris",
    "Maria",
    "Jordan",
    "Priya",
    "Tomas",
    "Aisha",
    "Kevin",
    "Grace",
    "Luis",
    "Hannah",
    "Omar",
]
LAST = [
    "Whitfield",
    "Park",
    "Ortiz",
    "Nguyen",
    "Garcia",
    "Lee",
    "Patel",
    "Novak",
    "Rahman",
    "Brooks",
    "Kim",
    "Santos",
    "Meyer",
]
ICD10 = [
    "E11.9",
    "I10",
    "J45.909",
    "F32.9",
    "C50.911",
    "Z79.4",
    "F41.1",
    "K21.9",
    "N18.3",
    "G40.909",
    "F33.1",
    "E66.9",
    "M54.50",
]
CONDITIONS = [
    ("diabetes", "insulin"),
    ("depression", "counseling"),
    ("cancer", "chemotherapy"),
    ("epilepsy", "medication"),
    ("hepatitis", "lab results"),
    ("bipolar", "psychiatric"),
    ("substance abuse", "rehab"),
]
EXAMPLE_SSNS = {"078051120", "219099999", "457555462", "123456789"}


@dataclass(frozen=True)
class Case:
    name: str
    labels: frozenset[str]
    lines: tuple[str, ...] = ()  # prose
    rows: tuple[tuple[str, ...], ...] = ()  # a table, header first

    @property
    def containers(self) -> tuple[str, ...]:
        return TABLE_CONTAINERS if self.rows else PROSE_CONTAINERS


# -- values ----------------------------------------------------------------------------------


class Values:
    def __init__(self, seed: int) -> None:
        self.rng = random.Random(seed)

    def name(self) -> str:
        return f"{self.rng.choice(FIRST)} {self.rng.choice(LAST)}"

    def ssn_digits(self) -> str:
        while True:
            digits = (
                f"{self.rng.randrange(1, 900):03d}{self.rng.randrange(1, 100):02d}{self.rng.randrange(1, 10000):04d}"
            )
            if stdnum_ssn.is_valid(digits) and digits not in EXAMPLE_SSNS:
                return digits

    def ssn(self, style: str = "dash") -> str:
        d = self.ssn_digits()
        return {"dash": f"{d[:3]}-{d[3:5]}-{d[5:]}", "space": f"{d[:3]} {d[3:5]} {d[5:]}", "bare": d}[style]

    def invalid_ssn(self) -> str:
        area = self.rng.choice(["000", "666", f"{self.rng.randrange(900, 1000)}"])
        digits = f"{area}{self.rng.randrange(1, 100):02d}{self.rng.randrange(1, 10000):04d}"
        if self.rng.random() < 0.3:  # or a zero group / serial in a valid area
            digits = (
                f"{self.rng.randrange(1, 600):03d}00{self.rng.randrange(1, 10000):04d}"
                if self.rng.random() < 0.5
                else f"{self.rng.randrange(1, 600):03d}{self.rng.randrange(1, 100):02d}0000"
            )
        assert not stdnum_ssn.is_valid(digits)
        return f"{digits[:3]}-{digits[3:5]}-{digits[5:]}"

    def card_digits(self, prefix: str | None = None, length: int | None = None) -> str:
        prefix, length = (
            prefix or self.rng.choice(["4", "51", "53", "55", "2221", "2720", "34", "37", "6011", "65", "3528"]),
            length,
        )
        if length is None:
            length = 15 if prefix in ("34", "37") else 16
        body = prefix + "".join(str(self.rng.randrange(10)) for _ in range(length - len(prefix) - 1))
        number = body + luhn.calc_check_digit(body)
        assert luhn.is_valid(number)
        return number

    def card(self, prefix: str | None = None) -> str:
        d = self.card_digits(prefix)
        style = self.rng.choice(["space", "dash", "plain"])
        if style == "plain":
            return d
        sep = " " if style == "space" else "-"
        groups = [d[:4], d[4:10], d[10:]] if len(d) == 15 else [d[i : i + 4] for i in range(0, len(d), 4)]
        return sep.join(groups)

    def luhn_failing_card(self) -> str:
        d = self.card_digits("4")
        bad = d[:-1] + str((int(d[-1]) + self.rng.randrange(1, 10)) % 10)
        assert not luhn.is_valid(bad)
        return " ".join(bad[i : i + 4] for i in range(0, 16, 4))

    def routing(self) -> str:
        prefix = self.rng.choice(["01", "02", "03", "05", "07", "09", "11", "21", "22", "26", "31", "32", "61", "67"])
        body = prefix + "".join(str(self.rng.randrange(10)) for _ in range(6))
        number = body + rtn.calc_check_digit(body)
        assert rtn.is_valid(number)
        return number

    def bad_routing(self) -> str:
        good = self.routing()
        bad = good[:-1] + str((int(good[-1]) + self.rng.randrange(1, 10)) % 10)
        assert not rtn.is_valid(bad)
        return bad

    def account(self) -> str:
        return "".join(str(self.rng.randrange(10)) for _ in range(self.rng.randrange(8, 13)))

    def ct_license(self) -> str:
        return f"{self.rng.randrange(1, 25):02d}{self.rng.randrange(10**7):07d}"

    def digits(self, count: int) -> str:
        return str(self.rng.randrange(1, 10)) + "".join(str(self.rng.randrange(10)) for _ in range(count - 1))

    def date(self) -> str:
        return f"{self.rng.randrange(1, 13):02d}/{self.rng.randrange(1, 29):02d}/{self.rng.randrange(1950, 2006)}"

    def expiry(self) -> str:
        return f"{self.rng.randrange(1, 13):02d}/{self.rng.randrange(26, 31)}"

    def money(self) -> str:
        return f"${self.rng.randrange(38, 140) * 1000 + self.rng.randrange(0, 1000, 50):,}"


# -- positives ----------------------------------------------------------------------------------


def ssn_cases(v: Values) -> Iterator[Case]:
    for i in range(14):
        yield Case(
            f"ssn-prose-{i}",
            frozenset({"ssn"}),
            (
                "Hi Dana,",
                f"Please update the payroll record for {v.name()}. Her SSN is {v.ssn(v.rng.choice(['dash', 'space', 'bare']))}.",
                "Thanks, Sam",
            ),
        )
    for i in range(8):
        yield Case(
            f"ssn-form-{i}",
            frozenset({"ssn"}),
            (
                "W-4 employee information",
                f"Name: {v.name()}",
                f"Social Security number: {v.ssn(v.rng.choice(['dash', 'bare']))}",
                f"Date of hire: {v.date()}",
            ),
        )
    for i in range(10):
        style = v.rng.choice(["dash", "bare"])
        yield Case(
            f"ssn-table-{i}",
            frozenset({"ssn"}),
            rows=(
                ("Name", "SSN", "Department"),
                *(
                    (v.name(), v.ssn(style), v.rng.choice(["Public Works", "Clerk", "IT"]))
                    for _ in range(v.rng.randrange(3, 12))
                ),
            ),
        )
    for i in range(6):  # formatted, no keyword at all: a list of numbers in that shape is still SSNs (medium)
        yield Case(
            f"ssn-unlabelled-{i}",
            frozenset({"ssn"}),
            ("Numbers for the benefits vendor:", *(f"{v.name()} {v.ssn()}" for _ in range(3))),
        )
    for i in range(4):
        yield Case(
            f"ssn-soc-sec-{i}", frozenset({"ssn"}), (f"soc sec # {v.ssn('space')} for {v.name()}, per your request.",)
        )


def card_cases(v: Values) -> Iterator[Case]:
    for i in range(12):
        yield Case(
            f"card-charge-{i}",
            frozenset({"card"}),
            (
                "Hello,",
                f"Please charge the permit fee to my {v.rng.choice(['Visa', 'Mastercard', 'card'])} {v.card()} exp {v.expiry()}.",
                f"Name on card: {v.name()}",
            ),
        )
    for i in range(8):
        yield Case(
            f"card-number-{i}",
            frozenset({"card"}),
            (f"Card number: {v.card()}", f"Billing ZIP: 06{v.rng.randrange(100, 999)}"),
        )
    for i in range(8):
        yield Case(
            f"card-table-{i}",
            frozenset({"card"}),
            rows=(
                ("Cardholder", "Card Number", "Exp"),
                *((v.name(), v.card(), v.expiry()) for _ in range(v.rng.randrange(2, 8))),
            ),
        )
    for i in range(6):
        yield Case(
            f"card-amex-{i}",
            frozenset({"card"}),
            (f"Corporate Amex {v.card(v.rng.choice(['34', '37']))} is the one to use for travel.",),
        )
    for i in range(4):
        yield Case(
            f"card-bare-{i}", frozenset({"card"}), (f"Here it is: {v.card_digits('4')} - let me know if it fails.",)
        )


def bank_cases(v: Values) -> Iterator[Case]:
    for i in range(12):
        yield Case(
            f"bank-deposit-{i}",
            frozenset({"bank"}),
            (
                "Direct deposit authorization",
                f"Employee: {v.rng.choice(FIRST)}",
                f"Bank: {v.rng.choice(['Webster Bank', 'Citizens', 'Liberty Bank'])}",
                f"Routing number: {v.routing()}",
                f"Account number: {v.account()}",
                "Account type: checking",
            ),
        )
    for i in range(8):
        yield Case(
            f"bank-wire-{i}",
            frozenset({"bank"}),
            (f"Wire the deposit to ABA {v.routing()}, acct {v.account()} at the credit union by Friday.",),
        )
    for i in range(8):
        yield Case(
            f"bank-table-{i}",
            frozenset({"bank"}),
            rows=(
                ("Vendor", "Routing Number", "Account Number"),
                *((f"{v.rng.choice(LAST)} LLC", v.routing(), v.account()) for _ in range(v.rng.randrange(2, 6))),
            ),
        )
    for i in range(4):
        yield Case(
            f"bank-savings-{i}",
            frozenset({"bank"}),
            (f"My savings account number is {v.account()}, please send the refund there.",),
        )


def license_cases(v: Values) -> Iterator[Case]:
    for i in range(10):
        yield Case(
            f"dl-prose-{i}",
            frozenset({"drivers_license"}),
            (f"Driver's license # {v.ct_license()} (CT), expires {v.date()[:6]}2029.", f"Holder: {v.name()}"),
        )
    for i in range(8):
        yield Case(
            f"dl-table-{i}",
            frozenset({"drivers_license"}),
            rows=(
                ("Driver", "License Number", "Class"),
                *((v.name(), v.ct_license(), v.rng.choice(["B", "C", "D"])) for _ in range(v.rng.randrange(2, 8))),
            ),
        )
    for i in range(6):
        yield Case(f"dl-short-{i}", frozenset({"drivers_license"}), (f"DL# {v.ct_license()} checked at the counter.",))


def health_cases(v: Values) -> Iterator[Case]:
    for i in range(10):
        code = v.rng.choice(ICD10)
        condition, treatment = v.rng.choice(CONDITIONS)
        yield Case(
            f"health-claim-{i}",
            frozenset({"health"}),
            (
                f"Patient: {v.name()}",
                f"DOB: {v.date()}",
                f"Diagnosis: {code} ({condition})",
                f"Plan: continue {treatment}, follow up in 3 months.",
            ),
        )
    for i in range(10):
        condition, treatment = v.rng.choice(CONDITIONS)
        yield Case(
            f"health-leave-{i}",
            frozenset({"health"}),
            (
                "Hi,",
                f"{v.name()} was diagnosed with {condition} and will be on medical leave while starting {treatment}.",
                "Please keep this between us.",
            ),
        )
    for i in range(8):
        yield Case(
            f"health-table-{i}",
            frozenset({"health"}),
            rows=(
                ("Patient", "DOB", "ICD-10", "Diagnosis"),
                *(
                    (v.name(), v.date(), v.rng.choice(ICD10), v.rng.choice(CONDITIONS)[0])
                    for _ in range(v.rng.randrange(2, 7))
                ),
            ),
        )
    for i in range(4):
        condition, treatment = v.rng.choice(CONDITIONS)
        yield Case(
            f"health-fmla-{i}",
            frozenset({"health"}),
            (
                f"FMLA certification for {v.name()}: the physician's note confirms {condition}; {treatment} twice a week; prognosis good.",
            ),
        )


def student_cases(v: Values) -> Iterator[Case]:
    for i in range(10):
        yield Case(
            f"student-discipline-{i}",
            frozenset({"student"}),
            (
                f"Student ID {v.digits(7)} was suspended for {v.rng.randrange(1, 6)} days after the incident report;",
                f"current GPA {v.rng.randrange(10, 40) / 10}. Parent notified.",
            ),
        )
    for i in range(8):
        yield Case(
            f"student-roster-{i}",
            frozenset({"student"}),
            rows=(
                ("Student ID", "Name", "Grade", "GPA", "Absences"),
                *(
                    (
                        v.digits(7),
                        v.name(),
                        str(v.rng.randrange(6, 13)),
                        str(v.rng.randrange(10, 40) / 10),
                        str(v.rng.randrange(0, 30)),
                    )
                    for _ in range(v.rng.randrange(3, 10))
                ),
            ),
        )
    for i in range(8):
        yield Case(
            f"student-iep-{i}",
            frozenset({"student"}),
            (
                f"Student: {v.name()}",
                "IEP annual review: learning disability in reading; special education services continue;",
                "report card shows failing grades in math.",
            ),
        )
    for i in range(4):
        yield Case(
            f"student-sasid-{i}",
            frozenset({"student"}),
            (f"SASID {v.digits(10)}: expelled pending hearing; transcript on hold.",),
        )


def personnel_cases(v: Values) -> Iterator[Case]:
    for i in range(10):
        yield Case(
            f"personnel-eval-{i}",
            frozenset({"personnel"}),
            (
                f"Employee: {v.name()}",
                "Annual performance evaluation: overall rating needs improvement.",
                "A written warning was issued in March; a performance improvement plan starts Monday.",
            ),
        )
    for i in range(8):
        yield Case(
            f"personnel-salary-{i}",
            frozenset({"personnel"}),
            rows=(
                ("Employee", "Title", "Annual Salary", "Step Increase"),
                *(
                    (v.name(), v.rng.choice(["Clerk", "Engineer", "Inspector"]), v.money(), f"{v.rng.randrange(1, 5)}%")
                    for _ in range(v.rng.randrange(3, 10))
                ),
            ),
        )
    for i in range(8):
        yield Case(
            f"personnel-discipline-{i}",
            frozenset({"personnel"}),
            (
                f"Name: {v.name()}",
                "Disciplinary action: suspension without pay for 3 days following the internal investigation of misconduct.",
            ),
        )
    for i in range(4):
        yield Case(
            f"personnel-raise-{i}",
            frozenset({"personnel"}),
            (
                f"Staff member: {v.name()} - new salary {v.money()} after merit increase; review rating exceeds expectations.",
            ),
        )


def cjis_cases(v: Values) -> Iterator[Case]:
    for i in range(10):
        yield Case(
            f"cjis-ncic-{i}",
            frozenset({"cjis"}),
            (
                f"NCIC response for {v.name()}",
                f"DOB: {v.date()}  Sex: M  Race: W  SID: CT{v.digits(7)}",
                "Criminal history: two prior arrests; active warrant from Hartford.",
            ),
        )
    for i in range(8):
        yield Case(
            f"cjis-rapsheet-{i}",
            frozenset({"cjis"}),
            (
                f"Attached is the rap sheet (CHRI) you asked for. FBI number {v.digits(7)}AB{v.rng.randrange(10)}, date of birth {v.date()}.",
            ),
        )
    for i in range(6):
        yield Case(
            f"cjis-table-{i}",
            frozenset({"cjis"}),
            rows=(
                ("Name", "DOB", "SID", "NCIC Hit"),
                *((v.name(), v.date(), f"CT{v.digits(7)}", "warrant") for _ in range(v.rng.randrange(2, 6))),
            ),
        )


# -- hard negatives ----------------------------------------------------------------------------------


def negative_cases(v: Values) -> Iterator[Case]:
    none: frozenset[str] = frozenset()
    for i in range(6):
        yield Case(
            f"neg-invoice-{i}",
            none,
            (
                f"Invoice {v.ssn()} for road salt is attached; total {v.money()}.",
                f"Invoice INV-2026-{v.digits(5)}, PO {v.digits(9)}.",
            ),
        )
    for i in range(6):
        yield Case(
            f"neg-order-{i}",
            none,
            (
                f"Your order number {v.card_digits('4')} has shipped.",
                f"Order #{v.digits(3)}-{v.digits(7)}-{v.digits(7)} will arrive Tuesday.",
            ),
        )
    for i in range(6):
        yield Case(
            f"neg-phone-{i}",
            none,
            (
                f"Call me at (860) 555-0{v.digits(3)} or 860-555-0{v.digits(3)}, fax 860.555.0{v.digits(3)},",
                f"cell 860555{v.digits(4)}, or +1 203 555 0{v.digits(3)}.",
            ),
        )
    for i in range(6):
        yield Case(
            f"neg-zip-{i}",
            none,
            (
                f"Town Hall, 550 Main Street, Hartford, CT 06{v.digits(3)}-{v.digits(4)}",
                f"Mail the form to PO Box {v.digits(4)}, Bristol, CT 06010-{v.digits(4)}.",
            ),
        )
    for i in range(6):
        yield Case(
            f"neg-dates-{i}",
            none,
            (
                (
                    f"Meeting on 2026-{v.rng.randrange(1, 13):02d}-{v.rng.randrange(1, 28):02d} at 10:00; "
                    f"logged 2026{v.rng.randrange(1, 13):02d}{v.rng.randrange(1, 28):02d}{v.digits(6)}."
                ),
                f"Period 01/01/2026 - 12/31/2026, fiscal year {v.rng.randrange(2020, 2030)}.",
            ),
        )
    for i in range(6):
        yield Case(
            f"neg-tracking-{i}",
            none,
            (
                f"UPS tracking 1Z{v.digits(6)}A{v.digits(9)}",
                f"FedEx tracking number {v.digits(12)}",
                f"USPS tracking 9400 1{v.digits(3)} {v.digits(4)} {v.digits(4)} {v.digits(4)} {v.digits(4)} {v.digits(2)}",
            ),
        )
    for i in range(8):
        yield Case(
            f"neg-invalid-ssn-{i}",
            none,
            (f"The SSN on the form, {v.invalid_ssn()}, cannot be right; please ask again.",),
        )
    yield Case(
        "neg-example-ssns",
        none,
        (
            "Example SSNs such as 078-05-1120 and 219-09-9999 were printed on wallet cards.",
            "SSN placeholder: 123-45-6789.",
        ),
    )
    for i in range(8):
        yield Case(f"neg-luhn-{i}", none, (f"Card number {v.luhn_failing_card()} was declined (typo?).",))
    for i in range(6):
        number = v.rng.choice(
            [
                "4111 1111 1111 1111",
                "4242 4242 4242 4242",
                "5555 5555 5555 4444",
                "3782 822463 10005",
                "6011 1111 1111 1117",
            ]
        )
        yield Case(
            f"neg-test-card-{i}",
            none,
            (
                "Payment gateway integration guide (sandbox)",
                f"To test a successful charge in test mode, use card {number}, any CVC, exp 12/34.",
                "Send it with curl to the /v1/charges endpoint; the API returns JSON.",
            ),
        )
    yield Case(
        "neg-test-card-table",
        none,
        rows=(
            ("Brand", "Test card number", "Result"),
            ("Visa", "4111111111111111", "approved (sandbox)"),
            ("Mastercard", "5555555555554444", "approved (sandbox)"),
            ("Amex", "378282246310005", "declined"),
        ),
    )
    for i in range(6):
        yield Case(
            f"neg-bad-routing-{i}", none, (f"The routing number {v.bad_routing()} on the check does not validate.",)
        )
    for i in range(4):
        yield Case(
            f"neg-utility-account-{i}", none, (f"Your water account number {v.account()} has a balance due of $84.20.",)
        )
    for i in range(4):
        yield Case(
            f"neg-permit-{i}",
            none,
            (
                f"Permit {v.ct_license()} approved; parcel ID {v.digits(9)}.",
                f"Business license number {v.digits(6)} renewed.",
            ),
        )
    yield from _record_negatives()


def _record_negatives() -> Iterator[Case]:
    none: frozenset[str] = frozenset()
    texts = [
        (
            "Mental health awareness month: free counseling is available for depression and anxiety disorder. "
            "Call the Employee Assistance Program."
        ),
        "Flu shot clinic on Tuesday in Room 104; bring your insurance card. Diabetes screening is also offered.",
        "The wastewater treatment plant permit, section C40.1 and E11.9 of the state code, requires quarterly lab results.",
        "Room E11.9 and B12.5 are booked for the budget workshop.",
        "All staff must complete FERPA training by Friday; it covers education records, grades and discipline.",
        "Grade 5 art show tonight! Parents and guardians welcome. Report cards go home next week.",
        "Transcript of the May 3 council meeting is attached.",
        "Reminder: annual performance reviews are due Friday. Use the new evaluation form on the intranet.",
        "Job posting: Civil Engineer II, salary range $72,000 - $88,000, overtime eligible.",
        "Article 12 of the union contract sets out the grievance procedure and the steps for discipline.",
        "CJIS security awareness training is due by the end of the month for all dispatch staff.",
        "The NCIC terminal will be down for maintenance tonight from 2 to 4 a.m.",
        "Police department budget hearing: overtime, booking room renovation and fingerprint scanner replacement.",
        "Name: Dana Whitfield\nTitle: Director of Public Works\nPhone: 860-555-0142",
        "Student art show Friday; students from grade 3 will perform. Student council elections next week.",
        "Patient parking is closed on Saturday for repaving.",
        "The race for mayor: candidates debate on Thursday. Sex education curriculum review on the agenda.",
    ]
    for i, text in enumerate(texts):
        yield Case(f"neg-records-{i}", none, tuple(text.split("\n")))
    yield Case(
        "neg-staff-list",
        none,
        rows=(
            ("Name", "Title", "Phone"),
            ("Dana Whitfield", "Director", "860-555-0142"),
            ("Lee Park", "Deputy Director", "860-555-0143"),
        ),
    )
    yield Case(
        "neg-schedule",
        none,
        rows=(
            ("Student Group", "Room", "Time"),
            ("Grade 5 Chorus", "Gym", "10:00"),
            ("Grade 6 Band", "Auditorium", "11:00"),
        ),
    )


# -- real mail ---------------------------------------------------------------------------------


def real_messages() -> list[tuple[str, bytes, frozenset[str]]]:
    """CPython's email test messages and mail-parser's corpus: real mail, labelled by reading it.

    mail_test_4 (a payment notice) gives a real bank account number with its
    bank; every other message holds none of the families.
    """
    spec = importlib.util.find_spec("test.test_email")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("CPython's test suite is missing: install libpython3.11-testsuite")
    paths = sorted(Path(next(iter(spec.submodule_search_locations)), "data").glob("msg_*.txt"))
    paths += sorted(path for path in (DATA / "mail-parser").iterdir() if path.name.startswith("mail_"))
    return [
        (path.name, path.read_bytes(), frozenset({"bank"}) if path.name == "mail_test_4" else frozenset())
        for path in paths
    ]


# -- rendering --------------------------------------------------------------------------------------


def render(case: Case, container: str) -> bytes:
    """The case as a whole message, its content in the given container."""
    text = "\n".join(case.lines) if case.lines else "\n".join("\t".join(row) for row in case.rows)
    kind, _, member = container.partition(":")
    if kind == "body":
        return files.message(text + "\n")
    name, data, ctype = _file(case, member or kind)
    if kind == "zip":
        return files.message(attachments=[("records.zip", files.zip_plain({name: data}), "application/zip")])
    return files.message(attachments=[(name, data, ctype)])


def _file(case: Case, kind: str) -> tuple[str, bytes, str]:
    makers: dict[str, Callable[[], tuple[str, bytes, str]]] = {
        "docx": lambda: ("notes.docx", files.docx(list(case.lines)), files.DOCX),
        "pdf": lambda: ("notes.pdf", files.pdf(list(case.lines)), "application/pdf"),
        "txt": lambda: ("notes.txt", "\n".join(case.lines).encode(), "text/plain"),
        "xlsx": lambda: ("records.xlsx", files.xlsx({"Sheet1": case.rows}), files.XLSX),
        "csv": lambda: ("records.csv", files.csv_bytes(case.rows), "text/csv"),
    }
    return makers[kind]()


def corpus(seed: int = 20261123) -> list[Case]:
    values = Values(seed)
    cases: list[Case] = []
    for make in (
        ssn_cases,
        card_cases,
        bank_cases,
        license_cases,
        health_cases,
        student_cases,
        personnel_cases,
        cjis_cases,
        negative_cases,
    ):
        cases.extend(make(values))
    return cases
