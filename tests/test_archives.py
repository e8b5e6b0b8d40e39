"""Archive members at every depth, with true types, encryption, and caps that stop bombs in bounded time and memory.

Every archive is built here with the real libraries (zipfile, tarfile, gzip,
bz2, lzma, py7zr, pyzipper) or, for the two zip bombs and ZipCrypto, byte by
byte from the ZIP format (APPNOTE.TXT) as the bombs' authors describe them.
"""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import os
import struct
import tarfile
import time
import tracemalloc
import zipfile
import zlib
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import py7zr
import pytest
import pyzipper

from milter.mail import containers, filetypes
from milter.mail.containers import Budget, Entry, Trouble
from milter.mail.filetypes import true_type
from milter.mail.message import Message
from milter.mail.settings import LimitSettings
from tests.test_message import make_message

CLAMAV_TESTFILES = Path(
    "/usr/share/clamav-testfiles"
)  # Debian's clamav-testfiles: harmless, real executables and archives
PE_MIME = "application/vnd.microsoft.portable-executable"


def clam_exe() -> bytes:
    # A real PE made by the ClamAV project as a test signature; .ci/run installs clamav-testfiles.
    return (CLAMAV_TESTFILES / "clam.exe").read_bytes()


def zip_of(files: list[tuple[str, bytes]], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", method) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return buffer.getvalue()


def tar_of(files: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as archive:
        for name, data in files:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def seven_zip_of(files: list[tuple[str, bytes]], password: str | None = None, header_encryption: bool = False) -> bytes:
    buffer = io.BytesIO()
    with py7zr.SevenZipFile(buffer, "w", password=password, header_encryption=header_encryption) as archive:
        for name, data in files:
            archive.writestr(data, name)
    return buffer.getvalue()


def mail_with(*files: tuple[str, bytes], **limits: Any) -> Message:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@example.com", "b@example.gov", "files"
    msg.set_content("See attached.")
    for name, data in files:
        msg.add_attachment(data, maintype="application", subtype="octet-stream", filename=name)
    return make_message(msg, **limits)


def walk(data: bytes, label: str = "file", **limits: Any) -> list[Entry | Trouble]:
    return list(containers.walk(data, f"2/{label}", label, true_type(data, label), Budget(LimitSettings(**limits))))


def troubles(items: list[Entry | Trouble]) -> list[tuple[str, str]]:
    return [(item.kind, item.detail) for item in items if isinstance(item, Trouble)]


# -- the ZIP format by hand, for ZipCrypto and the bombs ----------------------------


def local_header(name: bytes, crc: int, packed: int, size: int, method: int, flags: int = 0) -> bytes:
    return (
        struct.pack("<4sHHHHHIIIHH", b"PK\x03\x04", 20, flags, method, 0, 0x21, crc, packed, size, len(name), 0) + name
    )


def central_header(name: bytes, crc: int, packed: int, size: int, method: int, offset: int, flags: int = 0) -> bytes:
    return (
        struct.pack(
            "<4sHHHHHHIIIHHHHHII",
            b"PK\x01\x02",
            20,
            20,
            flags,
            method,
            0,
            0x21,
            crc,
            packed,
            size,
            len(name),
            0,
            0,
            0,
            0,
            0,
            offset,
        )
        + name
    )


def end_record(count: int, directory_size: int, directory_offset: int) -> bytes:
    return struct.pack("<4sHHHHIIH", b"PK\x05\x06", 0, 0, count, count, directory_size, directory_offset, 0)


def assemble(body: bytes, centrals: list[bytes]) -> bytes:
    directory = b"".join(centrals)
    return body + directory + end_record(len(centrals), len(directory), len(body))


def zipcrypto_zip(name: str, data: bytes, password: bytes) -> bytes:
    """One stored member under traditional PKWARE encryption (APPNOTE 6.1)."""
    keys = [0x12345678, 0x23456789, 0x34567890]

    def crc_byte(crc: int, byte: int) -> int:
        return zlib.crc32(bytes([byte]), crc ^ 0xFFFFFFFF) ^ 0xFFFFFFFF

    def update(byte: int) -> None:
        keys[0] = crc_byte(keys[0], byte)
        keys[1] = ((keys[1] + (keys[0] & 0xFF)) * 134775813 + 1) & 0xFFFFFFFF
        keys[2] = crc_byte(keys[2], keys[1] >> 24)

    def encrypt(plain: bytes) -> bytes:
        out = bytearray()
        for byte in plain:
            temp = (keys[2] | 2) & 0xFFFF
            out.append(byte ^ (((temp * (temp ^ 1)) >> 8) & 0xFF))
            update(byte)
        return bytes(out)

    for byte in password:
        update(byte)
    crc = zlib.crc32(data)
    sealed = encrypt(os.urandom(11) + bytes([crc >> 24]) + data)
    header = local_header(name.encode(), crc, len(sealed), len(data), zipfile.ZIP_STORED, flags=0x1)
    return assemble(
        header + sealed, [central_header(name.encode(), crc, len(sealed), len(data), zipfile.ZIP_STORED, 0, flags=0x1)]
    )


def overlapping_zip_bomb(files: int, kernel_size: int) -> tuple[bytes, list[bytes]]:
    """David Fifield's "A better zip bomb" (2019), quoted overlap: every member's data runs to the end of the file.

    Layout: LFH_0 Q_0 LFH_1 Q_1 ... LFH_n-1 KERNEL, where KERNEL is the final
    DEFLATE block of kernel_size zero bytes and Q_i is a non-final stored
    block that quotes LFH_i+1. Member i therefore unpacks to LFH_i+1 ... LFH_n-1
    followed by the kernel's output. Returns the zip and each member's content.
    """
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    kernel = deflate.compress(b"\0" * kernel_size) + deflate.flush()
    names = [f"{index:03d}.txt".encode() for index in range(files)]
    headers: list[bytes] = [b""] * files
    contents: list[bytes] = [b""] * files
    packed = len(kernel)
    for index in reversed(range(files)):  # each header holds the CRC of everything after it
        quoted = b"".join(headers[index + 1 :])
        crc = zlib.crc32(b"\0" * kernel_size, zlib.crc32(quoted))
        size = len(quoted) + kernel_size
        headers[index] = local_header(names[index], crc, packed, size, zipfile.ZIP_DEFLATED)
        contents[index] = quoted
        packed += 5 + len(headers[index])  # the previous member also quotes this header
    body, centrals, offset = b"", [], 0
    for index in range(files):
        quote = (
            b""
            if index == files - 1
            else struct.pack("<BHH", 0, len(headers[index + 1]), 0xFFFF ^ len(headers[index + 1]))
        )
        crc, packed, size = struct.unpack("<III", headers[index][14:26])
        centrals.append(central_header(names[index], crc, packed, size, zipfile.ZIP_DEFLATED, offset))
        body += headers[index] + quote
        offset = len(body)
    return assemble(body + kernel, centrals), [c + b"\0" * kernel_size for c in contents]


def nested_like_42_zip(levels: int, copies: int = 16, leaf_size: int = 1 << 20) -> bytes:
    """42.zip's shape: each level holds `copies` copies of the level below; the leaves are zeros."""
    level = zip_of([(f"{index}.bin", b"\0" * leaf_size) for index in range(copies)])
    for depth in range(2, levels + 1):
        level = zip_of([(f"l{depth}-{index}.zip", level) for index in range(copies)])
    return level


def measured(compute: Any) -> tuple[Any, float, int]:
    tracemalloc.start()
    started = time.monotonic()
    try:
        result = compute()
        return result, time.monotonic() - started, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


# -- members, depths and true types -------------------------------------------------


def test_an_exe_named_pdf_in_a_zip_in_a_zip_is_found_as_a_pe():
    inner = zip_of([("invoice.pdf", clam_exe()), ("readme.txt", b"hello")])
    outer = zip_of([("inner.zip", inner)])
    message = mail_with(("outer.zip", outer))
    found = {m.path: m for m in message.archive_members}
    assert sorted(found) == [
        "2/outer.zip/inner.zip",
        "2/outer.zip/inner.zip/invoice.pdf",
        "2/outer.zip/inner.zip/readme.txt",
    ]
    disguised = found["2/outer.zip/inner.zip/invoice.pdf"]
    assert (disguised.depth, disguised.true_type.mime, disguised.true_type.name_disagrees) == (2, PE_MIME, True)
    assert found["2/outer.zip/inner.zip"].true_type.mime == "application/zip"
    assert message.problems == []


@pytest.mark.parametrize("wrap", ["tar", "tar.gz", "tar.bz2", "tar.xz", "7z", "gz", "bz2", "xz"])
def test_each_archive_format_lists_its_members_with_true_types(wrap):
    files = [("tool.dat", clam_exe()), ("notes.txt", b"plain words\n")]
    tarred = tar_of(files)
    data = {
        "tar": tarred,
        "tar.gz": gzip.compress(tarred),
        "tar.bz2": bz2.compress(tarred),
        "tar.xz": lzma.compress(tarred),
        "7z": seven_zip_of(files),
        "gz": gzip.compress(clam_exe()),
        "bz2": bz2.compress(clam_exe()),
        "xz": lzma.compress(clam_exe()),
    }[wrap]
    message = mail_with((f"bundle.{wrap}", data))
    listed = {(m.name, m.true_type.mime) for m in message.archive_members}
    if wrap in ("gz", "bz2", "xz"):
        assert listed == {("bundle", PE_MIME)}
    else:
        assert listed == {("tool.dat", PE_MIME), ("notes.txt", "text/plain")}
    assert message.problems == []


def test_every_member_of_a_concatenated_gzip_is_read():
    # `gzip -c a b > c` (and pigz, pbzip2): an unpacker outputs both; so must the inspection.
    data = gzip.compress(b"first member, harmless\n") + gzip.compress(clam_exe())
    (entry,) = (item for item in walk(data, "notes.gz") if isinstance(item, Entry))
    assert entry.data.startswith(b"first member, harmless\n")
    assert clam_exe() in entry.data


# -- encryption ----------------------------------------------------------------------


def test_zipcrypto_members_are_reported_encrypted_without_error():
    data = zipcrypto_zip("payroll.xlsx", b"secret numbers", b"hunter2")
    with zipfile.ZipFile(io.BytesIO(data)) as check:  # the hand-built zip is real ZipCrypto: zipfile decrypts it
        assert check.read("payroll.xlsx", pwd=b"hunter2") == b"secret numbers"
    message = mail_with(("payroll.zip", data))
    assert [(m.name, m.encrypted, m.true_type) for m in message.archive_members] == [("payroll.xlsx", True, None)]
    assert [(p.kind, p.where) for p in message.problems] == [("encrypted", "2/payroll.zip/payroll.xlsx")]


def test_aes_zip_members_are_reported_encrypted_without_error():
    buffer = io.BytesIO()
    with pyzipper.AESZipFile(buffer, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES) as archive:
        archive.setpassword(b"hunter2")
        archive.writestr("ssn.csv", "name,ssn\nAna,123-45-6789\n")
    message = mail_with(("records.zip", buffer.getvalue()))
    assert [(m.name, m.encrypted) for m in message.archive_members] == [("ssn.csv", True)]
    assert [p.kind for p in message.problems] == ["encrypted"]


def test_a_7z_with_encrypted_contents_lists_its_members_as_encrypted():
    message = mail_with(("locked.7z", seven_zip_of([("a.txt", b"hello")], password="pw")))
    assert [(m.name, m.encrypted) for m in message.archive_members] == [("a.txt", True)]
    assert [p.kind for p in message.problems] == ["encrypted"]


def test_a_7z_with_an_encrypted_header_is_an_encrypted_problem():
    message = mail_with(("locked.7z", seven_zip_of([("a.txt", b"hello")], password="pw", header_encryption=True)))
    assert message.archive_members == []
    assert [(p.where, p.kind) for p in message.problems] == [("2/locked.7z", "encrypted")]


# -- bombs and caps -------------------------------------------------------------------


def test_fifields_overlapping_zip_bomb_is_built_correctly():
    # Small enough to unpack in full: zipfile (which does not look for overlaps on 3.11) checks every CRC.
    data, contents = overlapping_zip_bomb(files=3, kernel_size=1000)
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        assert [archive.read(info) for info in archive.infolist()] == contents
    assert containers.overlapping(data, zipfile.ZipFile(io.BytesIO(data)).infolist())


def test_fifields_overlapping_zip_bomb_is_stopped_in_bounded_time_and_memory():
    data, contents = overlapping_zip_bomb(files=100, kernel_size=4 << 20)  # 49 KB that unpacks to 400 MB
    assert len(data) < 60_000 and sum(map(len, contents)) > 400_000_000
    # The ratio cap is lifted so only the overlap check stands between this and 400 MB.
    message = mail_with(("bomb.zip", data), archive_ratio=1_000_000)
    members, seconds, peak = measured(lambda: message.archive_members)
    assert members == []
    assert [(p.where, p.kind) for p in message.problems] == [("2/bomb.zip", "cap")]
    assert "overlap" in message.problems[0].detail
    assert seconds < 2 and peak < 20_000_000


def test_a_42_zip_style_nested_bomb_is_stopped_by_the_caps_in_bounded_time_and_memory():
    data = nested_like_42_zip(levels=6)  # 16**6 leaves of 1 MiB: 16 TiB from about 30 KB
    assert len(data) < 64_000
    limits = {"archive_expanded": "16MiB", "extract_time": "2s"}
    message = mail_with(("42.zip", data), **limits)
    members, seconds, peak = measured(lambda: message.archive_members)
    assert seconds < 4
    assert peak < 16 * 2**20 + 30_000_000  # what it holds stays within the budget
    assert sum(len(m.data or b"") for m in members) <= 16 * 2**20
    assert "cap" in {p.kind for p in message.problems}
    assert all(m.depth <= 5 for m in members)


def test_the_depth_cap_stops_at_the_configured_level():
    data = zip_of([("bottom.txt", b"the bottom")])
    for depth in reversed(range(2, 8)):  # d2.zip is a member at depth 1 and is opened as depth 2, and so on
        data = zip_of([(f"d{depth}.zip", data)])
    items = walk(data, "deep.zip", archive_depth=3)
    assert [item.name for item in items if isinstance(item, Entry)] == ["d2.zip", "d3.zip", "d4.zip"]
    assert max(item.depth for item in items if isinstance(item, Entry)) == 3
    assert troubles(items) == [("cap", "d4.zip: archives nested deeper than 3 levels were not opened")]


def test_the_ratio_cap_stops_a_member_that_expands_too_far():
    data = zip_of([("zeros.bin", b"\0" * (5 << 20)), ("small.txt", b"fine")])
    items = walk(data, "z.zip")
    assert [(i.name) for i in items if isinstance(i, Entry)] == ["small.txt"]
    kind, detail = troubles(items)[0]
    assert kind == "cap" and detail.startswith("zeros.bin: expands") and "over the 100x limit" in detail


def test_the_ratio_cap_stops_a_gzip_that_expands_too_far():
    data = gzip.compress(b"\0" * (5 << 20))
    ceiling = max(100 * len(data), containers.RATIO_FLOOR)  # small files may always reach the 1 MiB floor
    items = walk(data, "zeros.gz")
    assert troubles(items) == [
        ("cap", f"zeros.gz: expands past {ceiling} bytes (100 times its compressed size); not inspected")
    ]


def test_the_member_count_cap_lists_the_first_members_and_says_so():
    data = zip_of([(f"f{i}.txt", b"x") for i in range(60)])
    items = walk(data, "many.zip", archive_members=50)
    assert len([i for i in items if isinstance(i, Entry)]) == 50
    assert troubles(items) == [("cap", "many.zip: 60 members, more than the 50 inspected")]


def test_the_member_count_cap_applies_to_tar_too():
    items = walk(tar_of([(f"f{i}.txt", b"x") for i in range(60)]), "many.tar", archive_members=50)
    assert len([i for i in items if isinstance(i, Entry)]) == 50
    assert troubles(items) == [("cap", "many.tar: more than 50 members; the rest were not inspected")]


def test_a_zip_whose_directory_is_far_too_long_is_not_opened():
    data = zip_of([(f"{i}", b"") for i in range(600)], method=zipfile.ZIP_STORED)
    assert troubles(walk(data, "dir.zip", archive_members=50)) == [
        ("cap", "dir.zip: far more than 50 members; not opened")
    ]


def test_all_archives_of_one_message_share_one_member_count():
    bundles = [(f"b{n}.zip", zip_of([(f"f{i}.txt", b"x") for i in range(10)])) for n in range(12)]
    message = mail_with(*bundles, archive_members=10)  # 10 x 10 members in all
    assert len(message.archive_members) == 100
    assert [(p.where, p.detail) for p in message.problems] == [
        (
            f"{part}/b{n}.zip/f0.txt",
            f"b{n}.zip: the message's archives hold more than 100 members; the rest were not inspected",
        )
        for part, n in ((12, 10), (13, 11))
    ]


def test_members_kept_in_memory_never_pass_the_expanded_budget():
    files = [(f"part{i}.bin", os.urandom(300_000)) for i in range(10)]
    message = mail_with(("big.zip", zip_of(files)), archive_expanded="1MiB")
    assert sum(len(m.data or b"") for m in message.archive_members) <= 2**20
    assert len(message.archive_members) == 3
    assert [(p.kind, p.where) for p in message.problems] == [("cap", "2/big.zip/part3.bin")]


def test_libmagic_is_given_at_most_sniff_bytes(monkeypatch):
    sizes: list[int] = []
    real = filetypes.magic.from_buffer

    def recording(buffer: bytes, mime: bool = False) -> str:
        sizes.append(len(buffer))
        return real(buffer, mime=mime)

    monkeypatch.setattr(filetypes.magic, "from_buffer", recording)
    big = os.urandom(3 * filetypes.SNIFF_BYTES)
    message = mail_with(("big.bin", big), ("bundle.zip", zip_of([("inner.bin", big)], method=zipfile.ZIP_STORED)))
    message.archive_members  # noqa: B018
    assert sizes and max(sizes) == filetypes.SNIFF_BYTES


# -- corrupt archives -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("label", "damage"),
    [
        ("cut.zip", lambda: zip_of([("a.txt", b"hello" * 100)])[:-30]),
        ("cut.tar", lambda: tar_of([("a.txt", b"x" * 5000)])[:2000]),
        ("cut.gz", lambda: gzip.compress(os.urandom(5000))[:-100]),
        ("cut.bz2", lambda: bz2.compress(os.urandom(5000))[:-100]),
        ("cut.xz", lambda: lzma.compress(os.urandom(5000))[:-100]),
        ("junk.7z", lambda: b"7z\xbc\xaf\x27\x1c" + os.urandom(200)),
    ],
)
def test_truncated_or_damaged_archives_are_corrupt(label, damage):
    message = mail_with((label, damage()))
    assert containers.is_archive(message.attachments[0].true_type)
    message.archive_members  # noqa: B018
    assert "corrupt" in {p.kind for p in message.problems}, message.problems


def test_a_zip_member_whose_data_is_damaged_fails_its_crc_and_is_corrupt():
    data = bytearray(zip_of([("a.txt", b"hello world " * 50)], method=zipfile.ZIP_STORED))
    data[40] ^= 0xFF  # inside a.txt's stored bytes
    items = walk(bytes(data), "bad.zip")
    kind, detail = troubles(items)[0]
    assert kind == "corrupt" and "Bad CRC-32" in detail


def test_unsupported_zip_methods_are_reported():
    items = walk((CLAMAV_TESTFILES / "clam.d64.zip").read_bytes(), "clam.d64.zip")  # Deflate64, made by another tool
    assert [kind for kind, _ in troubles(items)] == ["unsupported"]


# -- real zips are never flagged as overlapping -------------------------------------------


class Unseekable(io.RawIOBase):
    """A pipe-like target: zipfile then writes data descriptors after each member."""

    def __init__(self) -> None:
        self.data = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, chunk: Any) -> int:
        self.data += chunk
        return len(chunk)


