"""The first and the second sign-in, clicked through in Chromium from the demo service.

Every page on the way (demo service, Entra ID simulator, broker, PSC simulator) is screenshotted under
``.data/screenshots/journey-*`` and checked with axe-core: no serious or critical violation. The
simulators' personas are chosen by clicking, as a person would (no ``login_hint``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import BrowserContext
from playwright.sync_api import Page

from sandbox.run import Sandbox
from tests.browser.axe import check_page
from tests.browser.axe import describe
from tests.browser.axe import save_screenshot
from tests.e2e.pairings import unpair

pytestmark = pytest.mark.browser


class Walk:
    """One person's clicks, with a screenshot and an axe check of every page reached."""

    def __init__(self, page: Page, prefix: str) -> None:
        self.page = page
        self.prefix = prefix
        self.seen: list[str] = []

    def check(self, name: str) -> None:
        self.page.wait_for_load_state("load")
        save_screenshot(self.page, f"{self.prefix}-{len(self.seen) + 1:02d}-{name}")
        violations = check_page(self.page)
        assert not violations, f"{name}: {describe(violations)}"
        self.seen.append(name)

    def click(self, text: str) -> None:
        self.page.get_by_role("button", name=text).first.click()
        self.page.wait_for_load_state("load")

    def h1(self) -> str:
        return self.page.locator("h1").first.inner_text().strip()


@pytest.fixture
def context(new_context: Callable[..., BrowserContext]) -> BrowserContext:
    # The sandbox's CA is not in Chromium's store; TLS itself is exercised by the HTTPS tests.
    return new_context(ignore_https_errors=True)


def choose_persona(walk: Walk, label_part: str) -> None:
    """Click the simulator's button for the persona whose label contains ``label_part``."""
    button = walk.page.locator("button", has_text=label_part).first
    button.click()
    walk.page.wait_for_load_state("load")


def test_first_then_second_sign_in_through_the_demo_service(sandbox: Sandbox, context: BrowserContext) -> None:
    unpair(sandbox, "cpx-interne")  # Dr Léa Garnier starts unpaired whatever ran before
    page = context.new_page()
    walk = Walk(page, "journey-first")
    page.goto(f"{sandbox.demo_url}/")
    walk.check("demo")
    walk.click("S'identifier avec PRO SANTE CONNECT")

    assert page.url.startswith(sandbox.entra_url)
    walk.check("entra-login")
    choose_persona(walk, "Léa Garnier")  # never paired elsewhere in the suite

    assert page.url.startswith(sandbox.broker_url) and walk.h1() == "Appairage du compte"
    walk.check("appairage")
    walk.click("Appairer un compte avec la carte CPS")

    assert page.url.startswith(sandbox.psc_url)
    walk.check("psc-wallet")
    choose_persona(walk, "Sophie")  # the pharmacist's CPS card

    assert page.url.startswith(sandbox.broker_url) and walk.h1() == "Connexion"
    walk.check("connexion")
    walk.click("Confirmer")

    assert page.url.startswith(sandbox.demo_url)
    walk.check("demo-signed-in")
    assert "810100000003" in page.content()
    walk.click("Se déconnecter")
    page.wait_for_url(f"{sandbox.demo_url}/**")
    walk.check("demo-signed-out")

    # The second sign-in, in a fresh browser session: Entra again, then only the confirmation.
    second = context.browser.new_context(**_same_options(context)) if context.browser else context
    page2 = second.new_page()
    walk2 = Walk(page2, "journey-second")
    page2.goto(f"{sandbox.demo_url}/")
    walk2.click("S'identifier avec PRO SANTE CONNECT")
    walk2.check("entra-login")
    choose_persona(walk2, "Léa Garnier")
    assert walk2.h1() == "Connexion", "the second sign-in must not show the pairing page"
    walk2.check("connexion")
    walk2.click("Confirmer")
    assert page2.url.startswith(sandbox.demo_url)
    walk2.check("demo-signed-in")
    second.close()

    assert walk.seen == ["demo", "entra-login", "appairage", "psc-wallet", "connexion", "demo-signed-in",
                         "demo-signed-out"]


def _same_options(context: BrowserContext) -> dict[str, Any]:
    return {"ignore_https_errors": True, "bypass_csp": True, "locale": "fr-FR"}
