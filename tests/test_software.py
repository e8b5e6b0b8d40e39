"""No software by email: programs, scripts, installers, disk images and macro documents, by content and by name, at any depth.

Every file here is real: ClamAV's test PE (clam.exe), oletools' macro
documents, rarfile's archives (tests/data/software/README.md), zips, 7z and
AES zips built with the real libraries, and the two zip bombs built as their
authors describe them (tests/test_archives.py). The rules run through the
real Pipeline, as for a message over SMTP; one test goes over SMTP itself.
"""

from __future__ import annotations

import asyncio
import io
import time
import tracemalloc
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import pyzipper

from milter.config import load_config
from milter.intake.pipeline import Decision, Pipeline
from milter.kernel.directory import load_directory
from milter.mail.message import Envelope, Message
from quarantine import holds
from tests.conftest import write_config
from tests.support.quarantine_helpers import PDF, STRANGER, in_thread, mail, pdf, send, zip_of
from tests.test_archives import nested_like_42_zip, overlapping_zip_bomb, seven_zip_of

DATA = Path(__file__).resolve().parent / "data" / "software"
CLAM_EXE = Path("/usr/share/clamav-testfiles/clam.exe")
PARTNER = "billing@partner.example.org"  # on the partners list in these tests: known to everyone
OCTET = "application/octet-stream"


def run(
    tmp_path: Path,
    raw: bytes,
    sender: str = STRANGER,
    extra: dict[str, Any] | None = None,
    rcpts: tuple[str, ...] = ("sortiz@example.gov",),
    limits: dict[str, Any] | None = None,
    direction: str = "inbound",
) -> tuple[Decision, Message]:
    policies = {
        "unknown_sender": {"mode": "enforce", "partners": {"senders": ["partner.example.org"]}},
        **(extra or {}),
    }
    path = write_config(
        tmp_path / "config",
        f"sqlite:///{tmp_path / 'unused.db'}",
        "maildir:/nonexistent",
        {"policies": policies, "limits": limits or {}},
    )
    config = load_config(path)
    message = Message(
        Envelope(sender, rcpts, client_ip="203.0.113.7", helo="mx.example.org"), raw, direction, config.settings.limits
    )
    with ThreadPoolExecutor(4) as executor:
        pipeline = Pipeline(config, load_directory(config.directory_path), executor=executor)
        decision = in_thread(asyncio.run, pipeline.run(message))
    return decision, message


def software(decision: Decision) -> list[Any]:
    return [f for f in decision.findings if f.policy == "software"]


