"""Browser fixtures: Debian's chromium driven by Playwright.

Never ``playwright install`` (it downloads a browser): the tests use the distribution's chromium
(``scripts/install-system-deps.sh``). Without it the browser tests are skipped locally and fail in
CI, so that a missing package can never turn the accessibility checks green.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser
from playwright.sync_api import BrowserContext
from playwright.sync_api import sync_playwright

# Quiet, deterministic and offline: no background updates, sync, QUIC probing or first-run UI.
CHROMIUM_ARGS: tuple[str, ...] = (
    "--headless",
    "--no-sandbox",  # the tests run as root in containers, where chromium's sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)

DESKTOP: dict[str, Any] = {"viewport": {"width": 1280, "height": 800}}
MOBILE: dict[str, Any] = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}


def chromium_executable() -> str:
    """Path of Debian's chromium; fails in CI and skips elsewhere when it is missing."""
    executable = shutil.which("chromium")
    if executable is None:
        reason = "chromium is not installed: run scripts/install-system-deps.sh (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    return executable


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """One headless chromium for the whole session."""
    executable = chromium_executable()
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=executable, headless=True, args=list(CHROMIUM_ARGS))
        try:
            yield instance
        finally:
            instance.close()


@pytest.fixture
def new_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Factory for browser contexts, closed after the test.

    Defaults: French locale and Paris time, desktop viewport, and ``bypass_csp=True`` because the
    pages' CSP forbids the axe-core script that :mod:`tests.browser.axe` injects. Pass
    ``bypass_csp=False`` to see the page exactly as a user's browser enforces it.
    """
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        settings: dict[str, Any] = {
            "locale": "fr-FR",
            "timezone_id": "Europe/Paris",
            "bypass_csp": True,
            **DESKTOP,
            **options,
        }
        context = browser.new_context(**settings)
        context.set_default_timeout(10_000)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
