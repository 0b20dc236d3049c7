"""Browser tests: pytest-playwright driving Debian's Chromium against a live server.

`playwright install` cannot download browsers here, so the launch points at
/usr/bin/chromium with the flags this machine needs (see DESIGN.md).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

# The live server runs Django's sync ORM while Playwright's sync API holds an event loop.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
    "--disable-dev-shm-usage",
]


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(autouse=True)
def live_versions(settings):
    """The live server is a thread of this process and shares its cache with the
    test's own writes and the Celery worker threads: the versions of the live regions
    are trustworthy, as with a shared cache in production (accounts/live.py)."""
    settings.LIVE_VERSIONS = True


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args):
    return {**browser_context_args, "viewport": {"width": 1280, "height": 800}, "locale": "zh-CN"}


@pytest.fixture
def screenshot(page):
    """Save a full-page screenshot under docs/screenshots/<name>.png and return its path."""

    def take(name: str) -> Path:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


@pytest.fixture
def login(page, live_server, django_user_model):
    """Log a user in through the real login form; returns the page on the overview."""

    def do_login(user, password: str):
        page.goto(f"{live_server.url}/login/")
        page.fill("input[name=username]", user.get_username())
        page.fill("input[name=password]", password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{live_server.url}/")
        return page

    return do_login


@pytest.fixture
def send_worker():
    """A real Celery worker thread sending on the test broker, its queue emptied first."""
    from tests.e2e.support import worker_running

    with worker_running("send", purge=True):
        yield