def with_data_descriptors() -> bytes:
    target = Unseekable()
    with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(5):
            with archive.open(f"f{index}.txt", "w") as handle:
                handle.write(b"descriptor " * 300)
    data = bytes(target.data)
    assert all(info.flag_bits & 0x08 for info in zipfile.ZipFile(io.BytesIO(data)).infolist())
    return data


def zip64() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for index in range(3):
            with archive.open(f"big{index}.bin", "w", force_zip64=True) as handle:
                handle.write(os.urandom(1000))
    return buffer.getvalue()


def cp437_names() -> bytes:
    # Windows' own zip writes names in code page 437 without the UTF-8 flag; é is one byte there, two in UTF-8.
    data = zip_of([("cafX.txt", b"a"), ("cr\x7fme.txt", b"b"), ("plain.txt", b"c")], method=zipfile.ZIP_STORED)
    return data.replace(b"cafX.txt", b"caf\x82.txt").replace(b"cr\x7fme.txt", b"cr\x8ame.txt")


def appended_by_another_run() -> bytes:
    buffer = io.BytesIO(zip_of([("first.txt", b"one" * 100)]))
    with zipfile.ZipFile(buffer, "a", zipfile.ZIP_STORED) as archive:
        archive.writestr("second.txt", b"two" * 100)
    with zipfile.ZipFile(buffer, "a", zipfile.ZIP_BZIP2) as archive:
        archive.writestr("third.txt", b"three" * 100)
    return buffer.getvalue()


