"""`config check` names every problem in the file, not just the first, each with its key and fix."""

from __future__ import annotations

import pytest

from milter import cli
from milter.config import load_config
from milter.kernel.settings import ConfigError
from tests.conftest import write_config


def test_every_error_in_the_file_is_listed(tmp_path, capsys):
    path = write_config(
        tmp_path,
        f"sqlite:///{tmp_path / 'aup.db'}",
        "maildir:/tmp/unused",
        {
            "smtp": {"listen": "nowhere", "max_recipients": "many"},
            "console": {"lisen": "127.0.0.1:8025"},
            "policies": {"virus": {"mode": "loud"}, "langauge": {}, "size": {"action": "shred"}},
        },
    )
    assert cli.main(["--config", str(path), "config", "check"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("config error: ")]
    keys = [line.split("[", 1)[1].split("]", 1)[0] for line in lines]
    assert sorted(keys) == sorted(
        [
            "smtp.listen",
            "smtp.max_recipients",
            "console.lisen",
            "policies.virus.mode",
            "policies.langauge",
            "policies.size.action",
        ]
    )
    assert all(". Fix: " in line for line in lines)
    assert "did you mean 'language'?" in err and "did you mean 'listen'?" in err
    assert "6 problems in the config" in err


def test_one_error_reads_as_before(tmp_path):
    path = write_config(tmp_path, f"sqlite:///{tmp_path / 'aup.db'}", "maildir:/tmp/unused", {"smtp": {"listen": "x"}})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "smtp.listen" and caught.value.also == []
