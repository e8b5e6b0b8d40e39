"""A real DNS server on a loopback port for tests: UDP and TCP, answers from zone data.

The gateway's production resolver (dnspython's async stub resolver) asks it
as it would ask the agency's resolver, so tests go through real DNS
messages, truncation and TCP retry, NXDOMAIN with an SOA, timeouts and
SERVFAIL. Zone data has the ZoneResolver's shape: {name: [(TYPE, value[, ttl])]};
("TIMEOUT", None) makes the server ignore questions about a name, and
("SERVFAIL", None) makes it answer SERVFAIL.
"""

from __future__ import annotations

import socketserver
import struct
import threading
from collections.abc import Iterable, Mapping
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rrset

from milter.kernel.dns import normalise_name

DEFAULT_TTL = 300


def _txt(value: Any) -> str:
    strings = [value] if isinstance(value, str | bytes) else list(value)
    chunks = []
    for string in strings:
        data = string if isinstance(string, bytes) else string.encode("utf-8")
        chunks += [data[i : i + 255] for i in range(0, max(len(data), 1), 255)]  # one TXT string holds 255 bytes
    return " ".join(
        '"' + "".join(chr(b) if 32 <= b < 127 and b not in (34, 92) else f"\\{b:03d}" for b in chunk) + '"'
        for chunk in chunks
    )


def _rdata_text(rdtype: str, value: Any) -> str:
    if rdtype in ("TXT", "SPF"):
        return _txt(value)
    if rdtype == "MX":
        preference, host = value.split(None, 1) if isinstance(value, str) else value
        return f"{preference} {str(host).rstrip('.')}."
    if rdtype in ("CNAME", "PTR"):
        return f"{str(value).rstrip('.')}."
    return str(value)


class DnsServer:
    def __init__(self, zone: Mapping[str, Iterable[tuple[Any, ...]]], *, negative_ttl: int = 60) -> None:
        self.zone = {normalise_name(name): list(entries) for name, entries in zone.items()}
        self.negative_ttl = negative_ttl
        self.queries: list[tuple[str, str]] = []
        self.tcp_queries: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        server = self

        class Udp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                data, sock = self.request
                reply = server.answer(data, udp=True)
                if reply is not None:
                    sock.sendto(reply, self.client_address)

        class Tcp(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                header = self.request.recv(2)
                if len(header) < 2:
                    return
                (length,) = struct.unpack("!H", header)
                data = b""
                while len(data) < length:
                    chunk = self.request.recv(length - len(data))
                    if not chunk:
                        return
                    data += chunk
                reply = server.answer(data, udp=False)
                if reply is not None:
                    self.request.sendall(struct.pack("!H", len(reply)) + reply)

        for _ in range(20):  # a UDP port whose TCP twin is free too
            self.udp = socketserver.ThreadingUDPServer(("127.0.0.1", 0), Udp)
            port = self.udp.server_address[1]
            self.tcp = socketserver.ThreadingTCPServer(("127.0.0.1", port), Tcp, bind_and_activate=False)
            self.tcp.allow_reuse_address = True
            try:
                self.tcp.server_bind()
                self.tcp.server_activate()
                break
            except OSError:
                self.tcp.server_close()
                self.udp.server_close()
        else:
            raise RuntimeError("no free port for a test DNS server")
        self.port = port
        self._threads = [
            threading.Thread(target=s.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
            for s in (self.udp, self.tcp)
        ]

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> DnsServer:
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        for server in (self.udp, self.tcp):
            server.shutdown()
            server.server_close()
        for thread in self._threads:
            thread.join(5)

    def set(self, name: str, entries: list[tuple[Any, ...]]) -> None:
        with self._lock:
            self.zone[normalise_name(name)] = list(entries)

    def answer(self, data: bytes, *, udp: bool) -> bytes | None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        name = normalise_name(question.name.to_text())
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            (self.queries if udp else self.tcp_queries).append((name, rdtype))
            entries = self.zone.get(name)
        if entries and any(entry[0] == "TIMEOUT" for entry in entries):
            return None  # a server that never answers
        response = dns.message.make_response(query)
        response.flags |= dns.flags.AA
        if entries and any(entry[0] == "SERVFAIL" for entry in entries):
            response.set_rcode(dns.rcode.SERVFAIL)
            return response.to_wire()
        self._fill(response, question.name, rdtype, entries)
        wire = response.to_wire()
        limit = (query.payload if query.edns >= 0 else 512) if udp else 65535
        if len(wire) > limit:
            response.answer.clear()
            response.flags |= dns.flags.TC  # the client asks again over TCP
            wire = response.to_wire()
        return wire

    def _fill(
        self, response: dns.message.Message, qname: dns.name.Name, rdtype: str, entries: list[tuple[Any, ...]] | None
    ) -> None:
        owner, found = qname, entries
        for _ in range(8):  # follow CNAMEs inside the zone, as an authoritative server does
            if found is None:
                break
            records = [e for e in found if e[0] == rdtype]
            if records:
                response.answer.append(self._rrset(owner, rdtype, records))
                return
            cnames = [e for e in found if e[0] == "CNAME"]
            if not cnames or rdtype == "CNAME":
                break
            response.answer.append(self._rrset(owner, "CNAME", cnames))
            owner = dns.name.from_text(str(cnames[0][1]).rstrip(".") + ".")
            with self._lock:
                found = self.zone.get(normalise_name(owner.to_text()))
        if entries is None and not response.answer:
            response.set_rcode(dns.rcode.NXDOMAIN)
        # RFC 2308: the SOA tells how long the negative answer may be kept.
        apex = dns.name.from_text(".".join(qname.to_text().rstrip(".").split(".")[-2:]) + ".")
        soa = dns.rrset.from_text(
            apex, self.negative_ttl, "IN", "SOA", f"ns.{apex} hostmaster.{apex} 1 3600 600 86400 {self.negative_ttl}"
        )
        if not response.answer or response.answer[-1].rdtype != dns.rdatatype.from_text(rdtype):
            response.authority.append(soa)

    def _rrset(self, owner: dns.name.Name, rdtype: str, entries: list[tuple[Any, ...]]) -> dns.rrset.RRset:
        ttl = min(entry[2] if len(entry) > 2 else DEFAULT_TTL for entry in entries)
        rrset = dns.rrset.RRset(owner, dns.rdataclass.IN, dns.rdatatype.from_text(rdtype))
        for entry in entries:
            rrset.add(
                dns.rdata.from_text(dns.rdataclass.IN, dns.rdatatype.from_text(rdtype), _rdata_text(rdtype, entry[1])),
                ttl,
            )
        return rrset
