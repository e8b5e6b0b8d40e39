"""The Sendmail milter protocol (version 6) on the wire: packets in, replies out.

Every packet is a 4-byte big-endian length (the command byte plus its data),
one command byte, then the data. Only framing and field layout live here; what
the gateway does with a message is in milter/intake/milter_listener.py.
A packet that does not parse raises MilterProtocolError: the listener closes
that connection and carries on serving the others.

No library fits: pymilter builds against libmilter (C, libmilter-dev);
python-libmilter is thread-based and unmaintained since 2013; purepythonmilter
(asyncio) is a 0.x beta that answers each step itself, while the gateway must
send SMFIR_PROGRESS and its own replies while the pipeline runs.
"""

from __future__ import annotations

import asyncio
import struct
from dataclasses import dataclass

VERSION = 6
MAX_PACKET = 1024 * 1024  # Postfix sends body chunks of at most 64 KiB and headers under header_size_limit

# Commands (MTA -> milter)
ABORT = b"A"
BODY = b"B"
CONNECT = b"C"
MACRO = b"D"
BODYEOB = b"E"
HELO = b"H"
QUIT_NC = b"K"
HEADER = b"L"
MAIL = b"M"
EOH = b"N"
OPTNEG = b"O"
QUIT = b"Q"
RCPT = b"R"
DATA = b"T"
UNKNOWN = b"U"

# Replies (milter -> MTA)
ADDRCPT = b"+"
DELRCPT = b"-"
ACCEPT = b"a"
REPLBODY = b"b"
CONTINUE = b"c"
DISCARD = b"d"
ADDHEADER = b"h"
INSHEADER = b"i"
CHGHEADER = b"m"
PROGRESS = b"p"
QUARANTINE = b"q"
REJECT = b"r"
TEMPFAIL = b"t"
REPLYCODE = b"y"

# Actions the milter may take (SMFIF_*)
ADD_HEADERS = 0x01
CHANGE_BODY = 0x02
ADD_RCPT = 0x04
DELETE_RCPT = 0x08
CHANGE_HEADERS = 0x10
QUARANTINE_ACTION = 0x20

# Protocol steps (SMFIP_*)
NO_UNKNOWN = 0x100
NO_DATA = 0x200
HEADER_LEADING_SPACE = 0x100000  # header values arrive with their leading white space, byte for byte

WANTED_ACTIONS = ADD_HEADERS | CHANGE_BODY | DELETE_RCPT | CHANGE_HEADERS
WANTED_STEPS = NO_UNKNOWN | NO_DATA | HEADER_LEADING_SPACE  # and a reply to every other step
NEEDED_ACTIONS = ADD_HEADERS | CHANGE_BODY | DELETE_RCPT | CHANGE_HEADERS  # without these a message cannot be handled

_LENGTH = struct.Struct(">I")
_OPTNEG = struct.Struct(">III")


class MilterProtocolError(Exception):
    """The peer sent something that is not the milter protocol; the connection is closed."""


@dataclass(frozen=True)
class Packet:
    command: bytes
    data: bytes


async def read_packet(reader: asyncio.StreamReader) -> Packet | None:
    """The next packet, or None when the peer closed the connection between packets."""
    try:
        head = await reader.readexactly(4)
    except asyncio.IncompleteReadError as exc:
        if exc.partial:
            raise MilterProtocolError("the connection closed inside a packet length") from None
        return None
    (length,) = _LENGTH.unpack(head)
    if length < 1 or length > MAX_PACKET:
        raise MilterProtocolError(f"a packet length of {length} bytes (1 to {MAX_PACKET} allowed)")
    try:
        body = await reader.readexactly(length)
    except asyncio.IncompleteReadError:
        raise MilterProtocolError(f"the connection closed inside a {length}-byte packet") from None
    return Packet(body[:1], body[1:])


def packet(command: bytes, data: bytes = b"") -> bytes:
    return _LENGTH.pack(len(data) + 1) + command + data


