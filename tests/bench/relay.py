"""`make bench`: the full gateway against a bare forwarding relay, in the same run.

Both relays listen with two processes sharing the port (SO_REUSEPORT) and
forward into Postfix's smtp-sink, which discards. An asyncio load generator
(a separate process) keeps N SMTP sessions busy with 10 KB messages and times
each message from the final "." to the 250. Then an open-loop run offers a
fixed rate (50 messages/s) to the full gateway to read its p99 time to 250.
Figures are printed as a table and as JSON (bench-results/relay.json).

The bare relay answers 250 after forwarding; the gateway answers 250 after
the message is fsynced and committed, and delivers from its queue. The ratio
of their rates is what to compare across machines.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    raise TimeoutError(f"port {port} never opened")


@functools.cache
def _mail() -> Any:
    from tests.bench.archive import Mail  # the archive bench's Zipf vocabulary of 30,000 words

    return Mail(1000, seed=11)


def make_message(size: int, number: int) -> bytes:
    """A business-like message of about `size` bytes; different numbers give different texts."""
    mail = _mail()
    mail.rng.seed(number)
    body = mail.text(max(size // 4, 20))[:size]  # more words than needed, cut to the size
    headers = (
        f"From: Sam Ortiz <sortiz@example.gov>\r\nTo: Dana Whitfield <dwhitfield@example.gov>\r\n"
        f"Subject: bench message {number}\r\nMessage-ID: <bench-{number}@example.gov>\r\n"
        f"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\nMIME-Version: 1.0\r\nContent-Type: text/plain\r\n\r\n"
    )
    return headers.encode() + body.encode() + b"\r\n"


def message_pool(size: int, count: int = 200) -> list[bytes]:
    """Distinct messages the sessions take turns with, as real traffic differs from message to message."""
    return [make_message(size, number) for number in range(count)]


# -- load generator -------------------------------------------------------


class Session:
    def __init__(self, port: int) -> None:
        self.port = port

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        await self.reply()
        await self.command(b"EHLO bench.example.gov")

    async def reply(self) -> bytes:
        while True:
            line = await self.reader.readline()
            if not line:
                raise ConnectionError("server closed the connection")
            if line[3:4] != b"-":
                return line

    async def command(self, line: bytes) -> bytes:
        self.writer.write(line + b"\r\n")
        return await self.reply()

    async def send(self, message: bytes) -> float:
        """Send one message; seconds from the end of DATA to the reply, or raise."""
        await self.command(b"MAIL FROM:<sortiz@example.gov>")
        await self.command(b"RCPT TO:<dwhitfield@example.gov>")
        await self.command(b"DATA")
        self.writer.write(message + b".\r\n")
        started = time.perf_counter()
        reply = await self.reply()
        elapsed = time.perf_counter() - started
        if not reply.startswith(b"250"):
            raise RuntimeError(reply.decode(errors="replace").strip())
        return elapsed

    async def close(self) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            await self.command(b"QUIT")
        self.writer.close()


async def closed_loop(port: int, sessions: int, seconds: float, size: int) -> dict[str, float]:
    """N sessions sending back to back for `seconds`: throughput."""
    pool = message_pool(size)
    latencies: list[float] = []
    errors = 0
    deadline = time.monotonic() + seconds

    async def worker() -> None:
        nonlocal errors
        session = Session(port)
        await session.open()
        while time.monotonic() < deadline:
            try:
                latencies.append(await session.send(pool[len(latencies) % len(pool)]))
            except RuntimeError:
                errors += 1
        await session.close()

    started = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(sessions)))
    return summary(latencies, time.monotonic() - started, errors)


async def open_loop(port: int, rate: float, seconds: float, size: int, sessions: int) -> dict[str, float]:
    """A fixed offered rate spread over a pool of sessions: latency at that load."""
    messages = message_pool(size)
    pool: asyncio.Queue[Session] = asyncio.Queue()
    for _ in range(sessions):
        session = Session(port)
        await session.open()
        pool.put_nowait(session)
    latencies: list[float] = []
    errors = 0

    async def one() -> None:
        nonlocal errors
        session = await pool.get()
        try:
            latencies.append(await session.send(messages[len(latencies) % len(messages)]))
        except RuntimeError:
            errors += 1
        pool.put_nowait(session)

    tasks = []
    started = time.monotonic()
    for number in range(int(rate * seconds)):
        delay = started + number / rate - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one()))
    await asyncio.gather(*tasks)
    elapsed = time.monotonic() - started
    while not pool.empty():
        await pool.get_nowait().close()
    return summary(latencies, elapsed, errors)


def summary(latencies: list[float], elapsed: float, errors: int) -> dict[str, float]:
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000 if ordered else float("nan")

    return {
        "messages": len(ordered),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "rate": round(len(ordered) / elapsed, 1),
        "p50_ms": round(pct(0.50), 2),
        "p99_ms": round(pct(0.99), 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else float("nan"),
    }


def generator_main(args: argparse.Namespace) -> None:
    if args.rate:
        result = asyncio.run(open_loop(args.port, args.rate, args.seconds, args.size, args.sessions))
    else:
        result = asyncio.run(closed_loop(args.port, args.sessions, args.seconds, args.size))
    print(json.dumps(result))


# -- the bare relay -------------------------------------------------------


def bare_relay_main(args: argparse.Namespace) -> None:
    """aiosmtpd that forwards every message to the sink before answering; nothing else."""
    import aiosmtplib
    from aiosmtpd.smtp import SMTP

    class Forward:
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            await aiosmtplib.send(
                envelope.original_content,
                sender=envelope.mail_from,
                recipients=envelope.rcpt_tos,
                hostname="127.0.0.1",
                port=args.sink_port,
            )
            return "250 2.0.0 Ok"

    async def serve() -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(("127.0.0.1", args.port))
        sock.listen(512)
        server = await asyncio.get_running_loop().create_server(lambda: SMTP(Forward(), hostname="bare"), sock=sock)
        async with server:
            await server.serve_forever()

    asyncio.run(serve())


# -- orchestration --------------------------------------------------------


def rss_bytes(pids: list[int]) -> int:
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def cpu_seconds(pids: list[int]) -> float:
    """User plus system CPU time of these processes so far."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / ticks
        except (OSError, IndexError):
            pass
    return total


