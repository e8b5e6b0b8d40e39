"""Config and directory errors name the file, the key, what is wrong and the fix."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from milter import cli
from milter.config import DEFAULT_CONFIG, config_path, load_config
from milter.kernel.directory import load_directory
from milter.kernel.settings import ConfigError
from policies.registry import POLICIES
from tests.conftest import EXAMPLE_DIRECTORY


def write(tmp_path: Path, text: str, directory: str | None = None) -> Path:
    path = tmp_path / "gw.toml"
    path.write_text(text)
    if directory is None:
        shutil.copy(EXAMPLE_DIRECTORY, tmp_path / "directory.toml")
    else:
        (tmp_path / "directory.toml").write_text(directory)
    return path


def error_for(tmp_path: Path, text: str) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text))
    return caught.value


def test_embedded_default_loads_with_the_documented_values():
    config = load_config(DEFAULT_CONFIG)
    settings = config.settings
    assert settings.smtp.address == ("127.0.0.1", 10025)
    assert settings.console.address == ("127.0.0.1", 8025)
    assert settings.storage.database == "sqlite:///var/aup-milter.kernel.db"
    assert str(settings.storage.blobs) == "var/blobs"
    assert settings.deliver.url == "maildir:var/outbox"
    assert config.directory_path == DEFAULT_CONFIG.parent / "directory.toml"
    assert set(config.policies) == {policy.name for policy in POLICIES}
    assert all(settings.mode in ("enforce", "monitor") for settings in config.policies.values())


def test_config_path_prefers_flag_then_environment_then_default(monkeypatch, tmp_path):
    monkeypatch.delenv("AUP_MILTER_CONFIG", raising=False)
    assert config_path(None) == DEFAULT_CONFIG
    monkeypatch.setenv("AUP_MILTER_CONFIG", str(tmp_path / "env.toml"))
    assert config_path(None) == tmp_path / "env.toml"
    assert config_path(tmp_path / "flag.toml") == tmp_path / "flag.toml"


@pytest.mark.parametrize(
    ("text", "key", "problem", "fix"),
    [
        ('[smtp]\nlisten = "nonsense"\n', "smtp.listen", "'nonsense': 'nonsense' is not HOST:PORT", "HOST:PORT"),
        ("[smtp]\nworkers = 0\n", "smtp.workers", "greater than or equal to 1", "from 1 to 64"),
        ('[smtp]\nmax_message_size = "lots"\n', "smtp.max_message_size", "is not a size", '"25MiB"'),
        ('[smtp]\ntimeout = "soon"\n', "smtp.timeout", "is not a duration", '"5m"'),
        ('[smtp]\ntrusted_networks = ["10.0.0.0/33"]\n', "smtp.trusted_networks.0", "10.0.0.0/33", '"10.1.0.0/16"'),
        ('[smtp]\ntls_cert = "/x.pem"\n', "smtp", "tls_cert and tls_key go together", "documented keys"),
        (
            '[storage]\ndatabase = "mysql://x"\n',
            "storage.database",
            "not a SQLite or PostgreSQL URL",
            "postgresql+psycopg",
        ),
        (
            '[deliver]\nurl = "lmtp://x"\n',
            "deliver.url",
            "neither smtp://HOST:PORT nor maildir:PATH",
            "smtp://HOST:PORT",
        ),
        ('[deliver]\ntls = "sometimes"\n', "deliver.tls", "'may', 'encrypt' or 'none'", '"may"'),
        ('[policies.size]\nmode = "loud"\n', "policies.size.mode", "'enforce', 'monitor' or 'off'", '"monitor"'),
        ('[policies.size]\nmax_bytes = { inbound = "x" }\n', "policies.size.max_bytes.inbound", "is not a size", None),
    ],
)
def test_bad_values_name_file_key_problem_and_fix(tmp_path, text, key, problem, fix):
    error = error_for(tmp_path, text)
    assert error.file == str(tmp_path / "gw.toml")
    assert error.key == key
    assert problem in error.problem
    if fix:
        assert fix in error.fix
    assert str(error).startswith(f"{tmp_path / 'gw.toml'}: [{key}] ")


def test_unknown_keys_suggest_the_right_one(tmp_path):
    error = error_for(tmp_path, '[smtp]\nlisen = "127.0.0.1:25"\n')
    assert (error.key, error.problem) == ("smtp.lisen", "unknown key")
    assert "did you mean 'listen'?" in error.fix
    assert error_for(tmp_path, "[smpt]\n").fix.startswith("did you mean 'smtp'?")


def test_unknown_rule_lists_the_known_rules(tmp_path):
    error = error_for(tmp_path, '[policies.sise]\nmode = "off"\n')
    assert error.key == "policies.sise"
    assert "did you mean 'size'?" in error.fix
    assert "anonymous_sender" in error.fix


def test_toml_syntax_errors_and_missing_files_are_explained(tmp_path):
    error = error_for(tmp_path, "[smtp\n")
    assert "not valid TOML" in error.problem
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.toml")


@pytest.mark.parametrize(
    ("text", "key", "problem"),
    [
        ("domains = []\n", "domains", "at least one local domain"),
        (
            'domains = ["x.gov"]\n[[people]]\naddress = "not-an-address"\nname = "N"\n',
            "people.0.address",
            "is not an email address",
        ),
        (
            'domains = ["x.gov"]\n[[people]]\naddress = "a@x.gov"\nname = "A"\nroles = ["wizard"]\n',
            "people.0.roles",
            "unknown role 'wizard'",
        ),
        (
            'domains = ["x.gov"]\n[[people]]\naddress = "a@x.gov"\nname = "A"\ndepartment = "nowhere"\n',
            "people.0.department",
            "no department has id 'nowhere'",
        ),
        (
            'domains = ["x.gov"]\n[[departments]]\nid = "d"\nname = "D"\nhead = "ghost@x.gov"\n',
            "departments.0",
            "ghost@x.gov is not in [[people]]",
        ),
        (
            'domains = ["x.gov"]\n[[people]]\naddress = "a@x.gov"\nname = "A"\n[[people]]\naddress = "b@x.gov"\nname = "B"\naliases = ["a@x.gov"]\n',
            "people.1",
            "a@x.gov is listed twice",
        ),
        (
            'domains = ["x.gov"]\n[[groups]]\naddress = "g@x.gov"\nsize = -1\n',
            "groups.0.size",
            "greater than or equal to 0",
        ),
    ],
)
def test_directory_errors_name_the_entry(tmp_path, text, key, problem):
    path = tmp_path / "directory.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_directory(path)
    assert caught.value.key == key
    assert problem in caught.value.problem
    assert caught.value.fix


def test_shipped_directory_holds_the_example_agency():
    directory = load_directory(EXAMPLE_DIRECTORY)
    works = directory.departments["public-works"]
    assert (works.name, works.head, works.delegates) == (
        "Public Works",
        "dwhitfield@example.gov",
        ("lpark@example.gov",),
    )
    head = directory.person("DWhitfield@Example.gov")
    assert head is not None and (head.name, head.title) == ("Dana Whitfield", "Director of Public Works")
    assert directory.person("lpark@example.gov").name == "Lee Park"  # type: ignore[union-attr]
    assert directory.department_of("sortiz@example.gov") is works
    assert "it-staff" in directory.person("cnguyen@example.gov").roles  # type: ignore[union-attr]
    assert directory.group("all-staff@example.gov").broadcast  # type: ignore[union-attr]
    assert directory.is_local("x@EXAMPLE.GOV") and not directory.is_local("x@example.gov.evil.com")


def test_config_check_command_reports_ok_and_errors(tmp_path, capsys):
    assert cli.main(["config", "check", "--config", str(write(tmp_path, ""))]) == 0
    assert "ok" in capsys.readouterr().out
    assert cli.main(["--config", str(write(tmp_path, "[smtp]\nworkers = 100\n")), "config", "check"]) == 2
    err = capsys.readouterr().err
    assert "[smtp.workers]" in err and "Fix:" in err
