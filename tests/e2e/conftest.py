"""Browser fixtures: Debian's Chromium driven by Playwright against the real gunicorn `server`."""
from pathlib import Path

import pytest

ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
PHONE = {"viewport": {"width": 360, "height": 740}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


class Tab:
    """One page of the app in its own browser context, with everything it requested and logged."""

    def __init__(self, browser, origin, options):
        self.origin = origin
        self.context = browser.new_context(**options)
        self.page = self.context.new_page()
        self.page.set_default_timeout(20_000)
        self.requests = []
        self.console_errors = []
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("console", lambda message: message.type == "error" and self.console_errors.append(message.text))
        self.page.on("pageerror", lambda error: self.console_errors.append(f"uncaught: {error}"))
        self.response = self.page.goto(origin + "/")

    def foreign_requests(self):
        """Requests that left the server's origin (data: URLs are the page's own bytes)."""
        return [url for url in self.requests if not (url.startswith(self.origin + "/") or url.startswith("data:"))]


@pytest.fixture
def open_page(browser, server):
    """Open the drawing page: `open_page(DESKTOP)` or `open_page(PHONE)` -> a Tab; closed after the test."""
    tabs = []

    def open_(options):
        tabs.append(Tab(browser, server.url, options))
        return tabs[-1]

    yield open_
    for tab in tabs:
        tab.context.close()


@pytest.fixture(scope="session")
def artifacts():
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
