"""`make screenshots`: every page, phone and wide, light and dark, from the demo registry.

Not collected with the suite (the name does not start with test_); run as
`pytest tests/browser/gallery.py`. PNGs go to $GALLERY_DIR (docs/screenshots/
by default), named PAGE-WIDTH-SCHEME.png.

Every page is shot full length, except the few committed ones (the `!name.png`
lines of docs/screenshots/.gitignore): those are cut to the first screen and
reduced to a 256-colour palette (Pillow), so the repository stays small.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from PIL import Image

from tests.browser.pages import demo_pages
from tests.browser.test_a11y import WIDTHS, _log_in

pytestmark = pytest.mark.django_db(transaction=True)

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = {line[1:].strip() for line in (ROOT / "docs" / "screenshots" / ".gitignore").read_text().splitlines()
             if line.startswith("!")}


def compact(path: Path) -> None:
    """Rewrite a PNG with a palette of 256 colours: a UI shot loses nothing visible and most of its bytes."""
    with Image.open(path) as image:
        reduced = image.convert("RGB").quantize(colors=256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    reduced.save(path, optimize=True)


def shoot(page, path: Path) -> None:
    """Full length for the gallery; the first screen, compacted, for a committed one."""
    if path.name in COMMITTED:
        page.screenshot(path=str(path))
        compact(path)
    else:
        page.screenshot(path=str(path), full_page=True)


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
        shoot(page, out / f"login-{width}-{scheme}.png")
        _log_in(page, live_server.url, django_user_model)
        for spec in demo_pages():
            page.goto(f"{live_server.url}{spec.path}")
            page.wait_for_load_state("networkidle")
            shoot(page, out / f"{spec.name}-{width}-{scheme}.png")
    finally:
        context.close()
