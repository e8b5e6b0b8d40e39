"""Inbound, outbound or internal: from the directory's domains and who the client is.

A client inside the agency (a trusted mail server, or an authenticated user)
sends outbound when any recipient is outside the local domains, internal
otherwise; every other client sends inbound (and may only reach local domains).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

from milter.kernel.directory import Directory
from milter.mail.message import Direction, Envelope


def is_trusted(client_ip: str, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        address = ipaddress.ip_address(client_ip.split("%", 1)[0])
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address in network for network in networks)


def direction_of(envelope: Envelope, directory: Directory) -> Direction:
    if not envelope.inside:
        return "inbound"
    if all(directory.is_local(rcpt) for rcpt in envelope.rcpt_to):
        return "internal"
    return "outbound"
