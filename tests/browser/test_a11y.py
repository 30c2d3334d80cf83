"""Accessibility: axe-core finds no serious or critical violation on any page, and no page scrolls sideways.

Every page is visited at a phone width (390 px) and a wide one (1440 px), in
the light and the dark colour scheme. axe-core is vendored under
tests/browser/vendor/ (from the npm registry) and injected by the test only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import PASSWORD, USERNAME
from tests.browser.pages import demo_pages

pytestmark = pytest.mark.django_db(transaction=True)

AXE = Path(__file__).parent / "vendor" / "axe-core" / "axe.min.js"
WIDTHS = {"phone": (390, 844), "wide": (1440, 900)}

AXE_RUN = """async () => {
  const result = await axe.run(document, {resultTypes: ["violations"]});
  return result.violations
    .filter((v) => v.impact === "serious" || v.impact === "critical")
    .map((v) => ({id: v.id, impact: v.impact, help: v.help,
                  nodes: v.nodes.slice(0, 4).map((n) => n.target.join(" ") + " :: " + (n.failureSummary || "").split("\\n").slice(1, 2).join(""))}));
}"""


def _log_in(page: Page, base: str, django_user_model) -> None:
    if not django_user_model.objects.filter(username=USERNAME).exists():
        django_user_model.objects.create_superuser(USERNAME, f"{USERNAME}@example.com", PASSWORD)
    page.goto(f"{base}/login/")
    page.get_by_label("Username").fill(USERNAME)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{base}/")


def audit(page: Page) -> tuple[list[dict], int, int]:
    """Serious and critical axe violations, the document's scroll width and the viewport's width."""
    violations = page.evaluate(AXE_RUN)
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    return violations, widths[0], widths[1]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", list(WIDTHS))
def test_every_page_has_no_serious_axe_violation_and_no_sideways_scroll(
    browser, live_server, demo_registry, django_user_model, settings, width, scheme
):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h}, color_scheme=scheme)
    context.add_init_script(path=str(AXE))
    page = context.new_page()
    problems: dict[str, object] = {}
    try:
        page.goto(f"{live_server.url}/login/")
        violations, scroll, inner = audit(page)
        if violations or scroll > inner:
            problems["login"] = {"axe": violations, "scrollWidth": scroll, "innerWidth": inner}
        _log_in(page, live_server.url, django_user_model)
        for spec in demo_pages():
            response = page.goto(f"{live_server.url}{spec.path}")
            assert response is not None and response.status == spec.status, (spec.path, response and response.status)
            page.wait_for_load_state("load")
            violations, scroll, inner = audit(page)
            if violations or scroll > inner:
                problems[spec.name] = {"axe": violations, "scrollWidth": scroll, "innerWidth": inner}
    finally:
        context.close()
    assert problems == {}, problems
