"""The console's session cookie is Secure unless a loopback test setup opts out (issue 14.6)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
import tomli_w

from console.app import SESSION_COOKIE
from milter.config import load_config
from milter.kernel.settings import ConfigError
from milter.runtime import Runtime
from tests.conftest import write_config
from tests.test_console import client_for


def config_without_opt_out(folder: Path, database_url: str, console: dict[str, object]) -> Path:
    """A config whose [console] is as an admin writes it: the tests' plain-http opt-out taken out."""
    path = write_config(folder, database_url, f"maildir:{folder / 'outbox'}")
    settings = tomllib.loads(path.read_text())
    settings["console"].pop("secure_cookie")
    settings["console"].update(console)
    path.write_text(tomli_w.dumps(settings))
    return path


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_cookie_is_secure_by_default_even_with_an_http_base_url(tmp_path, database_url):
    path = config_without_opt_out(tmp_path, database_url, {"base_url": "http://mail-gw.example.gov:8025"})
    runtime = Runtime(load_config(path))
    runtime.database.create_schema()
    try:
        cookie = client_for(runtime).get("/login").headers["set-cookie"].lower()
    finally:
        runtime.close()
    assert cookie.startswith(f"{SESSION_COOKIE}=")
    assert "; secure" in cookie and "httponly" in cookie


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_plain_http_cookies_are_refused_off_loopback(tmp_path, database_url):
    path = config_without_opt_out(tmp_path, database_url, {"listen": "0.0.0.0:8025", "secure_cookie": False})
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.key == "console.secure_cookie" and "not loopback" in caught.value.problem
    assert "serve the console over TLS" in caught.value.fix