def process_tree(root: int) -> list[int]:
    children = subprocess.run(["pgrep", "-P", str(root)], capture_output=True, text=True).stdout.split()
    return [root] + [pid for child in children for pid in process_tree(int(child))]


def processes(roots: list[int]) -> list[int]:
    return [pid for root in roots for pid in process_tree(root)]


class Peak:
    """Samples the RSS of the server's processes while a run goes on."""

    def __init__(self, roots: list[int]) -> None:
        self.roots, self.peak, self._stop = roots, 0, False

    async def sample(self) -> None:
        while not self._stop:
            self.peak = max(self.peak, rss_bytes(processes(self.roots)))
            await asyncio.sleep(0.2)


def run_generator(
    port: int, sessions: int, seconds: float, size: int, rate: float | None, servers: list[int]
) -> dict[str, float]:
    command = [
        sys.executable,
        "-m",
        "tests.bench.relay",
        "generate",
        "--port",
        str(port),
        "--sessions",
        str(sessions),
        "--seconds",
        str(seconds),
        "--size",
        str(size),
    ]
    if rate:
        command += ["--rate", str(rate)]
    peak = Peak(servers)
    cpu_before = cpu_seconds(processes(servers))

    async def run() -> str:
        sampler = asyncio.create_task(peak.sample())
        process = await asyncio.create_subprocess_exec(*command, stdout=subprocess.PIPE, cwd=ROOT)
        out, _ = await process.communicate()
        peak._stop = True
        await sampler
        return out.decode()

    result = json.loads(asyncio.run(run()))
    result["peak_rss_mib"] = round(peak.peak / 1024 / 1024, 1)
    # CPU per message is steadier than a rate on a shared machine.
    used = cpu_seconds(processes(servers)) - cpu_before
    result["cpu_ms_per_message"] = round(used * 1000 / max(result["messages"], 1), 2)
    return result


def start(command: list[str], port: int, **kwargs) -> subprocess.Popen[bytes]:  # type: ignore[no-untyped-def]
    process = subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, **kwargs
    )
    wait_for_port(port)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=20)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        os.killpg(process.pid, signal.SIGKILL)


FOUNDATION_RULES = ("size", "gateway_headers", "anonymous_sender", "inspection")


def gateway_config(folder: Path, port: int, sink_port: int, workers: int, rules: str = "all") -> Path:
    """A gateway on SQLite delivering to the sink; `rules="foundation"` turns off every content rule."""
    from policies.registry import POLICIES

    shutil.copy(ROOT / "config" / "directory.toml", folder / "directory.toml")
    path = folder / f"bench-{rules}.toml"
    off = "".join(
        f'[policies.{policy.name}]\nmode = "off"\n'
        for policy in POLICIES
        if rules == "foundation" and policy.name not in FOUNDATION_RULES
    )
    path.write_text(f"""
[smtp]
listen = "127.0.0.1:{port}"
hostname = "bench.example.gov"
workers = {workers}
[console]
enabled = false
[storage]
database = "sqlite:///{folder}/bench.db"
blobs = "{folder}/blobs"
[deliver]
url = "smtp://127.0.0.1:{sink_port}"
poll_interval = "0.2s"
{off}""")
    return path


