"""`aup-milter config diff OLD NEW` prints what a reload would change, rule modes first."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from milter import cli
from tests.conftest import EXAMPLE_DIRECTORY


def configs(tmp_path: Path, old: str, new: str) -> tuple[Path, Path]:
    shutil.copy(EXAMPLE_DIRECTORY, tmp_path / "directory.toml")
    (tmp_path / "old.toml").write_text(old)
    (tmp_path / "new.toml").write_text(new)
    return tmp_path / "old.toml", tmp_path / "new.toml"


def run(capsys, *argv: str | Path) -> tuple[int, str, str]:
    code = cli.main(["config", "diff", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_the_same_settings_written_differently_are_no_change(tmp_path, capsys):
    # the old file spells out the defaults; the new one leaves them out
    old, new = configs(
        tmp_path, '[policies.broadcast]\nmode = "enforce"\nthreshold = 50\n', '[policies.broadcast]\nmode = "enforce"\n'
    )
    code, out, _ = run(capsys, old, new)
    assert code == 0
    assert "would change nothing" in out


def test_mode_changes_come_first_then_rule_keys_then_other_sections(tmp_path, capsys):
    old, new = configs(
        tmp_path,
        '[smtp]\nworkers = 1\n[pipeline]\nscan_threads = 2\n[policies.broadcast]\nmode = "enforce"\nthreshold = 50\n'
        '[policies.solicitation]\nmode = "monitor"\n',
        '[smtp]\nworkers = 3\n[pipeline]\nscan_threads = 4\n[policies.broadcast]\nmode = "enforce"\nthreshold = 80\n'
        '[policies.solicitation]\nmode = "enforce"\n',
    )
    code, out, _ = run(capsys, old, new)
    assert code == 1
    lines = [line.strip() for line in out.splitlines()]
    mode = lines.index('policies.solicitation.mode: "monitor" -> "enforce"')
    threshold = lines.index("policies.broadcast.threshold: 50 -> 80")
    workers = lines.index("smtp.workers: 1 -> 3")
    threads = lines.index("pipeline.scan_threads: 2 -> 4")
    assert lines.index("rule modes:") < mode < lines.index("rule settings:") < threshold
    assert threshold < lines.index("other settings:") < min(workers, threads)
    # workers are bound at start: the admin must learn a reload does not apply them; scan threads it does
    assert lines[workers + 1] == "takes effect after a restart, not on reload"
    assert lines.count("takes effect after a restart, not on reload") == 1
    assert not any("broadcast.mode" in line for line in lines)

    code, out, _ = run(capsys, old, new, "--json")
    assert code == 1
    changes = {c["key"]: c for c in json.loads(out)["changes"]}
    assert set(changes) == {
        "policies.solicitation.mode",
        "policies.broadcast.threshold",
        "smtp.workers",
        "pipeline.scan_threads",
    }
    assert next(iter(json.loads(out)["changes"]))["key"] == "policies.solicitation.mode"
    assert changes["smtp.workers"]["restart"] is True
    assert changes["pipeline.scan_threads"]["restart"] is False
    assert (changes["policies.broadcast.threshold"]["old"], changes["policies.broadcast.threshold"]["new"]) == (50, 80)


def test_a_changed_word_list_file_is_shown_entry_by_entry(tmp_path, capsys):
    (tmp_path / "profanity-2025.txt").write_text("# last year's list\nblast\ndrat\n")
    (tmp_path / "profanity-2026.txt").write_text("drat\nconfound  # new this year\n")
    old, new = configs(
        tmp_path,
        f'[policies.language]\nlists = {{ profanity = "{tmp_path / "profanity-2025.txt"}" }}\n',
        f'[policies.language]\nlists = {{ profanity = "{tmp_path / "profanity-2026.txt"}" }}\n',
    )
    code, out, _ = run(capsys, old, new)
    assert code == 1
    lines = [line.strip() for line in out.splitlines()]
    assert lines[lines.index("rule settings:") + 1].startswith("policies.language.lists.profanity: ")
    assert "+1 -1 entries" in lines
    assert "+ confound" in lines
    assert "- blast" in lines
    assert not any(line.endswith(" drat") for line in lines)  # in both lists: not a change

    code, out, _ = run(capsys, old, new, "--json")
    (change,) = json.loads(out)["changes"]
    assert (change["added"], change["removed"]) == (["confound"], ["blast"])


def test_pointing_a_key_at_the_same_file_again_is_no_change(tmp_path, capsys):
    (tmp_path / "slurs.txt").write_text("xyzzy\n")
    old, new = configs(
        tmp_path,
        f'[policies.language]\nlists = {{ slurs = "{tmp_path / "slurs.txt"}" }}\n',
        f'[policies.language]\nlists = {{ slurs = "{tmp_path / "." / "slurs.txt"}" }}\n',
    )
    code, out, _ = run(capsys, old, new)
    assert (code, out.strip().startswith("no changes")) == (0, True)


def test_a_new_file_that_does_not_load_is_an_error_naming_file_and_key(tmp_path, capsys):
    old, new = configs(tmp_path, "", '[policies.broadcast]\nthreshold = "lots"\n')
    code, out, err = run(capsys, old, new)
    assert code == 2
    assert out == ""
    assert str(new) in err
    assert "policies.broadcast.threshold" in err
