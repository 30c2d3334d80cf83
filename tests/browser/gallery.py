"""`make screenshots`: every page, phone and wide, light and dark, from the demo registry.

Not collected with the suite (the name does not start with test_); run as
`pytest tests/browser/gallery.py`. PNGs go to $GALLERY_DIR (docs/screenshots/
by default), named PAGE-WIDTH-SCHEME.png.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.browser.pages import demo_pages
from tests.browser.test_a11y import WIDTHS, _log_in

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", list(WIDTHS))
def test_gallery(browser, live_server, demo_registry, django_user_model, settings, width, scheme):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    out = Path(os.environ.get("GALLERY_DIR") or ROOT / "docs" / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    w, h = WIDTHS[width]
    context = browser.new_context(viewport={"width": w, "height": h}, color_scheme=scheme)
    page = context.new_page()
    try:
        page.goto(f"{live_server.url}/login/")
        page.screenshot(path=str(out / f"login-{width}-{scheme}.png"))
        _log_in(page, live_server.url, django_user_model)
        for spec in demo_pages():
            page.goto(f"{live_server.url}{spec.path}")
            page.wait_for_load_state("networkidle")
            page.screenshot(path=str(out / f"{spec.name}-{width}-{scheme}.png"), full_page=True)
    finally:
        context.close()
