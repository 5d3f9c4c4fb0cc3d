"""A real browser for tests: Debian's chromium, driven by Playwright (no browser download)."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")


@contextmanager
def chromium() -> Iterator[Browser]:
    # Missing, the test fails, never skips: CI installs it (.ci/run), a laptop with `apt-get install chromium`.
    assert CHROMIUM.exists(), f"no browser at {CHROMIUM}: apt-get install chromium"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=["--no-sandbox"])
        try:
            yield browser
        finally:
            browser.close()
