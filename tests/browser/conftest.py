"""The builder page in a real browser: Debian's chromium driven by Playwright (no browser
download), against a real `python -m flowd` subprocess on 127.0.0.1.

One server serves the whole browser suite and one browser each module (starting either costs
about a second); each test gets a fresh browser context, so cookies never leak from one test to the next, and
every test leaves a screenshot of how the page ended under its pytest temporary directory.
Tests that share the server give their workflows unique names.

Without chromium or Playwright these tests skip, naming what is missing; with
FLOWD_REQUIRE_BROWSER=1 (as `.ci/run` sets) they fail instead, so CI can never pass them by
skipping.
"""

from __future__ import annotations

import os
import secrets
import shutil
from pathlib import Path
from typing import Any, Iterator

import pytest

from tests.e2e.conftest import ServerProcess

CHROMIUM = os.environ.get("FLOWD_CHROMIUM", "/usr/bin/chromium")
TIMEOUT_MS = 15_000


def _missing_browser() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[test]')"
    if not (os.path.isfile(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"Debian's chromium is not at {CHROMIUM} (apt-get install chromium)"
    return None


def _skip_or_fail(reason: str) -> None:
    if os.environ.get("FLOWD_REQUIRE_BROWSER") == "1":
        pytest.fail(f"browser tests are required here, but {reason}")
    pytest.skip(reason)


# Per module, not per session: Playwright's sync API marks an event loop as running in this
# thread for as long as it is started, and the asyncio tests that follow on the same worker
# could not run their own.
@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    reason = _missing_browser()
    if reason:
        _skip_or_fail(reason)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def flowd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = ServerProcess(tmp_path_factory.mktemp("browser-server"))
    server.start()
    yield server
    server.terminate()


@pytest.fixture(scope="session")
def viewer_key(flowd: ServerProcess) -> str:
    response = flowd.post("/v1/keys", {"role": "viewer", "name": "browser-viewer"})
    assert response.status == 201, response.body
    return response.body["key"]


@pytest.fixture(scope="session")
def editor_key(flowd: ServerProcess) -> str:
    response = flowd.post("/v1/keys", {"role": "editor", "name": "browser-editor"})
    assert response.status == 201, response.body
    return response.body["key"]


class PageProblems:
    """Uncaught exceptions and console errors (CSP violations are console errors): a test
    ends by asserting there were none."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self.allowed: list[str] = []   # substrings of console errors a test provokes on purpose

    def console(self, message: Any) -> None:
        if message.type == "error" and not any(a in message.text for a in self.allowed):
            # A failed request (a 4xx the page handles) is logged by the browser itself.
            if "Failed to load resource" not in message.text:
                self.errors.append(f"console: {message.text}")

    def page_error(self, error: Any) -> None:
        self.errors.append(f"uncaught: {error}")


@pytest.fixture
def page_problems() -> PageProblems:
    return PageProblems()


@pytest.fixture
def page(browser: Any, flowd: ServerProcess, tmp_path: Path,
         page_problems: PageProblems) -> Iterator[Any]:
    context = browser.new_context(base_url=flowd.url, viewport={"width": 1400, "height": 900})
    context.set_default_timeout(TIMEOUT_MS)
    tab = context.new_page()
    tab.on("console", page_problems.console)
    tab.on("pageerror", page_problems.page_error)
    try:
        yield tab
    finally:
        try:
            tab.screenshot(path=str(tmp_path / "screenshot.png"), full_page=True)
        finally:
            context.close()
    assert not page_problems.errors, page_problems.errors


def sign_in(page: Any, key: str, hash_path: str = "#/workflows") -> None:
    """Sign in as the page's own sign-in form would (POST /v1/session sets the cookie in the
    browser context), then open `hash_path`."""
    response = page.request.post("/v1/session", data={"key": key})
    assert response.status == 201, response.text()
    # A page already at this address would keep its old session (a hash change loads no
    # document): start from a blank one.
    page.goto("about:blank")
    page.goto("/" + hash_path)
    page.wait_for_selector("main[data-ready]")


@pytest.fixture
def admin_page(page: Any, flowd: ServerProcess) -> Any:
    sign_in(page, flowd.key)
    return page


def unique(name: str) -> str:
    return f"{name} {secrets.token_hex(3)}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Under xdist (`--dist loadgroup`) every browser test runs on the same worker, so the suite
    # starts one server and one chromium, not one per worker.
    browser_dir = Path(__file__).parent
    for item in items:
        if browser_dir in Path(item.fspath).parents:
            item.add_marker(pytest.mark.xdist_group("browser"))