def strings(data: bytes, count: int | None = None) -> list[bytes]:
    """NUL-terminated fields; `count` of them exactly when given."""
    if not data.endswith(b"\0"):
        raise MilterProtocolError("a string field is not NUL-terminated")
    fields = data[:-1].split(b"\0")
    if count is not None and len(fields) != count:
        raise MilterProtocolError(f"expected {count} string fields, found {len(fields)}")
    return fields


def text(field: bytes) -> str:
    return field.decode("utf-8", "surrogateescape")


# -- commands -----------------------------------------------------------------


@dataclass(frozen=True)
class Negotiation:
    version: int
    actions: int
    steps: int


def parse_optneg(data: bytes) -> Negotiation:
    if len(data) < _OPTNEG.size:
        raise MilterProtocolError(f"an option negotiation of {len(data)} bytes (12 needed)")
    return Negotiation(*_OPTNEG.unpack_from(data))


def parse_macros(data: bytes) -> tuple[bytes, dict[str, str]]:
    """(the command they belong to, {name: value}); names lose their braces: {auth_authen} -> auth_authen."""
    if not data:
        raise MilterProtocolError("a macro packet without its command")
    fields = strings(data[1:]) if len(data) > 1 else []
    if len(fields) % 2:
        raise MilterProtocolError("a macro name without a value")
    pairs = {text(fields[i]).strip("{}"): text(fields[i + 1]) for i in range(0, len(fields), 2)}
    return data[:1], pairs


@dataclass(frozen=True)
class Connect:
    hostname: str
    family: str  # "4", "6", "L" (unix socket), "U" (unknown)
    port: int
    address: str


def parse_connect(data: bytes) -> Connect:
    end = data.find(b"\0")
    if end < 0 or len(data) < end + 2:
        raise MilterProtocolError("a connect packet without host name and family")
    hostname, family = text(data[:end]), chr(data[end + 1])
    rest = data[end + 2 :]
    if family == "U":
        return Connect(hostname, family, 0, "")
    if len(rest) < 3:
        raise MilterProtocolError("a connect packet without port and address")
    (port,) = struct.unpack(">H", rest[:2])
    return Connect(hostname, family, port, text(strings(rest[2:])[0]))


def parse_address(data: bytes) -> tuple[str, list[str]]:
    """MAIL and RCPT: the address without its angle brackets, then the ESMTP parameters."""
    fields = [text(f) for f in strings(data)]
    address = fields[0].strip()
    if address.startswith("<") and address.endswith(">"):
        address = address[1:-1]
    return address, fields[1:]


def parse_header(data: bytes) -> tuple[str, str]:
    name, value = strings(data, 2)
    if not name:
        raise MilterProtocolError("a header without a name")
    return text(name), text(value)


# -- replies ------------------------------------------------------------------


def optneg_reply(offered: Negotiation) -> bytes:
    """Our half of the negotiation: the actions we use and the steps we skip, within what the MTA offers."""
    return packet(OPTNEG, _OPTNEG.pack(VERSION, offered.actions & WANTED_ACTIONS, offered.steps & WANTED_STEPS))


def _z(value: str) -> bytes:
    return value.encode("utf-8", "surrogateescape").replace(b"\0", b"") + b"\0"


def reply_code(reply: str) -> bytes:
    """A full SMTP reply ("550 5.7.1 text", or several CRLF-joined lines) for the MTA to send."""
    if reply[:1] not in ("4", "5"):
        raise ValueError(f"a milter reply code must be 4xx or 5xx, not {reply[:3]!r}")
    return packet(REPLYCODE, _z(reply))


def add_header(name: str, value: str) -> bytes:
    return packet(ADDHEADER, _z(name) + _z(value))


def insert_header(index: int, name: str, value: str) -> bytes:
    return packet(INSHEADER, _LENGTH.pack(index) + _z(name) + _z(value))


def change_header(index: int, name: str, value: str) -> bytes:
    """Replace the `index`-th (from 1) header called `name`; an empty value deletes it."""
    return packet(CHGHEADER, _LENGTH.pack(index) + _z(name) + _z(value))


def delete_recipient(address: str) -> bytes:
    return packet(DELRCPT, _z(f"<{address}>"))


def replace_body(chunk: bytes) -> bytes:
    return packet(REPLBODY, chunk)