def aes_zip(files: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with pyzipper.AESZipFile(buffer, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES) as archive:
        archive.setpassword(b"a long shared secret")
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


# -- the outcomes the issue names -------------------------------------------------------


def test_an_exe_renamed_pdf_from_a_stranger_is_refused_over_smtp(gateway, sink):
    raw = mail(("invoice.pdf", CLAM_EXE.read_bytes(), PDF), subject="Invoice")
    code, reply = send(gateway.port, raw, STRANGER, ["sortiz@example.gov"])
    assert code == 554
    assert reply.startswith("5.7.1 invoice.pdf is a program (by content: PE32 executable")
    assert "does not allow software to arrive by e-mail (rule software, executable)" in reply
    with gateway.runtime.database.read() as connection:
        assert holds.listing(connection, state=None) == []  # refused outright: nothing waits, nothing delivered
    assert sink.messages == []


@pytest.mark.parametrize("direction", ["internal", "outbound"])
def test_an_agency_sender_is_told_what_to_do_not_to_ask_the_sender(tmp_path, direction):
    everywhere = {"software": {"directions": ["inbound", "internal", "outbound"]}}  # outbound is off by default
    decision, _ = run(
        tmp_path, mail(("setup.exe", CLAM_EXE.read_bytes(), PDF)), "sortiz@example.gov", everywhere, direction=direction
    )
    [finding] = software(decision)
    assert "does not allow software to be sent by e-mail" in finding.reason
    assert "Share the file another way instead" in finding.reason and "ask the sender" not in finding.reason


def test_an_inbound_recipient_is_told_to_ask_the_sender(tmp_path):
    decision, _ = run(tmp_path, mail(("setup.exe", CLAM_EXE.read_bytes(), PDF)))
    [finding] = software(decision)
    assert "arrive by e-mail" in finding.reason and "ask the sender to share it another way" in finding.reason


def test_a_js_inside_a_zip_inside_a_zip_is_refused_and_named_by_where_it_hides(tmp_path):
    outer = zip_of([("docs/inner.zip", zip_of([("readme.txt", b"hello"), ("run.js", b'WScript.Echo("hi");')]))])
    decision, _ = run(tmp_path, mail(("outer.zip", outer, "application/zip")))
    assert decision.action == "reject" and decision.reply.startswith("554 5.7.1 ")
    [finding] = software(decision)
    assert finding.reason.startswith("run.js in docs/inner.zip in outer.zip is a script or shortcut (by name: .js)")
    assert finding.evidence == ("run.js in docs/inner.zip in outer.zip: by name: .js",)


@pytest.mark.parametrize(
    ("name", "macros"), [("macro-vba.docm", "VBA macros"), ("macro-excel4.xls", "Excel 4.0 macros")]
)
def test_office_documents_with_macros_are_refused_even_from_a_partner(tmp_path, name, macros):
    decision, _ = run(tmp_path, mail((name, (DATA / name).read_bytes(), OCTET), sender=PARTNER), sender=PARTNER)
    assert decision.action == "reject"
    [finding] = software(decision)
    assert finding.reason.startswith(f"{name} is an Office document with macros (by content: {macros})")


def test_a_macro_enabled_format_without_macros_is_delivered_from_a_partner(tmp_path):
    decision, _ = run(
        tmp_path,
        mail(("no-macros.docm", (DATA / "no-macros.docm").read_bytes(), OCTET), sender=PARTNER),
        sender=PARTNER,
    )
    assert (decision.action, software(decision)) == ("deliver", [])


def test_an_encrypted_zip_from_a_stranger_waits_for_it_and_says_it_could_not_be_checked(tmp_path):
    raw = mail(("statements.zip", aes_zip([("march.pdf", pdf())]), "application/zip"))
    decision, _ = run(tmp_path, raw)
    assert (decision.action, decision.hold_queue) == ("hold", "quarantine")
    [finding] = [f for f in decision.findings if f.policy == "unknown_sender"]
    assert (
        "statements.zip, Zip archive data" in finding.reason
        and "encrypted: 1 file inside could not be checked for software or viruses" in finding.reason
    )
    assert software(decision) == []  # the name inside is harmless: no software finding


def test_an_encrypted_zip_from_a_partner_is_delivered_but_a_program_inside_one_is_refused_by_name(tmp_path):
    harmless = mail(("statements.zip", aes_zip([("march.pdf", pdf())]), "application/zip"), sender=PARTNER)
    assert run(tmp_path, harmless, sender=PARTNER)[0].action == "deliver"
    program = mail(("statements.zip", aes_zip([("statements.pdf.exe", b"MZ...")]), "application/zip"), sender=PARTNER)
    decision, _ = run(tmp_path, program, sender=PARTNER)
    assert decision.action == "reject"
    assert software(decision)[0].reason.startswith("statements.pdf.exe in statements.zip is a program (by name: .exe)")


def test_every_encrypted_member_can_be_sent_to_it_instead(tmp_path):
    raw = mail(("statements.zip", aes_zip([("march.pdf", pdf())]), "application/zip"), sender=PARTNER)
    decision, _ = run(tmp_path, raw, sender=PARTNER, extra={"software": {"encrypted_members": "hold"}})
    assert (decision.action, decision.hold_queue) == ("hold", "quarantine")
    assert "encrypted: its contents cannot be checked" in software(decision)[0].reason


@pytest.mark.parametrize("bomb", ["42.zip", "overlapping"])
def test_zip_bombs_are_quarantined_in_bounded_time_and_memory_whoever_sends_them(tmp_path, bomb):
    data = nested_like_42_zip(levels=6) if bomb == "42.zip" else overlapping_zip_bomb(files=100, kernel_size=4 << 20)[0]
    raw = mail(("archive.zip", data, "application/zip"), sender=PARTNER)
    limits = {"archive_expanded": "32MiB", "extract_time": "2s"}  # the caps that bound the work; defaults: 200MiB, 5s
    tracemalloc.start()
    started = time.monotonic()
    try:
        decision, _ = run(tmp_path, raw, sender=PARTNER, limits=limits)
        seconds, peak = time.monotonic() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert (decision.action, decision.hold_queue) == ("hold", "quarantine")
    [finding] = [f for f in decision.findings if f.policy == "inspection"]  # the inspection rule holds caps ...
    expected = "nested deeper than" if bomb == "42.zip" else "overlap"
    assert expected in finding.reason and finding.reason.startswith("The gateway could not fully inspect this message")
    assert software(decision) == []  # ... and the software rule does not say it again
    assert seconds < 15 and peak < 32 * 2**20 + 60_000_000, (seconds, peak)  # tracemalloc itself slows this down


def test_a_7z_whose_member_list_is_encrypted_is_quarantined_with_that_reason(tmp_path):
    locked = seven_zip_of([("payload.txt", b"hello")], password="pw", header_encryption=True)
    decision, _ = run(
        tmp_path, mail(("locked.7z", locked, "application/x-7z-compressed"), sender=PARTNER), sender=PARTNER
    )
    assert (decision.action, decision.hold_queue) == ("hold", "quarantine")
    [finding] = software(decision)
    assert "the 7z member list is encrypted; its contents cannot be listed" in finding.reason


# -- RAR, listed with rarfile ---------------------------------------------------------------


def test_rar_members_are_listed_and_stored_ones_read(tmp_path):
    decision, message = run(
        tmp_path, mail(("files.rar", (DATA / "rar3-subdirs.rar").read_bytes(), OCTET), sender=PARTNER), sender=PARTNER
    )
    assert sorted(m.name for m in message.archive_members) == [
        "sub/dir1/file1.txt",
        "sub/dir2/file2.txt",
        "sub/with space/long fn.txt",
        "sub/üȵĩöḋè/file.txt",
    ]
    assert all(m.true_type.mime == "text/plain" for m in message.archive_members)
    assert decision.action == "deliver"


def test_a_rar_whose_member_list_is_encrypted_goes_to_it(tmp_path):
    decision, _ = run(
        tmp_path, mail(("locked.rar", (DATA / "rar5-hpsw.rar").read_bytes(), OCTET), sender=PARTNER), sender=PARTNER
    )
    assert (decision.action, decision.hold_queue) == ("hold", "quarantine")
    assert "locked.rar: the RAR member list is encrypted; its contents cannot be listed" in software(decision)[0].reason


def test_compressed_rar_members_without_an_unpacker_are_listed_and_held_for_it(tmp_path):
    decision, message = run(
        tmp_path, mail(("solid.rar", (DATA / "rar3-solid.rar").read_bytes(), OCTET), sender=PARTNER), sender=PARTNER
    )
    assert [(m.name, m.true_type) for m in message.archive_members] == [("stest1.txt", None), ("stest2.txt", None)]
    assert (decision.action, decision.hold_queue) == ("hold", "quarantine")
    [finding] = [f for f in decision.findings if f.policy == "inspection"]
    assert (
        "stest1.txt: a compressed RAR member, and no RAR unpacker is installed; only its name was checked"
        in finding.reason
    )


def test_rar_member_names_are_checked_even_when_the_members_are_encrypted(tmp_path):
    decision, message = run(
        tmp_path,
        mail(("locked.rar", (DATA / "rar5-psw.rar").read_bytes(), OCTET), sender=PARTNER),
        sender=PARTNER,
        extra={"software": {"lists": {"script": str(_list(tmp_path, "txt"))}}},
    )
    assert [(m.name, m.encrypted) for m in message.archive_members] == [("stest1.txt", True), ("stest2.txt", True)]
    assert decision.action == "reject"  # .txt made a "script" extension for this test
    assert software(decision)[0].reason.startswith("stest1.txt in locked.rar, stest2.txt in locked.rar are a script")


def _list(tmp_path: Path, *extensions: str) -> Path:
    path = tmp_path / "scripts.txt"
    path.write_text("".join(f"{e}\n" for e in extensions))
    return path


# -- the kinds, by content and by name ----------------------------------------------------------

ISO = b"\0" * 32768 + b"\x01CD001\x01" + b"\0" * 2000
LNK = bytes.fromhex("4c0000000114020000000000c000000000000046") + b"\0" * 60


@pytest.mark.parametrize(
    ("name", "data", "kind", "why"),
    [
        ("notes.txt", b"#!/bin/sh\nrm -rf ~\n", "script", "by content: POSIX shell script"),
        ("cleanup.ps1", b"Remove-Item C:\\ -Recurse\n", "script", "by name: .ps1"),
        ("photo.jpg", LNK, "script", "by content: MS Windows shortcut"),
        ("disk.dat", ISO, "disk_image", "by content: ISO 9660"),
        (
            "update.dat",
            zip_of([("AppxManifest.xml", b"<Package/>"), ("app.bin", b"x")]),
            "installer",
            "by content: an MSIX/AppX installer package",
        ),
        (
            "tool.zip",
            zip_of([("META-INF/MANIFEST.MF", b"Manifest-Version: 1.0\n"), ("a/B.class", b"\xca\xfe\xba\xbe")]),
            "script",
            "by content: a Java archive",
        ),
        ("setup.msi", b"just bytes", "installer", "by name: .msi"),
        ("tool", (Path("/bin/true")).read_bytes(), "executable", "by content: ELF 64-bit"),
        ("run.exe.", b"MZ", "executable", "by name: .exe"),
    ],
)
def test_each_kind_of_software_is_found(tmp_path, name, data, kind, why):
    decision, _ = run(tmp_path, mail((name, data, OCTET), sender=PARTNER), sender=PARTNER)
    findings = software(decision)
    assert [f.reason.split("(rule software, ")[1].split(")")[0] for f in findings] == [kind]
    assert any(item.split(": ", 1)[1].startswith(why) for item in findings[0].evidence), findings[0].evidence


def test_each_kind_has_its_own_action(tmp_path):
    raw = mail(("macro-vba.docm", (DATA / "macro-vba.docm").read_bytes(), OCTET), sender=PARTNER)
    decision, _ = run(tmp_path, raw, sender=PARTNER, extra={"software": {"actions": {"macro": "hold"}}})
    assert (decision.action, decision.hold_queue) == ("hold", "quarantine")
    decision, _ = run(tmp_path, raw, sender=PARTNER, extra={"software": {"actions": {"macro": "monitor"}}})
    assert decision.action == "deliver" and software(decision)[0].action.name == "DELIVER"


def test_ordinary_attachments_from_a_partner_pass(tmp_path):
    raw = mail(
        ("quote.pdf", pdf(), PDF),
        ("prices.zip", zip_of([("prices.csv", b"item,price\nsalt,40\n")]), "application/zip"),
        sender=PARTNER,
    )
    decision, _ = run(tmp_path, raw, sender=PARTNER)
    assert decision.action == "deliver"
    assert [f for f in decision.findings if f.policy in ("software", "unknown_sender", "virus", "inspection")] == []