def aes_zip() -> bytes:
    buffer = io.BytesIO()
    with pyzipper.AESZipFile(buffer, "w", compression=pyzipper.ZIP_LZMA, encryption=pyzipper.WZ_AES) as archive:
        archive.setpassword(b"pw")
        for index in range(3):
            archive.writestr(f"s{index}.txt", b"secret" * 50)
    return buffer.getvalue()


def office_files() -> list[bytes]:
    import docx
    import openpyxl

    document, book = docx.Document(), openpyxl.Workbook()
    document.add_paragraph("hello")
    saved_doc, saved_book = io.BytesIO(), io.BytesIO()
    document.save(saved_doc)
    book.save(saved_book)
    return [saved_doc.getvalue(), saved_book.getvalue()]


REAL_ZIPS = {
    "data descriptors": with_data_descriptors,
    "zip64": zip64,
    "cp437 names": cp437_names,
    "appended in three runs": appended_by_another_run,
    "self-extractor prefix": lambda: b"MZ" + os.urandom(5000) + zip_of([("a.txt", b"x" * 100), ("b.txt", b"y" * 100)]),
    "archive comment": lambda: zip_of([("a.txt", b"x")])[:-2] + struct.pack("<H", 9) + b"a comment",
    "AES": aes_zip,
    "Info-ZIP (clam.zip)": lambda: (CLAMAV_TESTFILES / "clam.zip").read_bytes(),
    "Info-ZIP bzip2 (clam.bz2.zip)": lambda: (CLAMAV_TESTFILES / "clam.bz2.zip").read_bytes(),
    "python-docx": lambda: office_files()[0],
    "openpyxl": lambda: office_files()[1],
    "empty members": lambda: zip_of([("empty1", b""), ("empty2", b""), ("dir/", b"")]),
}


@pytest.mark.parametrize("make", REAL_ZIPS.values(), ids=REAL_ZIPS.keys())
def test_real_zips_are_never_flagged_as_overlapping(make):
    data = make()
    infos = zipfile.ZipFile(io.BytesIO(data)).infolist()
    assert len(infos) >= 1
    assert not containers.overlapping(data, infos)
    assert not any("overlap" in detail for _, detail in troubles(walk(data, "real.zip")))


def test_cp437_names_are_read_as_windows_wrote_them():
    names = [entry.name for entry in walk(cp437_names(), "w.zip") if isinstance(entry, Entry)]
    assert names == ["café.txt", "crème.txt", "plain.txt"]
