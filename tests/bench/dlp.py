"""`make bench-dlp`: time and peak memory of the confidential-data rule on large attachments.

Each case is a whole message through the Message views and the rule, as the
pipeline runs it: parse, text extraction (within the [limits] caps), the
detectors, the encryption checks. Wall time is measured on a clean run;
peak memory is Python's (tracemalloc) on a second run, and the process's
peak resident set size is reported too. Figures print as a table and go to
bench-results/dlp.json.
"""

from __future__ import annotations

import json
import resource
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from milter.config import load_config
from milter.kernel.directory import load_directory
from milter.mail.message import Envelope, Message, normalise_line_endings
from milter.mail.settings import LimitSettings
from policies.rules.confidential import Confidential
from tests.support import dlp_files as files

ROOT = Path(__file__).resolve().parents[2]
CASES: dict[str, Callable[[], bytes]] = {
    "20 MB CSV export (formatted SSN on every row)": lambda: files.message(
        attachments=[("staff.csv", files.large_csv(20 * 1024 * 1024), "text/csv")]
    ),
    "50,000-row xlsx payroll (bare SSN column)": lambda: files.message(
        attachments=[("payroll.xlsx", files.large_xlsx(50_000), files.XLSX)]
    ),
    "20 MB CSV in an AES zip (unreadable: the encryption check only)": lambda: files.message(
        attachments=[
            ("payroll.zip", files.zip_aes({"payroll.csv": files.large_csv(20 * 1024 * 1024)}), "application/zip")
        ]
    ),
}


def run_once(rule: Confidential, raw: bytes, limits: LimitSettings) -> tuple[float, int, str]:
    message = Message(Envelope("sortiz@example.gov", ("partner@county.org",), trusted=True), raw, "outbound", limits)
    started = time.perf_counter()
    findings = rule.check(message)
    seconds = time.perf_counter() - started
    outcome = ", ".join(f"{f.action}: {f.reason[:70]}..." for f in findings) or "no finding"
    return seconds, message.size, outcome


def main() -> None:
    config = load_config(ROOT / "config" / "aup-milter.toml")
    rule = Confidential(config.policies["confidential"], load_directory(config.directory_path))
    results: list[dict[str, Any]] = []
    for name, build in CASES.items():
        raw, _ = normalise_line_endings(build())
        seconds, size, outcome = run_once(rule, raw, config.settings.limits)
        tracemalloc.start()
        run_once(rule, raw, config.settings.limits)
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        results.append(
            {
                "case": name,
                "message_bytes": size,
                "seconds": round(seconds, 2),
                "peak_python_mib": round(peak / 1024 / 1024, 1),
                "outcome": outcome,
            }
        )
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{'case':<66} {'message':>9} {'seconds':>8} {'peak MiB':>9}")
    for r in results:
        print(
            f"{r['case']:<66} {r['message_bytes'] / 1024 / 1024:>7.1f}MB {r['seconds']:>8.2f} {r['peak_python_mib']:>9.1f}"
        )
        print(f"    {r['outcome']}")
    print(f"process peak RSS (all cases, builders included): {rss:.0f} MiB")
    out = ROOT / "bench-results" / "dlp.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps({"cases": results, "process_peak_rss_mib": round(rss)}, indent=2) + "\n")


if __name__ == "__main__":
    main()
