"""axe-core checks and screenshots for Playwright pages.

The pages' CSP forbids scripts, so the context must be created with ``bypass_csp=True`` (the
``new_context`` fixture's default) for :func:`check_page` to inject axe-core.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Page

ROOT = Path(__file__).resolve().parents[2]
AXE_SCRIPT = ROOT / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = ROOT / ".data" / "screenshots"

# Only these fail a test by default; "moderate" and "minor" findings are worth reading but not blocking.
BLOCKING_IMPACTS = frozenset({"serious", "critical"})
# Every severity axe-core reports: for the pages held to no violation at all.
EVERY_IMPACT = frozenset({"minor", "moderate", "serious", "critical"})


def check_page(page: Page, impacts: frozenset[str] = BLOCKING_IMPACTS) -> list[dict[str, Any]]:
    """Run axe-core on the page; return its violations of the given impacts (by default serious and
    critical; empty when clean)."""
    if not AXE_SCRIPT.is_file():
        raise FileNotFoundError(f"{AXE_SCRIPT} is missing: run `npm ci` (axe-core is in package.json)")
    if not page.evaluate("() => typeof window.axe === 'object'"):
        try:
            page.add_script_tag(path=str(AXE_SCRIPT))
        except PlaywrightError as error:
            raise RuntimeError(
                "could not inject axe-core; create the browser context with bypass_csp=True"
            ) from error
    results = page.evaluate("() => window.axe.run(document, {resultTypes: ['violations']})")
    return [violation for violation in results["violations"] if violation.get("impact") in impacts]


def describe(violations: list[dict[str, Any]]) -> str:
    """A readable summary for an assertion message: rule, impact, help and the offending nodes."""
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']} — {violation['helpUrl']}")
        for node in violation.get("nodes", [])[:5]:
            lines.append(f"    {' '.join(node.get('target', []))}: {node.get('failureSummary', '')}")
    return "\n".join(lines)


def save_screenshot(page: Page, name: str) -> Path:
    """Write a full-page PNG to ``.data/screenshots/<name>.png`` and return its path."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "page"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{safe}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
