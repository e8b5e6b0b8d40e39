"""Fixtures for tests that drive a real browser against the live console.

Debian's chromium (/usr/bin/chromium), driven by Playwright; no browser is
ever downloaded. The console runs under uvicorn on a free loopback port in a
thread, on a real database (SQLite and PostgreSQL, through `database_url`).
tests/conftest.py loads these for every test module (and a module imports
nothing from here at run time, so pytest can rewrite its asserts).
When chromium is missing the tests fail; they never skip.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn
from playwright.sync_api import Browser, ConsoleMessage, Page, Response, expect, sync_playwright

from console import users
from milter.config import load_config
from milter.runtime import Runtime
from tests.conftest import write_config
from tests.support.servers import free_port

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
PASSWORD = "correct horse battery staple"


class LiveConsole:
    """The real console app served by uvicorn on 127.0.0.1:<free port>, in a thread."""

    def __init__(self, runtime: Runtime) -> None:
        from console.app import create_app

        self.runtime = runtime
        self.port = free_port()
        config = uvicorn.Config(
            create_app(runtime),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            lifespan="off",
            server_header=False,
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="live-console", daemon=True)

    def start(self, timeout: float = 15.0) -> LiveConsole:
        self.thread.start()
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"the console did not start on 127.0.0.1:{self.port}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(15)

    def url(self, path: str = "/") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def add_user(self, login: str, role: str, password: str = PASSWORD) -> None:
        with self.runtime.database.write() as connection:
            users.add(connection, login, password, role)

    def log_in(self, page: Page, login: str, password: str = PASSWORD, path: str = "/") -> None:
        """Open `path` signed out, log in on the form it leads to, and land back on `path`."""
        page.goto(self.url(path))
        expect(page).to_have_url(re.compile(r"/login\?next="))
        page.get_by_label("Login", exact=True).fill(login)
        page.get_by_label("Password").fill(password)
        page.get_by_role("button", name="Log in").click()
        expect(page).to_have_url(self.url(path))

    def log_out(self, page: Page) -> None:
        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(self.url("/login"))


@pytest.fixture
def console_runtime(tmp_path: Path, database_url: str) -> Iterator[Runtime]:
    path = write_config(tmp_path / "gw", database_url, f"maildir:{tmp_path / 'outbox'}")
    runtime = Runtime(load_config(path))
    runtime.database.create_schema()
    yield runtime
    runtime.close()


@pytest.fixture
def live_console(console_runtime: Runtime) -> Iterator[LiveConsole]:
    live = LiveConsole(console_runtime).start()
    yield live
    live.stop()


# Per module, not per session: Playwright's sync API keeps an event loop running in the
# main thread while it is active, and later tests in other modules call asyncio.run().
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium package (.ci/run does)")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh browser profile (no cookies) per test.

    Fails the test when the browser reports an error (a CSP violation, say) or
    a stylesheet, image or other part of a page does not load. Pages answered
    with 401 or 403 on purpose are fine.
    """
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    opened = context.new_page()
    errors: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        # A page answered 4xx on purpose is logged as "Failed to load resource"; broken parts show up below.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(message.text)

    def on_response(response: Response) -> None:
        if response.status >= 400 and response.request.resource_type != "document":
            errors.append(f"{response.status} for {response.url}")

    opened.on("console", on_console)
    opened.on("response", on_response)
    opened.set_default_timeout(10_000)
    yield opened
    context.close()
    assert not errors, f"the browser reported errors: {errors}"
