"""`aup-milter check FILE --json` on real-world corpora: CPython's email test messages, mail-parser's, ClamAV's.

Every message must come through every rule without a crash (a crash would be
a "tempfail" decision) and give the documented JSON.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

from milter import cli
from tests.conftest import write_config

DATA = Path(__file__).resolve().parent / "data"
CLAM_MAIL = Path("/usr/share/clamav-testfiles/clam.mail")  # Debian's clamav-testfiles, read where it is installed
ACTIONS = {"deliver", "hold", "reject"}  # "tempfail" would mean a rule crashed on the message
FINDING_KEYS = {"policy", "mode", "action", "reason", "evidence"}


def cpython_email_corpus() -> list[Path]:
    """CPython's own test messages (test/test_email/data), from the test suite of the Python running this."""
    spec = importlib.util.find_spec("test.test_email")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError("CPython's test suite is missing: install libpython3.11-testsuite (.ci/run does)")
    files = sorted(Path(next(iter(spec.submodule_search_locations)), "data").glob("msg_*.txt"))
    if len(files) < 40:
        raise RuntimeError(f"CPython's email test corpus has only {len(files)} messages")
    return files


def mail_parser_corpus() -> list[Path]:
    return sorted(path for path in (DATA / "mail-parser").iterdir() if path.name.startswith("mail_"))


CORPUS = (
    [pytest.param(path, id=f"cpython/{path.name}") for path in cpython_email_corpus()]
    + [pytest.param(path, id=f"mail-parser/{path.name}") for path in mail_parser_corpus()]
    + [pytest.param(CLAM_MAIL, id="clamav/clam.mail")]
)


@pytest.fixture(scope="module")
def config_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("check")
    return write_config(folder, f"sqlite:///{folder / 'aup.db'}", f"maildir:{folder / 'outbox'}")


def assert_documented_shape(result: dict[str, object]) -> None:
    assert {"direction", "action", "hold_queue", "findings"} <= set(result)
    assert result["direction"] in {"inbound", "outbound", "internal"}
    assert result["action"] in ACTIONS, result
    assert result["hold_queue"] in {None, "approval", "quarantine"}
    assert isinstance(result["findings"], list)
    for finding in result["findings"]:
        assert set(finding) >= FINDING_KEYS
        assert finding["mode"] in {"enforce", "monitor"}
        assert finding["action"] in {"deliver", "tag", "hold", "reject"}
        assert isinstance(finding["reason"], str) and finding["reason"]
        assert isinstance(finding["evidence"], list)


def test_the_corpora_are_all_there():
    assert len(mail_parser_corpus()) == 23
    assert CLAM_MAIL.is_file(), "install Debian's clamav-testfiles (.ci/run does)"


@pytest.mark.parametrize("path", CORPUS)
def test_check_gives_a_decision_as_json_for_every_corpus_message(path, config_path, capsys):
    code = cli.main(["check", str(path), "--json", "--config", str(config_path), "--rcpt", "dwhitfield@example.gov"])
    out, err = capsys.readouterr()
    result = json.loads(out)
    assert code == cli.CHECK_EXIT[result["action"]], err
    assert_documented_shape(result)
    assert all(isinstance(problem, str) for problem in result["problems"])


def test_the_installed_console_script_checks_a_message(config_path):
    script = Path(sys.executable).with_name("aup-milter")
    message = DATA / "mail-parser" / "mail_malformed_1"
    completed = subprocess.run(
        [
            str(script),
            "check",
            str(message),
            "--json",
            "--config",
            str(config_path),
            "--rcpt",
            "dwhitfield@example.gov",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 3, completed.stderr  # held
    result = json.loads(completed.stdout)
    assert_documented_shape(result)
    assert result["action"] == "hold"  # malformed MIME: inspection holds it for IT
    assert any(f["policy"] == "inspection" for f in result["findings"])