def orchestrate(args: argparse.Namespace) -> None:
    sink_port, bare_port, gateway_port = free_port(), free_port(), free_port()
    results: dict[str, object] = {
        "machine": machine(),
        "sessions": args.sessions,
        "size_bytes": args.size,
        "seconds": args.seconds,
        "workers": args.workers,
    }
    sink_command = ["smtp-sink", "-c", f"127.0.0.1:{sink_port}", "1000"]
    if os.geteuid() == 0:
        sink_command[1:1] = ["-u", "nobody"]
    sink = start(sink_command, sink_port)
    with tempfile.TemporaryDirectory(prefix="aup-bench-", dir=args.tmp) as folder:
        try:
            bare = [
                start(
                    [
                        sys.executable,
                        "-m",
                        "tests.bench.relay",
                        "bare",
                        "--port",
                        str(bare_port),
                        "--sink-port",
                        str(sink_port),
                    ],
                    bare_port,
                )
            ]
            for _ in range(args.workers - 1):
                bare.append(
                    start(
                        [
                            sys.executable,
                            "-m",
                            "tests.bench.relay",
                            "bare",
                            "--port",
                            str(bare_port),
                            "--sink-port",
                            str(sink_port),
                        ],
                        bare_port,
                    )
                )
            pids = [process.pid for process in bare]
            run_generator(bare_port, args.sessions, 2, args.size, None, pids)  # warm up
            results["bare"] = run_generator(bare_port, args.sessions, args.seconds, args.size, None, pids)
            for process in bare:
                stop(process)

            for rules in ("foundation", "all"):
                data = Path(folder) / rules
                data.mkdir()
                config = gateway_config(data, gateway_port, sink_port, args.workers, rules)
                gateway = start(
                    [str(ROOT / ".venv" / "bin" / "aup-milter"), "--config", str(config), "serve"], gateway_port
                )
                run_generator(gateway_port, args.sessions, 2, args.size, None, [gateway.pid])
                time.sleep(3)  # let the warm-up's deliveries and indexing finish
                # The fixed rate first: after the saturating run the gateway is still delivering its backlog.
                results[f"gateway_{rules}_at_fixed_rate"] = run_generator(
                    gateway_port, args.sessions, args.seconds, args.size, args.rate, [gateway.pid]
                )
                results[f"gateway_{rules}"] = run_generator(
                    gateway_port, args.sessions, args.seconds, args.size, None, [gateway.pid]
                )
                stop(gateway)
        finally:
            stop(sink)
    bare_rate = results["bare"]["rate"]  # type: ignore[index]
    for rules in ("foundation", "all"):
        results[f"ratio_{rules}"] = round(results[f"gateway_{rules}"]["rate"] / bare_rate, 3)  # type: ignore[index]
    report(results, args.rate)
    out = ROOT / "bench-results"
    out.mkdir(exist_ok=True)
    (out / "relay.json").write_text(json.dumps(results, indent=2))


def machine() -> dict[str, object]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown",
    )
    memory = int(Path("/proc/meminfo").read_text().split()[1]) // 1024 // 1024
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": memory, "python": sys.version.split()[0]}


def report(results: dict[str, object], rate: float) -> None:
    m = results["machine"]
    print(f"machine: {m['cpu']}, {m['cores']} cores, {m['memory_gib']} GiB, Python {m['python']}")  # type: ignore[index]
    print(
        f"load: {results['sessions']} sessions, {results['size_bytes']} byte messages, {results['seconds']} s per run, "
        f"{results['workers']} processes per relay"
    )
    print(f"{'':30}{'msg/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'CPU ms/msg':>12}{'peak RSS MiB':>14}{'errors':>8}")
    for name, key in (
        ("bare aiosmtpd relay", "bare"),
        ("aup-milter, foundation rules", "gateway_foundation"),
        (f"  the same at {rate:g} msg/s", "gateway_foundation_at_fixed_rate"),
        ("aup-milter, all rules", "gateway_all"),
        (f"  the same at {rate:g} msg/s", "gateway_all_at_fixed_rate"),
    ):
        row = results[key]
        print(
            f"{name:30}{row['rate']:>8}{row['p50_ms']:>9}{row['p99_ms']:>9}{row['cpu_ms_per_message']:>12}"  # type: ignore[index]
            f"{row['peak_rss_mib']:>14}{row['errors']:>8}"
        )  # type: ignore[index]
    print(f"ratio to the bare relay: foundation rules {results['ratio_foundation']}, all rules {results['ratio_all']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    generate = sub.add_parser("generate")
    generate.add_argument("--port", type=int, required=True)
    generate.add_argument("--sessions", type=int, default=20)
    generate.add_argument("--seconds", type=float, default=10)
    generate.add_argument("--size", type=int, default=10_000)
    generate.add_argument("--rate", type=float)
    bare = sub.add_parser("bare")
    bare.add_argument("--port", type=int, required=True)
    bare.add_argument("--sink-port", type=int, required=True)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--size", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=50)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--tmp", default=None, help="folder for the gateway's database and blobs (default: the system temp folder)"
    )
    args = parser.parse_args()
    if args.command == "generate":
        generator_main(args)
    elif args.command == "bare":
        bare_relay_main(args)
    else:
        orchestrate(args)


if __name__ == "__main__":
    main()
